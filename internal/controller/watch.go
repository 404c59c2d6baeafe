package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// watchKind lists kind k, calls fn for every object, then for every change;
// when the watch breaks (compaction included) it lists again. It also lists
// again every resync, so a missed event costs at most one period.
func watchKind(ctx context.Context, st *store.Store, k api.KindInfo, resync time.Duration, log *slog.Logger, fn func(api.Object)) {
	for ctx.Err() == nil {
		objs, rev, err := st.List(ctx, k, "")
		if err != nil {
			log.Warn("list failed", "kind", k.Kind, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for _, o := range objs {
			fn(o)
		}
		wctx, cancel := context.WithTimeout(ctx, resync)
		for ev := range st.Watch(wctx, k, "", rev) {
			if ev.Type == store.Error {
				if !errors.Is(ev.Err, store.ErrCompacted) {
					log.Warn("watch broke; listing again", "kind", k.Kind, "err", ev.Err)
				}
				break
			}
			fn(ev.Object)
		}
		cancel()
	}
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
