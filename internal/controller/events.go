package controller

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// EventTTL is how long events are kept.
const EventTTL = api.EventTTL

// Recorder writes Events about objects, for `shoal describe`. Failing to
// record an event is logged and otherwise ignored.
type Recorder struct {
	Store  *store.Store
	Log    *slog.Logger
	Source string

	mu   sync.Mutex
	seen map[string]time.Time // object, reason and message -> last recorded
}

// repeatAfter is how long an identical event is not recorded again: a
// condition a controller sees at every reconcile is one event, not one
// every few seconds.
const repeatAfter = 10 * time.Minute

// Record notes that something happened to obj.
func (r *Recorder) Record(ctx context.Context, obj api.Object, typ, reason, msg string) {
	if r == nil {
		return
	}
	ev := api.NewEvent(obj, typ, reason, msg, r.Source)
	key := ev.Object + "\x00" + reason + "\x00" + msg
	now := time.Now()
	r.mu.Lock()
	if r.seen == nil || len(r.seen) > 10000 {
		r.seen = map[string]time.Time{}
	}
	if last, ok := r.seen[key]; ok && now.Sub(last) < repeatAfter {
		r.mu.Unlock()
		return
	}
	r.seen[key] = now
	r.mu.Unlock()
	// In the background: an event explains, it must not slow the decision
	// it is about.
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.Store.CreateWithTTL(ctx, ev, EventTTL); err != nil {
			r.Log.Debug("record event", "object", ev.Object, "reason", reason, "err", err)
		}
	}()
}
