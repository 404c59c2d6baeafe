// Package controller runs shoal's reconcilers: the app controller (Apps to
// Instances, rollouts, service addresses, scheduled changes), the binder
// (pending Instances to Nodes, through the pure scheduler package), the
// node controller (silent nodes not ready, lost ones' Instances replaced,
// subnets), the job controller (runs to completion, cron runs) and the
// autoscaler (replicas from the load the nodes report).
//
// Every reconciler follows one contract: Reconcile(ctx, key) reads the
// current state (from the manager's watch-fed caches, which hold its own
// writes) and acts on the difference with the desired state, writing with
// compare-and-swap. Keys carry only names. Nothing is remembered between
// calls that the store does not hold, so a controller killed at any moment
// converges to the same result when it starts again. Each controller
// declares its triggers (triggers.go); the manager is generic over them.
//
//	store watch ──▶ cache (one per kind) ──▶ triggers: predicate, map ──▶ keys
//	                                                                        │
//	timers (Every) ──────────────────────────────────────────────▶ queue (dedup, one
//	                                            worker per key, retry with back-off)
//	                                                                        │
//	              reads: cache, by name or index ◀── Reconcile(ctx, key) ──▶ CAS writes
//
// Controllers run only in the server that holds leadership (an etcd
// election), so there is one writer of each decision at a time.
package controller
