package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/store"
)

// watchKind calls fn for every object of kind k, then for every change;
// when the watch breaks (compaction included) it lists again, and also
// every resync, so a missed event costs at most one period.
func watchKind(ctx context.Context, st *store.Store, k api.KindInfo, resync time.Duration, log *slog.Logger, fn func(api.Object)) {
	l := &listwatch.Loop{
		Name:   k.Plural,
		Source: storeSource{st, k},
		Replace: func(objs []api.Object) {
			for _, o := range objs {
				fn(o)
			}
		},
		Update: func(events []api.WatchEvent) {
			for _, ev := range events {
				fn(ev.Object)
			}
		},
		Expired: func(err error) bool { return errors.Is(err, store.ErrCompacted) },
		Resync:  resync,
		Log:     log,
	}
	l.Run(ctx)
}

// storeSource lists and watches one kind in the store, for listwatch.
type storeSource struct {
	st *store.Store
	k  api.KindInfo
}

func (s storeSource) List(ctx context.Context) ([]api.Object, int64, error) {
	return s.st.List(ctx, s.k, "")
}

func (s storeSource) Watch(ctx context.Context, rev int64) (<-chan api.WatchEvent, func() error, error) {
	out := make(chan api.WatchEvent, 64)
	var werr error
	go func() {
		defer close(out)
		for ev := range s.st.Watch(ctx, s.k, "", rev) {
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

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// nsKey is "namespace/name".
func nsKey(ns, name string) string { return ns + "/" + name }

func splitKey(key string) (ns, name string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
