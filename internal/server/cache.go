package server

import (
	"context"
	"errors"
	"reflect"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/store"
)

// objectCache is the server's view of one kind's stored objects, kept by
// a watch. Status writes (agents report every instance's status, and
// heartbeat their node) start from it: the stored object is taken from
// here and written back with its new status in one compare-and-swap, one
// etcd round trip, instead of a read and then the write. A stale entry
// only costs the CAS failing and the slow path running.
type objectCache struct {
	mu   sync.RWMutex
	objs map[string]api.Object // by namespace/name
}

// cachedKinds are the kinds whose status agents write.
var cachedKinds = []api.Kind{api.KindInstance, api.KindNode}

// Run keeps the server's caches until ctx ends. Without it the server is
// correct, only slower on status writes.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, kind := range cachedKinds {
		c := s.caches[kind]
		k := api.MustKind(kind)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &listwatch.Loop{
				Name:    "server cache of " + k.Plural,
				Source:  s.store.Source(k, ""),
				Replace: c.replace,
				Update:  c.update,
				Expired: func(err error) bool { return errors.Is(err, store.ErrCompacted) },
				Log:     s.log,
			}
			l.Run(ctx)
		}()
	}
	wg.Wait()
}

func cacheKey(ns, name string) string { return ns + "/" + name }

func (c *objectCache) replace(objs []api.Object) {
	m := make(map[string]api.Object, len(objs))
	for _, o := range objs {
		m[cacheKey(o.GetMeta().Namespace, o.GetMeta().Name)] = o
	}
	c.mu.Lock()
	c.objs = m
	c.mu.Unlock()
}

func (c *objectCache) update(events []api.WatchEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range events {
		m := ev.Object.GetMeta()
		if ev.Type == api.WatchDeleted {
			delete(c.objs, cacheKey(m.Namespace, m.Name))
		} else {
			c.objs[cacheKey(m.Namespace, m.Name)] = ev.Object
		}
	}
}

// get returns a copy of the cached object that the caller may change at
// its top level (its status, say); nested maps and slices are shared and
// must not be written.
func (c *objectCache) get(ns, name string) (api.Object, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	o, ok := c.objs[cacheKey(ns, name)]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	v := reflect.New(reflect.TypeOf(o).Elem())
	v.Elem().Set(reflect.ValueOf(o).Elem())
	return v.Interface().(api.Object), true
}
