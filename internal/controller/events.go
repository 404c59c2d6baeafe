package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// EventTTL is how long events are kept.
const EventTTL = time.Hour

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
	ev := NewEvent(obj, typ, reason, msg, r.Source)
	if err := r.Store.CreateWithTTL(ctx, ev, EventTTL); err != nil {
		r.Log.Warn("record event", "object", ev.Object, "reason", reason, "err", err)
	}
}

// NewEvent builds an Event about obj.
func NewEvent(obj api.Object, typ, reason, msg, source string) *api.Event {
	m := obj.GetMeta()
	now := time.Now().UTC()
	ns := m.Namespace
	if ns == "" {
		ns = api.DefaultNamespace
	}
	return &api.Event{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent},
		Metadata: api.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", strings.ToLower(m.Name), now.UnixNano()),
			Namespace: ns,
		},
		Object:  string(obj.GetTypeMeta().Kind) + "/" + m.Name,
		Type:    typ,
		Reason:  reason,
		Message: msg,
		Time:    now,
		Source:  source,
	}
}
