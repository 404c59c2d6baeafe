// Package controller runs shoal's reconcilers: the app controller (Apps to
// Instances, rollouts, service addresses, scheduled changes), the binder
// (pending Instances to Nodes, through the pure scheduler package), the
// node controller (silent nodes not ready, lost ones' Instances replaced,
// subnets), the job controller (runs to completion, cron runs) and the
// autoscaler (replicas from the load the nodes report).
//
// Every reconciler follows one contract: Reconcile(ctx, key) reads the
// current state from the store and acts on the difference with the desired
// state, writing with compare-and-swap. Keys carry only names. Nothing is
// remembered between calls that the store does not hold, so a controller
// killed at any moment converges to the same result when it starts again.
//
//	store watch ──▶ key ──▶ queue (dedup, one worker per key, retry with back-off)
//	                           │
//	periodic resync ───────────┘──▶ Reconcile(ctx, key) ──▶ CAS writes to the store
//
// Controllers run only in the server that holds leadership (an etcd
// election), so there is one writer of each decision at a time.
package controller
