package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// AppLoad is what an App's instances did over the last sample period.
type AppLoad struct {
	// Instances is how many running instances reported; MilliCPU is
	// their CPU use summed.
	Instances int32
	MilliCPU  int64
	// RequestsPerSecond is the App's rate over every node's proxy.
	RequestsPerSecond float64
	// Waiting says a request waits at a proxy for an instance to start
	// (an App scaled to zero).
	Waiting bool
}

// LoadSource tells the autoscaler an App's load.
type LoadSource interface {
	Load(ctx context.Context, ns, app string) (AppLoad, error)
}

// Autoscaler moves the replicas of Apps with spec.autoscale to where
// their load meets the target, within a tolerance band, no faster than
// the stabilization windows allow and by at most doubling (or +4) a step.
// It keeps each App's recent recommendations in memory: a new leader
// starts with none, so it scales down only after a full window.
type Autoscaler struct {
	Store  *store.Store
	Log    *slog.Logger
	Events *Recorder
	Load   LoadSource
	// Requeue asks for key again after d: the autoscaler looks at each
	// App every Period while its autoscale is on.
	Requeue func(key string, d time.Duration)
	// Now is the clock (tests inject one).
	Now func() time.Time
	// Period is how often an App is looked at (default 1 s).
	Period time.Duration
	// Cache, when set, is what the autoscaler reads (the manager's); nil
	// reads the store.
	Cache *Caches

	mu    sync.Mutex
	recs  map[string][]recommendation
	since map[string]time.Time // when this autoscaler began watching each App
}

type recommendation struct {
	at      time.Time
	replica int32
}

// Tolerance is how far from the target the load may be before the
// autoscaler acts (as HPA's 10%).
const Tolerance = 0.1

// maxDecisions is how many decisions an App's status keeps.
const maxDecisions = 5

func (c *Autoscaler) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Reconcile implements Reconciler for key "namespace/app".
func (c *Autoscaler) Reconcile(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	r := readerOf(c.Cache, c.Store)
	obj, err := r.get(ctx, api.KindApp, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	app := obj.(*api.App)
	as := app.Spec.Autoscale
	if as == nil {
		c.forget(key)
		return nil
	}
	if c.Requeue != nil {
		c.Requeue(key, max(c.Period, 100*time.Millisecond))
	}
	load, err := c.Load.Load(ctx, ns, name)
	if err != nil {
		return err
	}
	now := c.now()
	current := int32(1)
	if app.Spec.Replicas != nil {
		current = *app.Spec.Replicas
	}
	want, cpuPct, why := Recommend(as, app.Spec.Resources.Request().MilliCPU, current, load)
	final := c.stabilize(key, as, current, want, now)
	downWindow := time.Duration(deref32(as.ScaleDownStabilizationSeconds, api.DefaultScaleDownStabilizationSeconds)) * time.Second
	if prev := app.Status.Autoscale; final < current && prev != nil && now.Sub(prev.LastScaleTime) < downWindow && final >= as.Min && current <= as.Max {
		// Scaled (or activated from zero) within the window: not down yet.
		final = current
	}
	st := api.AutoscaleStatus{CPUPercent: cpuPct, RequestsPerSecond: math.Round(load.RequestsPerSecond*10) / 10, Desired: final, UpdatedAt: now}
	if prev := app.Status.Autoscale; prev != nil {
		st.LastScaleTime, st.Decisions = prev.LastScaleTime, slices.Clone(prev.Decisions) // prev is the cache's
		// Figures alone are written at most every 5 s.
		if final == current && prev.Desired == final && now.Sub(prev.UpdatedAt) < 5*time.Second {
			return nil
		}
	}
	var decision string
	if final != current {
		decision = fmt.Sprintf("%s: %d → %d replicas: %s", now.Format(time.RFC3339), current, final, why)
		st.LastScaleTime = now
		st.Decisions = append(st.Decisions, decision)
		if n := len(st.Decisions); n > maxDecisions {
			st.Decisions = st.Decisions[n-maxDecisions:]
		}
	}
	written, err := c.Store.Mutate(ctx, appKind, ns, name, func(o api.Object) error {
		a := o.(*api.App)
		if a.Spec.Autoscale == nil {
			return nil
		}
		if final != current {
			n := final
			a.Spec.Replicas = &n
		}
		s := st
		a.Status.Autoscale = &s
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		r.wrote(api.KindApp, written.GetMeta().Revision)
	}
	if err == nil && decision != "" {
		c.Log.Info("autoscaled", "app", key, "from", current, "to", final, "why", why)
		c.Events.Record(ctx, app, "Normal", "Autoscaled", fmt.Sprintf("%d → %d replicas: %s", current, final, why))
	}
	return err
}

func (c *Autoscaler) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.recs, key)
	delete(c.since, key)
}

// stabilize records want and returns the replicas to set: up to the
// lowest recommendation of the scale-up window, down to the highest of
// the scale-down window, never more than doubling (or +4) at once.
func (c *Autoscaler) stabilize(key string, as *api.Autoscale, current, want int32, now time.Time) int32 {
	up := time.Duration(deref32(as.ScaleUpStabilizationSeconds, api.DefaultScaleUpStabilizationSeconds)) * time.Second
	down := time.Duration(deref32(as.ScaleDownStabilizationSeconds, api.DefaultScaleDownStabilizationSeconds)) * time.Second
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recs == nil {
		c.recs, c.since = map[string][]recommendation{}, map[string]time.Time{}
	}
	if _, ok := c.since[key]; !ok {
		c.since[key] = now
	}
	rs := append(c.recs[key], recommendation{now, want})
	keep := rs[:0]
	for _, r := range rs {
		if now.Sub(r.at) <= max(up, down) {
			keep = append(keep, r)
		}
	}
	c.recs[key] = keep
	final := current
	switch {
	case want > current:
		lowest := want
		for _, r := range keep {
			if now.Sub(r.at) <= up && r.replica < lowest {
				lowest = r.replica
			}
		}
		final = min(max(lowest, current), max(2*current, current+4))
	case want < current:
		highest := want
		for _, r := range keep {
			if now.Sub(r.at) <= down && r.replica > highest {
				highest = r.replica
			}
		}
		// A new leader (or an App just autoscaled) has less history than
		// the window: wait until it has a full window.
		if now.Sub(c.since[key]) < down {
			highest = current
		}
		final = min(highest, current)
	}
	return min(max(final, as.Min), as.Max)
}

// Recommend is the replicas the load asks for, before stabilization: for
// CPU, the running instances times their use over the target (when off by
// more than Tolerance); for requests, the rate over the per-replica target
// (the same). The larger wins, within min and max; a request waiting for
// an App at zero asks for one. It also returns the CPU use in percent of
// the request, and why.
func Recommend(as *api.Autoscale, requestMilliCPU int64, current int32, load AppLoad) (want, cpuPercent int32, why string) {
	want = 0
	var reasons []string
	if as.TargetCPUPercent > 0 && requestMilliCPU > 0 && load.Instances > 0 {
		util := float64(load.MilliCPU) / float64(int64(load.Instances)*requestMilliCPU) * 100
		cpuPercent = int32(math.Round(util))
		ratio := util / float64(as.TargetCPUPercent)
		w := current
		if math.Abs(ratio-1) > Tolerance {
			w = int32(math.Ceil(float64(load.Instances) * ratio))
		}
		want = max(want, w)
		reasons = append(reasons, fmt.Sprintf("CPU %d%% of request (target %d%%)", cpuPercent, as.TargetCPUPercent))
	}
	if as.TargetRequestsPerSecond > 0 {
		perReplica := load.RequestsPerSecond / float64(max(current, 1))
		target := float64(as.TargetRequestsPerSecond)
		ratio := perReplica / target
		w := current
		if current == 0 || math.Abs(ratio-1) > Tolerance {
			w = int32(math.Ceil(load.RequestsPerSecond / target))
		}
		want = max(want, w)
		reasons = append(reasons, fmt.Sprintf("%.1f requests/s (target %d per replica)", load.RequestsPerSecond, as.TargetRequestsPerSecond))
	}
	if load.Waiting {
		want = max(want, 1)
		reasons = append(reasons, "a request waits for an instance")
	}
	if as.TargetCPUPercent > 0 && load.Instances == 0 && as.TargetRequestsPerSecond == 0 && !load.Waiting {
		want = current // no figures: no decision
	}
	want = min(max(want, as.Min), as.Max)
	why = ""
	for i, r := range reasons {
		if i > 0 {
			why += ", "
		}
		why += r
	}
	if why == "" {
		why = "no load figures"
	}
	return want, cpuPercent, why
}
