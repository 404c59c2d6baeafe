package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/store"
)

// objectCache is the server's view of one kind's stored objects, kept by
// one watch on the store, for the kinds every agent reads and writes all
// the time (Instances, Nodes). The objects are a listwatch.Cache (the
// view the controllers keep too); what the server adds is the recent
// history and the watches served from it:
//
//   - status writes start from it: the stored object is taken from here
//     and written back with its new status in one compare-and-swap, one
//     etcd round trip (a stale entry costs the CAS failing, then the slow
//     path);
//   - watches are served from it: a thousand agents watching their
//     instances are a thousand filters over one store watch, not a
//     thousand store watches each decoding every change;
//
// Lists are not served from it: it may be a moment behind the store, and
// a client must read its own writes.
//
// It keeps the last maxHistory changes, so a watch can resume from a
// recent revision; older ones get 410 and list again.
type objectCache struct {
	objs *listwatch.Cache

	mu      sync.Mutex // history, subscriptions and their revisions
	synced  bool
	rev     int64            // the store revision the history reflects
	since   int64            // history holds every change after since
	history []api.WatchEvent // oldest first
	subs    map[*subscription]struct{}
}

// maxHistory bounds the changes kept for resuming watches.
const maxHistory = 50000

// subscription is one watch served from the cache.
type subscription struct {
	ch    chan store.Event
	ns    string
	match func(api.Object) bool
}

// errFellBehind ends a watch whose client reads slower than changes come;
// it lists again (410) and catches up from there.
var errFellBehind = fmt.Errorf("the watch fell behind: list again: %w", store.ErrCompacted)

// cachedKinds are the kinds the server caches.
var cachedKinds = []api.Kind{api.KindInstance, api.KindNode}

func newCaches() map[api.Kind]*objectCache {
	m := map[api.Kind]*objectCache{}
	for _, k := range cachedKinds {
		m[k] = &objectCache{objs: listwatch.NewCache(), subs: map[*subscription]struct{}{}}
	}
	return m
}

// Run keeps the server's caches until ctx ends. Without it the server is
// correct, only slower: everything is read from the store.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.watchSpace(ctx) }()
	if s.ca != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.watchRevocations(ctx) }()
	}
	if s.ca != nil && s.secretKeys != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.followSecretKeys(ctx) }()
	}
	for _, kind := range cachedKinds {
		c := s.caches[kind]
		k := api.MustKind(kind)
		replace, update := c.replace, c.update
		if kind == api.KindNode {
			// A removed node's open requests (its watches) end with it,
			// whichever server removed it.
			replace = func(objs []api.Object, rev int64) {
				c.replace(objs, rev)
				s.conns.revokeGone(ctx, s.store, kind, objs)
			}
			update = func(evs []api.WatchEvent) {
				c.update(evs)
				s.revokeDeleted(evs)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &listwatch.Loop{
				Name:    "server cache of " + k.Plural,
				Source:  s.store.Source(k, ""),
				Replace: replace,
				Update:  update,
				Expired: func(err error) bool { return errors.Is(err, store.ErrCompacted) },
				Log:     s.log,
			}
			l.Run(ctx)
		}()
	}
	wg.Wait()
	for _, c := range s.caches {
		c.endAll(errors.New("the server is stopping"))
	}
}

// replace installs a list. Watches served so far cannot know what changed
// between the old view and this one: they end, and their clients list
// again.
func (c *objectCache) replace(objs []api.Object, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objs.Replace(objs, rev)
	c.synced, c.rev, c.since, c.history = true, rev, rev, nil
	c.endAllLocked(fmt.Errorf("the server's view was listed again: %w", store.ErrCompacted))
}

func (c *objectCache) update(events []api.WatchEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objs.Update(events)
	for _, ev := range events {
		c.rev = max(c.rev, ev.Revision)
		c.history = append(c.history, ev)
		for sub := range c.subs {
			if sub.wants(ev.Object) {
				select {
				case sub.ch <- store.Event{Type: ev.Type, Object: ev.Object, Revision: ev.Revision}:
				default:
					c.endLocked(sub, errFellBehind)
				}
			}
		}
	}
	if n := len(c.history); n > maxHistory {
		drop := n - maxHistory/2
		c.since = c.history[drop-1].Revision
		c.history = append([]api.WatchEvent(nil), c.history[drop:]...)
	}
}

func (s *subscription) wants(o api.Object) bool {
	return (s.ns == "" || o.GetMeta().Namespace == s.ns) && s.match(o)
}

// subscribe serves a watch of ns ("" for all) from revision from (0: from
// now) with the objects match accepts. ok is false while the cache has
// not listed yet: then the store serves the watch. A revision older than
// the cache remembers is ErrCompacted (410: list again).
func (c *objectCache) subscribe(ns string, from int64, match func(api.Object) bool) (events <-chan store.Event, stop func(), ok bool, err error) {
	if c == nil {
		return nil, nil, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return nil, nil, false, nil
	}
	if from == 0 {
		from = c.rev
	}
	if from < c.since {
		return nil, nil, true, fmt.Errorf("watch from revision %d: the server remembers changes after %d: %w", from, c.since, store.ErrCompacted)
	}
	sub := &subscription{ns: ns, match: match}
	var backlog []store.Event
	for _, ev := range c.history {
		if ev.Revision > from && sub.wants(ev.Object) {
			backlog = append(backlog, store.Event{Type: ev.Type, Object: ev.Object, Revision: ev.Revision})
		}
	}
	sub.ch = make(chan store.Event, len(backlog)+1024)
	for _, ev := range backlog {
		sub.ch <- ev
	}
	c.subs[sub] = struct{}{}
	return sub.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, live := c.subs[sub]; live {
			delete(c.subs, sub)
			close(sub.ch)
		}
	}, true, nil
}

// endLocked ends one watch with err (its last event); c.mu is held.
func (c *objectCache) endLocked(sub *subscription, err error) {
	delete(c.subs, sub)
	select {
	case sub.ch <- store.Event{Type: api.WatchError, Err: err}:
	default:
		// Full: drop a queued event for the error, which must arrive (the
		// client lists again anyway).
		select {
		case <-sub.ch:
		default:
		}
		sub.ch <- store.Event{Type: api.WatchError, Err: err}
	}
	close(sub.ch)
}

func (c *objectCache) endAllLocked(err error) {
	for sub := range c.subs {
		c.endLocked(sub, err)
	}
}

func (c *objectCache) endAll(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endAllLocked(err)
}

// any says whether a cached object of namespace ns matches; match must
// only read.
func (c *objectCache) any(ns string, match func(api.Object) bool) bool {
	if c == nil {
		return false
	}
	return c.objs.Any(ns, func(o api.Object) bool { return o.GetMeta().Namespace == ns && match(o) })
}

// get returns a copy of the cached object that the caller may change at
// its top level (its status, say); nested maps and slices are shared and
// must not be written.
func (c *objectCache) get(ns, name string) (api.Object, bool) {
	if c == nil {
		return nil, false
	}
	o, ok := c.objs.Get(ns, name)
	if !ok {
		return nil, false
	}
	v := reflect.New(reflect.TypeOf(o).Elem())
	v.Elem().Set(reflect.ValueOf(o).Elem())
	return v.Interface().(api.Object), true
}
