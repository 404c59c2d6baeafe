package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/store"
)

// Indexes the controllers find objects by.
const (
	// indexOwner holds an Instance under "namespace/app", or
	// "namespace/job:NAME" for a Job's.
	indexOwner = "owner"
	// indexNode holds an Instance under the node it is bound to.
	indexNode = "node"
	// indexSecret holds an App under "namespace/secret" for every Secret
	// its template uses.
	indexSecret = "secret"
	// indexCronJob holds a Job run under "namespace/parent".
	indexCronJob = "cronjob"
)

func ownerKey(ns, app string) string    { return ns + "/" + app }
func jobOwnerKey(ns, job string) string { return ns + "/job:" + job }

// indexes are the controllers' indexes, by kind.
var indexes = map[api.Kind]map[string]listwatch.IndexFunc{
	api.KindInstance: {
		indexOwner: func(o api.Object) []string {
			in := o.(*api.Instance)
			if in.Spec.Job != "" {
				return []string{jobOwnerKey(in.Metadata.Namespace, in.Spec.Job)}
			}
			return []string{ownerKey(in.Metadata.Namespace, in.Spec.App)}
		},
		indexNode: func(o api.Object) []string {
			if n := o.(*api.Instance).Spec.Node; n != "" {
				return []string{n}
			}
			return nil
		},
	},
	api.KindApp: {
		indexSecret: func(o api.Object) []string {
			a := o.(*api.App)
			var out []string
			for _, s := range a.Spec.Template.SecretNames() {
				out = append(out, nsKey(a.Metadata.Namespace, s))
			}
			return out
		},
	},
	api.KindJob: {
		indexCronJob: func(o api.Object) []string {
			j := o.(*api.Job)
			if p := j.Metadata.Labels[api.LabelCronJob]; p != "" {
				return []string{nsKey(j.Metadata.Namespace, p)}
			}
			return nil
		},
	},
}

// cachedKinds are the kinds the manager keeps a cache of.
var cachedKinds = []api.Kind{api.KindApp, api.KindInstance, api.KindNode, api.KindJob, api.KindSecret}

// Caches are the controllers' watch-fed views of the kinds they read, one
// list-watch each, shared by every controller of one leadership term.
// Objects read from them are shared and read-only: a controller that
// changes one changes a copy (or writes through Store.Mutate, which reads
// its own).
//
// A controller reads its own writes: after a write it notes the revision
// (Wrote), and its next read of that kind waits until the cache holds it.
// Without that, a binder could place a second instance in room its last
// pass had already filled.
type Caches struct {
	st    *store.Store
	kinds map[api.Kind]*listwatch.Cache

	mu    sync.Mutex
	wrote map[api.Kind]int64
}

// NewCaches returns empty caches over st, with the controllers' indexes.
func NewCaches(st *store.Store) *Caches {
	c := &Caches{st: st, kinds: map[api.Kind]*listwatch.Cache{}, wrote: map[api.Kind]int64{}}
	for _, k := range cachedKinds {
		lc := listwatch.NewCache()
		for name, f := range indexes[k] {
			lc.AddIndex(name, f)
		}
		c.kinds[k] = lc
	}
	return c
}

// Of returns the cache of kind k (nil for a kind not cached).
func (c *Caches) Of(k api.Kind) *listwatch.Cache { return c.kinds[k] }

// Run feeds every cache from the store until ctx ends; resync lists again
// that often.
func (c *Caches) Run(ctx context.Context, resync time.Duration, log *slog.Logger) {
	var wg sync.WaitGroup
	for kind, lc := range c.kinds {
		k := api.MustKind(kind)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &listwatch.Loop{
				Name:     "controllers' " + k.Plural,
				Source:   c.st.Source(k, ""),
				Replace:  lc.Replace,
				Update:   lc.Update,
				Progress: lc.Progress,
				Expired:  func(err error) bool { return errors.Is(err, store.ErrCompacted) },
				Resync:   resync,
				Log:      log,
			}
			l.Run(ctx)
		}()
	}
	wg.Wait()
}

// WaitSynced waits until every cache has listed once.
func (c *Caches) WaitSynced(ctx context.Context) error {
	for _, lc := range c.kinds {
		if err := lc.WaitRev(ctx, 0); err != nil {
			return err
		}
	}
	return nil
}

// Wrote notes that a controller wrote an object of kind k at revision rev.
func (c *Caches) Wrote(k api.Kind, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wrote[k] = max(c.wrote[k], rev)
}

// fresh returns kind k's cache once it holds the controllers' own writes.
func (c *Caches) fresh(ctx context.Context, k api.Kind) (*listwatch.Cache, error) {
	lc := c.kinds[k]
	if lc == nil {
		return nil, fmt.Errorf("controllers keep no cache of %s", k)
	}
	c.mu.Lock()
	rev := c.wrote[k]
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, freshWait)
	defer cancel()
	if err := lc.WaitRev(wctx, rev); err != nil {
		// A watch behind or failing: the reconcile fails and is queued
		// again (with back-off) rather than waiting for the next relist.
		return nil, fmt.Errorf("waiting for the cache of %s to reach revision %d: %w", k, rev, err)
	}
	return lc, nil
}

// freshWait bounds how long a read waits for a cache to catch up with the
// controllers' own writes.
const freshWait = 5 * time.Second

// reader is what the controllers read through: the caches while the
// manager runs them, the store itself when a test drives a Reconcile.
// What it returns is shared and read-only.
type reader interface {
	get(ctx context.Context, k api.Kind, ns, name string) (api.Object, error)
	list(ctx context.Context, k api.Kind, ns string) ([]api.Object, error)
	byIndex(ctx context.Context, k api.Kind, index, value string) ([]api.Object, error)
	wrote(k api.Kind, rev int64)
}

func readerOf(c *Caches, st *store.Store) reader {
	if c != nil {
		return cacheReader{c}
	}
	return storeReader{st}
}

type cacheReader struct{ c *Caches }

func (r cacheReader) get(ctx context.Context, k api.Kind, ns, name string) (api.Object, error) {
	lc, err := r.c.fresh(ctx, k)
	if err != nil {
		return nil, err
	}
	if o, ok := lc.Get(ns, name); ok {
		return o, nil
	}
	return nil, fmt.Errorf("%s %q in namespace %q: %w", k, name, ns, store.ErrNotFound)
}

func (r cacheReader) list(ctx context.Context, k api.Kind, ns string) ([]api.Object, error) {
	lc, err := r.c.fresh(ctx, k)
	if err != nil {
		return nil, err
	}
	return lc.List(ns), nil
}

func (r cacheReader) byIndex(ctx context.Context, k api.Kind, index, value string) ([]api.Object, error) {
	lc, err := r.c.fresh(ctx, k)
	if err != nil {
		return nil, err
	}
	return lc.ByIndex(index, value), nil
}

func (r cacheReader) wrote(k api.Kind, rev int64) { r.c.Wrote(k, rev) }

// storeReader reads the store at every call (and finds by index by
// listing everything): for tests that drive one Reconcile without a
// manager.
type storeReader struct{ st *store.Store }

func (r storeReader) get(ctx context.Context, k api.Kind, ns, name string) (api.Object, error) {
	return r.st.Get(ctx, api.MustKind(k), ns, name)
}

func (r storeReader) list(ctx context.Context, k api.Kind, ns string) ([]api.Object, error) {
	objs, _, err := r.st.List(ctx, api.MustKind(k), ns)
	return objs, err
}

func (r storeReader) byIndex(ctx context.Context, k api.Kind, index, value string) ([]api.Object, error) {
	f := indexes[k][index]
	if f == nil {
		return nil, fmt.Errorf("no index %q of %s", index, k)
	}
	objs, _, err := r.st.List(ctx, api.MustKind(k), "")
	if err != nil {
		return nil, err
	}
	var out []api.Object
	for _, o := range objs {
		for _, v := range f(o) {
			if v == value {
				out = append(out, o)
				break
			}
		}
	}
	return out, nil
}

func (storeReader) wrote(api.Kind, int64) {}
