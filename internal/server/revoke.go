package server

import (
	"context"
	"errors"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/store"
)

// revokedKinds are the kinds whose deletion revokes an identity, watched
// here; Nodes are watched by their cache (Run), which does the same.
var revokedKinds = []api.Kind{api.KindUser, api.KindToken}

// watchRevocations ends the requests in flight of a user, or a bearer
// token, the moment its User or Token is deleted, whichever server
// deleted it: every server watches the store for the deletes. A list
// after a lost watch revokes what went meanwhile.
func (s *Server) watchRevocations(ctx context.Context) {
	var wg sync.WaitGroup
	for _, kind := range revokedKinds {
		k := api.MustKind(kind)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &listwatch.Loop{
				Name:    "revocations of " + k.Plural,
				Source:  s.store.Source(k, ""),
				Replace: func(objs []api.Object, _ int64) { s.conns.revokeGone(ctx, s.store, kind, objs) },
				Update:  s.revokeDeleted,
				Expired: func(err error) bool { return errors.Is(err, store.ErrCompacted) },
				Log:     s.log,
			}
			l.Run(ctx)
		}()
	}
	wg.Wait()
}

// revokeDeleted revokes the credentials deleted in evs.
func (s *Server) revokeDeleted(evs []api.WatchEvent) {
	for _, ev := range evs {
		if ev.Type == api.WatchDeleted {
			s.conns.revoke(ev.Object.GetMeta().UID)
		}
	}
}
