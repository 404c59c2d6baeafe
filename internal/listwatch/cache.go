package listwatch

import (
	"context"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
)

// Cache is a watch-fed view of one kind's objects that many readers share:
// a Loop feeds it (Replace, Update) and readers look objects up by name, by
// namespace or by an index, without a round trip to the store.
//
// Objects handed out are the cache's own and are shared by every reader:
// they must not be changed. A reader that wants to change one changes a
// copy (a shallow copy of the top level is enough for the fields a status
// write replaces; maps and slices inside stay shared and read-only).
//
// It may be a moment behind the store. A reader that must see its own
// write waits for the write's revision first (WaitRev).
type Cache struct {
	mu      sync.RWMutex
	objs    map[string]api.Object // by namespace/name
	byNS    map[string]map[string]api.Object
	index   map[string]IndexFunc
	indexed map[string]map[string]map[string]api.Object // index -> value -> key -> object
	// rev is the last revision whose every event the cache holds; seen
	// is the revision of the last event applied. One store revision (a
	// transaction) can arrive in two batches, so seen counts as whole
	// only once a later revision or a bookmark at or past it comes.
	rev, seen int64
	synced    bool
	changed   chan struct{} // closed and replaced whenever rev moves
	// handlers are told of every change, after the cache holds it.
	handlers []func(old, cur api.Object)
}

// IndexFunc names the values an object is found under in one index (an
// Instance's "namespace/app", say); none leaves it out.
type IndexFunc func(api.Object) []string

// NewCache returns an empty cache, not yet synced.
func NewCache() *Cache {
	return &Cache{
		objs:    map[string]api.Object{},
		byNS:    map[string]map[string]api.Object{},
		index:   map[string]IndexFunc{},
		indexed: map[string]map[string]map[string]api.Object{},
		changed: make(chan struct{}),
	}
}

// Key is how a cache names an object: "namespace/name" ("/name" for a
// cluster-wide kind).
func Key(ns, name string) string { return ns + "/" + name }

func keyOf(o api.Object) string { m := o.GetMeta(); return Key(m.Namespace, m.Name) }

// AddIndex adds index name; the objects already held are indexed at once.
func (c *Cache) AddIndex(name string, f IndexFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index[name] = f
	c.indexed[name] = map[string]map[string]api.Object{}
	for k, o := range c.objs {
		c.indexOne(name, f, k, o)
	}
}

// OnChange calls fn for every change the cache takes, after it holds it:
// old is the object as it was (nil if new), cur as it is now (nil if gone).
// A list calls fn for every object listed (and for those that went
// meanwhile), since it cannot know what changed. fn runs on the feeding
// Loop's goroutine and must not block; it must not change either object.
func (c *Cache) OnChange(fn func(old, cur api.Object)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = append(c.handlers, fn)
}

type change struct{ old, cur api.Object }

// Replace installs a list taken at revision rev (Loop.Replace).
func (c *Cache) Replace(objs []api.Object, rev int64) {
	c.mu.Lock()
	prev := c.objs
	c.objs = make(map[string]api.Object, len(objs))
	c.byNS = map[string]map[string]api.Object{}
	for name := range c.indexed {
		c.indexed[name] = map[string]map[string]api.Object{}
	}
	changes := make([]change, 0, len(objs))
	for _, o := range objs {
		k := keyOf(o)
		c.putLocked(k, o)
		changes = append(changes, change{prev[k], o})
		delete(prev, k)
	}
	for _, o := range prev {
		changes = append(changes, change{o, nil})
	}
	c.synced = true
	c.seen = rev
	c.moveLocked(rev)
	handlers := c.handlers
	c.mu.Unlock()
	notify(handlers, changes)
}

// Update applies a batch of watch events (Loop.Update).
func (c *Cache) Update(events []api.WatchEvent) {
	c.mu.Lock()
	changes := make([]change, 0, len(events))
	rev := c.rev
	for _, ev := range events {
		if ev.Revision > c.seen {
			rev = max(rev, c.seen) // a later revision: the one before is whole
			c.seen = ev.Revision
		}
		k := keyOf(ev.Object)
		old := c.objs[k]
		if old != nil {
			c.dropLocked(k, old)
		}
		if ev.Type == api.WatchDeleted {
			changes = append(changes, change{old, nil})
		} else {
			c.putLocked(k, ev.Object)
			changes = append(changes, change{old, ev.Object})
		}
	}
	c.moveLocked(rev)
	handlers := c.handlers
	c.mu.Unlock()
	notify(handlers, changes)
}

// Progress says that every event through revision rev has been applied
// (Loop.Progress: a bookmark).
func (c *Cache) Progress(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = max(c.seen, rev)
	if rev > c.rev {
		c.moveLocked(rev)
	}
}

func notify(handlers []func(old, cur api.Object), changes []change) {
	for _, ch := range changes {
		for _, fn := range handlers {
			fn(ch.old, ch.cur)
		}
	}
}

func (c *Cache) moveLocked(rev int64) {
	c.rev = max(c.rev, rev)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Cache) putLocked(k string, o api.Object) {
	c.objs[k] = o
	ns := o.GetMeta().Namespace
	m := c.byNS[ns]
	if m == nil {
		m = map[string]api.Object{}
		c.byNS[ns] = m
	}
	m[k] = o
	for name, f := range c.index {
		c.indexOne(name, f, k, o)
	}
}

func (c *Cache) indexOne(name string, f IndexFunc, k string, o api.Object) {
	for _, v := range f(o) {
		m := c.indexed[name][v]
		if m == nil {
			m = map[string]api.Object{}
			c.indexed[name][v] = m
		}
		m[k] = o
	}
}

func (c *Cache) dropLocked(k string, o api.Object) {
	delete(c.objs, k)
	ns := o.GetMeta().Namespace
	if m := c.byNS[ns]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(c.byNS, ns)
		}
	}
	for name, f := range c.index {
		for _, v := range f(o) {
			if m := c.indexed[name][v]; m != nil {
				delete(m, k)
				if len(m) == 0 {
					delete(c.indexed[name], v)
				}
			}
		}
	}
}

// Get returns the object named ns/name (ns "" for a cluster-wide kind).
// It must not be changed.
func (c *Cache) Get(ns, name string) (api.Object, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o, ok := c.objs[Key(ns, name)]
	return o, ok
}

// List returns the objects of namespace ns ("" for all), in no order.
// They must not be changed.
func (c *Cache) List(ns string) []api.Object {
	c.mu.RLock()
	defer c.mu.RUnlock()
	from := c.objs
	if ns != "" {
		from = c.byNS[ns]
	}
	out := make([]api.Object, 0, len(from))
	for _, o := range from {
		out = append(out, o)
	}
	return out
}

// ByIndex returns the objects index name holds under value, in no order.
// They must not be changed. An index never added holds nothing.
func (c *Cache) ByIndex(name, value string) []api.Object {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := c.indexed[name][value]
	out := make([]api.Object, 0, len(m))
	for _, o := range m {
		out = append(out, o)
	}
	return out
}

// Any says whether an object of namespace ns ("" for all) matches; match
// runs under the cache's lock and must only read.
func (c *Cache) Any(ns string, match func(api.Object) bool) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	from := c.objs
	if ns != "" {
		from = c.byNS[ns]
	}
	for _, o := range from {
		if match(o) {
			return true
		}
	}
	return false
}

// Len is how many objects the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.objs)
}

// Synced says whether a list has been installed.
func (c *Cache) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// Rev is the store revision the cache reflects.
func (c *Cache) Rev() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// WaitRev waits until the cache has listed and reflects revision rev (a
// write of this kind that returned rev is then visible), or ctx ends.
func (c *Cache) WaitRev(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		ok, ch := c.synced && c.rev >= rev, c.changed
		c.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
