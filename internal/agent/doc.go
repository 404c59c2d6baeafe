// Package agent is the node side of shoal: it joins the cluster (its own
// key, a certificate the servers issue), registers its Node, renews the
// node's lease, watches the Instances bound to it through the public API,
// makes the container runtime match them, and reports what it observes
// back with its containers' use. It enforces its owner's policy itself
// (admit.go, hostpath.go: namespaces, registries, signers, privileges,
// host paths) and fails closed; it routes to the other nodes' subnets
// (routes.go, peers.go) and serves its instances' logs and exec sessions.
//
// Each Instance on the node has one worker goroutine that owns its
// container from first pull to final removal:
//
//	       ┌──────── wake (watch event, container exit, probe change, 1s tick) ◀─────────┐
//	       ▼                                                                             │
//	desired? ── no / deleted ──▶ report Terminating, not ready ─▶ drain delay            │
//	       │ yes                   ─▶ stop (SIGTERM, grace, SIGKILL) ─▶ remove ─▶ done   │
//	       ▼                                                                             │
//	container? ── none ──▶ image ─▶ create ─▶ start ─────────────────────────────────────┤
//	       │ exists                                                                      │
//	       ▼                                                                             │
//	running ──▶ probe (readiness, liveness) ─▶ report Running, ready? ───────────────────┤
//	        └─▶ liveness failed ─▶ stop (grace) ─▶ start ────────────────────────────────┤
//	exited  ──▶ restartPolicy? ── yes ──▶ back-off ─▶ start ─────────────────────────────┤
//	                           └─ no ───▶ report Succeeded / Failed ─────────────────────┘
//
// status.ready is what proxies route by: with a readiness probe it follows
// the probe (see probe.go); without one it is true while the process runs.
// A deleted instance is reported not ready first and keeps running for
// Config.DrainDelay, so every node's proxy drops it before SIGTERM.
//
// The agent never tears workloads down because the server is unreachable:
// it keeps the last set of instances it was given (also on disk, for its
// own restarts) and keeps restarting crashed containers. After a restart
// it re-adopts the containers it finds instead of starting them again.
package agent
