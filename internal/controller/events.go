package controller

import (
	"context"
	"log/slog"

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
}

// Record notes that something happened to obj.
func (r *Recorder) Record(ctx context.Context, obj api.Object, typ, reason, msg string) {
	if r == nil {
		return
	}
	ev := api.NewEvent(obj, typ, reason, msg, r.Source)
	if err := r.Store.CreateWithTTL(ctx, ev, EventTTL); err != nil {
		r.Log.Warn("record event", "object", ev.Object, "reason", reason, "err", err)
	}
}
