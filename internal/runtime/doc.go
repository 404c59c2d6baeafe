// Package runtime is the agent's contract with a container runtime: one
// small interface the agent drives, implemented for real by
// runtime/containerd and by a hand-written fake for unit tests.
//
// A Container here is one Instance's container. Its lifetime spans restarts:
// the driver keeps the same container (and its network namespace and IP)
// and starts a new task in it when the agent restarts a crashed process.
//
//	Ensure image ─▶ Create (container + netns + IP + port mappings)
//	                   │
//	                   ▼
//	               Start ◀──────────┐ (restart: a new run in the same container)
//	                   │            │
//	                   ▼            │
//	          Running ─▶ Exited ────┘
//	                   │
//	     Stop (SIGTERM, grace, SIGKILL)
//	                   │
//	                   ▼
//	               Remove (task, container, snapshot, netns, IP, port mappings)
//
// While the process runs, Exec runs another command beside it (health
// probes).
//
// The driver must not decide policy (restart or not, back-off): that is the
// agent's. It must be safe to call every method again after a crash of the
// caller: Create of an existing container returns ErrAlreadyExists, Remove of
// a missing one succeeds.
package runtime
