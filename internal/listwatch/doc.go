// Package listwatch keeps a local view of one kind of object current: list,
// then watch from the list's revision, and on any break list again, with
// back-off while the source is away. The agent, the service proxy, the
// servers' caches and the controllers all run their views through one Loop.
//
//	   ┌────────── list ok: Replace(objects) ──────────┐
//	   │                                                ▼
//	List ◀── back-off (doubling to MaxBackoff) ◀─ error  Watch ── events ─▶ Update(batch)
//	   ▲                                                │
//	   └── at once: compacted revision (410), Resync ───┘
//
// The loop never empties the view because the source is unreachable: the
// last list stays until a new one succeeds (static stability).
package listwatch
