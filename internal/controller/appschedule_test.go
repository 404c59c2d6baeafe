package controller

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// scheduleRig reconciles one App by hand with an injected clock that
// starts at start (a fixed instant, never the wall clock: a test must not
// depend on the time of day it runs at); the store stamps createdAt from
// the same clock.
func scheduleRig(t *testing.T, app *api.App, start time.Time) (*harness, *Apps, *clock) {
	t.Helper()
	h := newHarness(t)
	clk := &clock{t: start}
	h.st = h.st.WithClock(clk.now)
	h.apply(app)
	c := &Apps{Store: h.st, Log: slog.New(slog.DiscardHandler), Now: clk.now}
	return h, c, clk
}

func reconcileApp(t *testing.T, c *Apps, name string) {
	t.Helper()
	if err := c.Reconcile(context.Background(), nsKey(testNS, name)); err != nil {
		t.Fatal(err)
	}
}

func int32p(n int32) *int32 { return &n }

// TestScheduledChanges: busy hours every day (cron, in a time zone) and a
// release at a set time apply at their ticks, once each; a change added
// later does not apply ticks before it was seen; a control plane away
// over several ticks applies the latest of each change, in tick order.
func TestScheduledChanges(t *testing.T) {
	app := newApp("web", 2, "web:1")
	// 20:00, after the day's last tick: the first tick is 08:00 next day.
	h, c, clk := scheduleRig(t, app, time.Date(2031, 5, 6, 20, 0, 0, 0, time.UTC))
	day := time.Date(2031, 5, 7, 0, 0, 0, 0, time.UTC)
	release := day.Add(12 * time.Hour)
	a := h.getApp("web")
	a.Spec.Schedule = []api.ScheduledChange{
		{Cron: "0 8 * * *", TimeZone: "UTC", Set: api.ScheduledSet{Replicas: int32p(5)}},
		{Cron: "0 18 * * *", TimeZone: "UTC", Set: api.ScheduledSet{Replicas: int32p(1)}},
		{At: release.Format(time.RFC3339), Set: api.ScheduledSet{Image: "web:2"}},
	}
	h.apply(a)
	reconcileApp(t, c, "web")
	if r := *h.getApp("web").Spec.Replicas; r != 2 {
		t.Fatalf("replicas %d before any tick", r)
	}
	clk.set(day.Add(8 * time.Hour))
	reconcileApp(t, c, "web")
	reconcileApp(t, c, "web") // the same tick again
	got := h.getApp("web")
	if *got.Spec.Replicas != 5 || len(got.Status.ScheduleHistory) != 1 {
		t.Fatalf("08:00: replicas %d, history %v", *got.Spec.Replicas, got.Status.ScheduleHistory)
	}
	clk.set(release)
	reconcileApp(t, c, "web")
	got = h.getApp("web")
	if got.Spec.Image != "web:2" || got.Status.Revision != 2 || !strings.HasPrefix(got.Status.History[len(got.Status.History)-1].Cause, "schedule: at ") {
		t.Fatalf("12:00 release: image %s, revision %d, history %+v", got.Spec.Image, got.Status.Revision, got.Status.History)
	}
	// Away from 12:00 to 09:30 the next day: 18:00 then 08:00 passed; the
	// later one wins.
	clk.set(day.Add(24*time.Hour + 9*time.Hour + 30*time.Minute))
	reconcileApp(t, c, "web")
	got = h.getApp("web")
	if *got.Spec.Replicas != 5 {
		t.Fatalf("after a night away: replicas %d, want 5 (08:00 came after 18:00)", *got.Spec.Replicas)
	}
	if n := len(got.Status.ScheduleHistory); n != 4 {
		t.Fatalf("history %v, want 4 entries", got.Status.ScheduleHistory)
	}
	// A change added now does not apply today's 08:00.
	got.Spec.Schedule = append(got.Spec.Schedule, api.ScheduledChange{Cron: "0 8 * * *", Set: api.ScheduledSet{Replicas: int32p(9)}})
	h.apply(got)
	reconcileApp(t, c, "web")
	if r := *h.getApp("web").Spec.Replicas; r != 5 {
		t.Fatalf("a new change applied a tick before it was seen: replicas %d", r)
	}
}

// TestRolloutsHeldOutsideTheWindow: a changed template waits for the
// maintenance window (instances made meanwhile run the current revision),
// and rolls out when it opens; paused holds it too.
func TestRolloutsHeldOutsideTheWindow(t *testing.T) {
	app := newApp("web", 1, "web:1")
	app.Spec.Update.Window = &api.UpdateWindow{Cron: "0 2 * * *", Duration: "2h"}
	// 16:00, ten hours before the 02:00 window opens.
	night := time.Date(2031, 5, 7, 2, 0, 0, 0, time.UTC)
	h, c, clk := scheduleRig(t, app, night.Add(-10*time.Hour))
	reconcileApp(t, c, "web")
	if rev := h.getApp("web").Status.Revision; rev != 1 {
		t.Fatalf("the first revision waited for a window: revision %d", rev)
	}
	a := h.getApp("web")
	a.Spec.Image = "web:2"
	h.apply(a)
	reconcileApp(t, c, "web")
	got := h.getApp("web")
	if got.Status.Revision != 1 || !strings.Contains(got.Status.Message, "maintenance window opens at "+night.Format(time.RFC3339)) {
		t.Fatalf("outside the window: revision %d, message %q", got.Status.Revision, got.Status.Message)
	}
	for _, in := range h.instances("web") {
		if in.Spec.Template.Image != "web:1" {
			t.Fatalf("an instance made while held runs %s", in.Spec.Template.Image)
		}
	}
	clk.set(night.Add(30 * time.Minute))
	reconcileApp(t, c, "web")
	if rev := h.getApp("web").Status.Revision; rev != 2 {
		t.Fatalf("inside the window: revision %d, want 2", rev)
	}
	// Paused holds whatever the window says.
	a = h.getApp("web")
	a.Spec.Update.Paused = true
	a.Spec.Image = "web:3"
	h.apply(a)
	reconcileApp(t, c, "web")
	if got := h.getApp("web"); got.Status.Revision != 2 || !strings.Contains(got.Status.Message, "paused") {
		t.Fatalf("paused: revision %d, message %q", got.Status.Revision, got.Status.Message)
	}
}
