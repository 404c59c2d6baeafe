package server

import (
	"context"
	"fmt"
	"time"
)

// errNoSpaceHelp is what a write refused by etcd's NOSPACE alarm says.
const errNoSpaceHelp = "the store is full (etcd's NOSPACE alarm: its database reached its quota, --etcd-quota-bytes): it takes only reads and deletes until space is freed: delete what is not needed (shoal delete ...); the servers then compact, defragment and lift the alarm within a minute (docs/security.md, Bounds)"

// spaceCheckEvery is how often a server reads the store's alarms, and
// reclaimEvery how often, while the NOSPACE alarm is raised, it tries to
// reclaim space and lift it.
const (
	spaceCheckEvery = 10 * time.Second
	reclaimEvery    = time.Minute
)

// watchSpace surfaces etcd's NOSPACE alarm (a log line, the
// shoal_store_nospace gauge, /healthz) and recovers from it: while it is
// raised, it compacts, defragments and disarms (store.Reclaim), which
// frees the history and whatever was deleted; if the data alone is past
// the quota, etcd raises the alarm again at the next write.
func (s *Server) watchSpace(ctx context.Context) {
	tick := time.NewTicker(spaceCheckEvery)
	defer tick.Stop()
	var lastReclaim time.Time
	for {
		sp, err := s.store.Space(ctx)
		if err == nil {
			s.metrics.setSpace(sp)
			if sp.NoSpace && time.Since(lastReclaim) >= reclaimEvery {
				lastReclaim = time.Now()
				s.log.Error("the store is out of space (etcd NOSPACE alarm): writes are refused; reclaiming what compaction and defragmentation free", "dbSize", sp.DBSize, "dbSizeInUse", sp.DBSizeInUse)
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				err := s.store.Reclaim(rctx)
				cancel()
				if after, serr := s.store.Space(ctx); err == nil && serr == nil {
					s.metrics.setSpace(after)
					s.log.Warn("store space reclaimed and the NOSPACE alarm lifted; it is raised again if the data alone is past the quota", "dbSize", after.DBSize, "dbSizeInUse", after.DBSizeInUse)
				} else if err != nil {
					s.log.Error("reclaiming the store's space", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// spaceWarning is /healthz's line about the store's space, or "".
func (s *Server) spaceWarning(ctx context.Context) string {
	sp, err := s.store.Space(ctx)
	if err != nil || !sp.NoSpace {
		return ""
	}
	return fmt.Sprintf("warning: %s; database %d bytes, %d in use\n", errNoSpaceHelp, sp.DBSize, sp.DBSizeInUse)
}
