package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// maxScheduleHistory is how many applied scheduled changes an App lists.
const maxScheduleHistory = 20

func (c *Apps) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// dueChange is a scheduled change whose tick has come.
type dueChange struct {
	at  time.Time
	key string
	ch  api.ScheduledChange
}

// applySchedule applies the App's scheduled changes whose ticks have come,
// each tick once: the status records, per change, the last tick applied
// (or, for a change not seen before, when it was first seen, so a change
// added at 15:00 does not apply yesterday's 20:00). When several ticks of
// one change passed while the control plane was away, only the latest
// applies; changes apply in the order of their ticks.
func (c *Apps) applySchedule(ctx context.Context, ch *appChange) {
	app := ch.app
	if len(app.Spec.Schedule) == 0 && len(app.Status.Scheduled) == 0 {
		return
	}
	now := c.now()
	var due []dueChange
	seen := map[string]time.Time{}
	var next time.Time
	dirty := len(app.Status.Scheduled) != len(app.Spec.Schedule)
	for _, sc := range app.Spec.Schedule {
		k := sc.Key()
		last, ok := app.Status.Scheduled[k]
		if !ok {
			last, dirty = now, true
		}
		var tick time.Time
		for t, n := sc.NextAfter(last), 0; !t.IsZero() && !t.After(now) && n < maxTicks; t, n = sc.NextAfter(t), n+1 {
			tick = t
		}
		if !tick.IsZero() {
			due = append(due, dueChange{tick, k, sc})
			last, dirty = tick, true
		}
		seen[k] = last
		if t := sc.NextAfter(now); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !next.IsZero() && c.Requeue != nil {
		c.Requeue(nsKey(app.Metadata.Namespace, app.Metadata.Name), next.Sub(now)+50*time.Millisecond)
	}
	if !dirty {
		return
	}
	slices.SortStableFunc(due, func(a, b dueChange) int { return a.at.Compare(b.at) })
	a := app
	imageSet := false
	var last *dueChange
	for _, d := range due {
		set := d.ch.Set
		if set.Replicas != nil {
			r := *set.Replicas
			a.Spec.Replicas = &r
		}
		if set.Image != "" && set.Image != a.Spec.Image {
			prev := a.Spec.Image
			a.Spec.Image = set.Image
			if err := c.admit(ctx, a); err != nil {
				// The namespace's policy no longer admits the template
				// (or never did): the tick is spent, the image stays.
				a.Spec.Image = prev
				ch.record("Warning", "ScheduledChangeRefused", fmt.Sprintf("%s: image %s refused: %v", d.ch.When(), set.Image, err))
			} else {
				imageSet = true
			}
		}
		if set.Paused != nil {
			a.Spec.Update.Paused = *set.Paused
		}
		a.Status.ScheduleHistory = append(a.Status.ScheduleHistory, api.ScheduledRecord{At: d.at, Change: d.ch.When() + ": " + set.String()})
		ch.record("Normal", "Scheduled", fmt.Sprintf("%s (%s): set %s", d.ch.When(), d.at.Format(time.RFC3339), d.ch.Set.String()))
		last = &d
	}
	if n := len(a.Status.ScheduleHistory); n > maxScheduleHistory {
		a.Status.ScheduleHistory = a.Status.ScheduleHistory[n-maxScheduleHistory:]
	}
	a.Status.Scheduled = seen
	// A release set by the schedule is a new revision at once, and says
	// so in the rollout history (unless rollouts are held).
	if imageSet && a.Status.Revision > 0 && a.Status.TemplateHash != api.TemplateHash(a) && c.holdReason(a, now) == "" {
		newRevision(a, now)
		a.Status.History[len(a.Status.History)-1].Cause = "schedule: " + last.ch.When() + ": " + last.ch.Set.String()
	}
	ch.dirty = true
}

// holdReason says why a new revision of a may not roll out now: rollouts
// paused, or its maintenance window closed (then it asks to be looked at
// again when the window opens).
func (c *Apps) holdReason(a *api.App, now time.Time) string {
	u := &a.Spec.Update
	if u.Paused {
		return "rollout of the changed template held: spec.update.paused"
	}
	if u.Window == nil {
		return ""
	}
	open, at := u.Window.Open(now)
	if open {
		return ""
	}
	if c.Requeue != nil && !at.IsZero() {
		c.Requeue(nsKey(a.Metadata.Namespace, a.Metadata.Name), at.Sub(now)+50*time.Millisecond)
	}
	return "rollout of the changed template held until the maintenance window opens at " + at.Format(time.RFC3339)
}

// withCurrentRevision is app with the template and placement of its
// current revision, for the instances it makes while a changed template
// is held back.
func withCurrentRevision(app *api.App) *api.App {
	for _, h := range app.Status.History {
		if h.Revision == app.Status.Revision {
			cp := *app
			cp.Spec.Template, cp.Spec.Placement = h.Template, h.Placement
			return &cp
		}
	}
	return app
}
