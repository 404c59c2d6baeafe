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
		Source: st.Source(k, ""),
		Replace: func(objs []api.Object, _ int64) {
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
