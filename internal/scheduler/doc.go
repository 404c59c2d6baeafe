// Package scheduler decides which node an instance runs on.
//
// It owns placement only: given a Snapshot of nodes and of what is already
// bound to them, Place picks a node for one Request and records it, so the
// next Place sees it and a round of placements never over-commits a node.
// When nothing fits, the UnschedulableError says why, node by node.
//
// It must stay a pure, fast function of its inputs: no I/O, no store, no
// clock, no goroutines, no logging, and no parsing of quantity strings —
// callers pass CPU and memory already parsed. Writing the binding to the
// store, retrying and reporting are the binder's job (controller/binder.go).
// A Snapshot is not safe for concurrent use; one binder round owns one.
//
// Each placement filters, then scores:
//
//	Request ──▶ for every node ──▶ filters (all must pass) ──▶ score ──▶ best node
//	                               ready, schedulable           1. fewest instances of the same App (spread)
//	                               node selector                2. least allocated cpu+memory after placement
//	                               owner's rules, port range
//	                               host ports free              3. fewest instances in all
//	                               cpu fits                     4. node name (determinism)
//	                               memory fits
//	                                   │
//	                                   └─ no node passed ──▶ UnschedulableError
//	                                      "0/3 nodes available: 2 insufficient cpu (needs 4, most free 2), 1 not ready"
//
// Nodes are scored before they are filtered: a node that could not beat the
// best one found so far is skipped without running its filters, which keeps
// a placement on a thousand nodes in the low microseconds.
package scheduler
