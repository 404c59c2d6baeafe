package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/internal/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one change seen by a watch, of the API's watch event types. For
// api.WatchDeleted, Object is the last stored state with Revision set to
// the deletion's revision; api.WatchError ends the watch and Err says why
// (ErrCompacted: relist).
type Event struct {
	Type     api.WatchEventType
	Object   api.Object
	Revision int64
	Err      error
}

// Watch streams changes to kind k in namespace ns ("" for all) after
// revision fromRev (0: from now). The channel closes when ctx ends or after
// an Error event.
func (s *Store) Watch(ctx context.Context, k api.KindInfo, ns string, fromRev int64) <-chan Event {
	return s.watch(ctx, k, ns, fromRev, false)
}

// watch is Watch; with bookmarks, each batch of events etcd sends is
// followed by an api.WatchBookmark at its last revision. etcd never
// splits one revision's events across batches, so the bookmark says that
// revision is whole.
func (s *Store) watch(ctx context.Context, k api.KindInfo, ns string, fromRev int64, bookmarks bool) <-chan Event {
	out := make(chan Event, 64)
	// etcd notices a compacted start revision only some time after the
	// watch begins; a read at that revision says so at once.
	if fromRev > 0 {
		if _, err := s.cli.Get(ctx, prefix(k, ns), clientv3.WithPrefix(), clientv3.WithRev(fromRev), clientv3.WithCountOnly()); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				err = fmt.Errorf("watch from revision %d: %w", fromRev, ErrCompacted)
			}
			out <- Event{Type: api.WatchError, Err: err}
			close(out)
			return out
		}
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev+1))
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wc := s.cli.Watch(ctx, prefix(k, ns), opts...)
	go func() {
		defer close(out)
		defer cancel()
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wc {
			if err := resp.Err(); err != nil {
				if resp.CompactRevision > 0 || errors.Is(err, rpctypes.ErrCompacted) {
					err = fmt.Errorf("watch from revision %d: %w (oldest kept is %d)", fromRev, ErrCompacted, resp.CompactRevision)
				}
				send(Event{Type: api.WatchError, Err: err})
				return
			}
			for _, ev := range resp.Events {
				var e Event
				var err error
				switch {
				case ev.Type == mvccpb.DELETE:
					e.Type = api.WatchDeleted
					if ev.PrevKv == nil {
						continue
					}
					e.Object, err = decode(k, ev.PrevKv.Value, ev.Kv.ModRevision)
				case ev.IsCreate():
					e.Type = api.WatchAdded
					e.Object, err = decode(k, ev.Kv.Value, ev.Kv.ModRevision)
				default:
					e.Type = api.WatchModified
					e.Object, err = decode(k, ev.Kv.Value, ev.Kv.ModRevision)
				}
				if err != nil {
					send(Event{Type: api.WatchError, Err: err})
					return
				}
				e.Revision = ev.Kv.ModRevision
				if !send(e) {
					return
				}
			}
			if bookmarks && len(resp.Events) > 0 && !send(Event{Type: api.WatchBookmark, Revision: resp.Events[len(resp.Events)-1].Kv.ModRevision}) {
				return
			}
		}
		if ctx.Err() == nil {
			send(Event{Type: api.WatchError, Err: errors.New("watch closed by the store")})
		}
	}()
	return out
}

// Source lists and watches kind k in namespace ns ("" for all) as a
// listwatch.Loop wants: watch errors end the channel and are reported by
// the returned func (ErrCompacted: list again).
func (s *Store) Source(k api.KindInfo, ns string) *Source {
	return &Source{s: s, k: k, ns: ns}
}

// Source is a Store's list-and-watch of one kind.
type Source struct {
	s  *Store
	k  api.KindInfo
	ns string
}

// List lists the objects and the revision to watch from.
func (src *Source) List(ctx context.Context) ([]api.Object, int64, error) {
	return src.s.List(ctx, src.k, src.ns)
}

// Watch streams changes after rev, each etcd batch followed by a
// bookmark at its last revision.
func (src *Source) Watch(ctx context.Context, rev int64) (<-chan api.WatchEvent, func() error, error) {
	out := make(chan api.WatchEvent, 64)
	var werr error
	go func() {
		defer close(out)
		for ev := range src.s.watch(ctx, src.k, src.ns, rev, true) {
			if ev.Type == api.WatchError {
				werr = ev.Err
				return
			}
			select {
			case out <- api.WatchEvent{Type: ev.Type, Object: ev.Object, Revision: ev.Revision}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, func() error { return werr }, nil
}
