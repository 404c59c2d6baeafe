package controller

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestRecommend(t *testing.T) {
	as := func(cpu int32, rps int32) *api.Autoscale {
		return &api.Autoscale{Min: 1, Max: 10, TargetCPUPercent: cpu, TargetRequestsPerSecond: rps}
	}
	for _, tc := range []struct {
		name    string
		as      *api.Autoscale
		current int32
		load    AppLoad
		want    int32
	}{
		{"CPU at target", as(50, 0), 2, AppLoad{Instances: 2, MilliCPU: 100}, 2}, // 2 × 100m request at 50%
		{"CPU within the tolerance band", as(50, 0), 2, AppLoad{Instances: 2, MilliCPU: 108}, 2},
		{"CPU double the target", as(50, 0), 2, AppLoad{Instances: 2, MilliCPU: 200}, 4},
		{"CPU idle: down to min", as(50, 0), 4, AppLoad{Instances: 4, MilliCPU: 0}, 1},
		{"CPU far above: up to max", as(50, 0), 2, AppLoad{Instances: 2, MilliCPU: 2000}, 10},
		{"no figures yet: stay", as(50, 0), 3, AppLoad{}, 3},
		{"requests: 3 per target", as(0, 10), 1, AppLoad{RequestsPerSecond: 30}, 3},
		{"requests within the band", as(0, 10), 3, AppLoad{RequestsPerSecond: 31}, 3},
		{"the larger of the two", as(50, 10), 2, AppLoad{Instances: 2, MilliCPU: 100, RequestsPerSecond: 50}, 5},
		{"scale from zero: a waiting request", &api.Autoscale{Min: 0, Max: 5, TargetRequestsPerSecond: 10}, 0, AppLoad{Waiting: true}, 1},
		{"zero stays zero without traffic", &api.Autoscale{Min: 0, Max: 5, TargetRequestsPerSecond: 10}, 0, AppLoad{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, why := Recommend(tc.as, 100, tc.current, tc.load)
			if got != tc.want {
				t.Fatalf("Recommend = %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}

// fakeLoad is a LoadSource the test sets.
type fakeLoad struct {
	mu sync.Mutex
	l  AppLoad
}

func (f *fakeLoad) set(l AppLoad) { f.mu.Lock(); f.l = l; f.mu.Unlock() }
func (f *fakeLoad) Load(context.Context, string, string) (AppLoad, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.l, nil
}

// TestAutoscalerWindows: up at once (window 0), by at most double a step;
// a short dip does not scale down; a dip as long as the down window does;
// each decision is recorded with its figures.
func TestAutoscalerWindows(t *testing.T) {
	h := newHarness(t)
	app := newApp("web", 2, "web:1")
	app.Spec.Resources = api.Resources{CPU: "100m", Memory: "32Mi"}
	down := int32(60)
	app.Spec.Autoscale = &api.Autoscale{Min: 1, Max: 20, TargetCPUPercent: 50, ScaleDownStabilizationSeconds: &down}
	h.apply(app)
	clk := &clock{t: testEpoch}
	load := &fakeLoad{}
	c := &Autoscaler{Store: h.st, Log: slog.New(slog.DiscardHandler), Load: load, Now: clk.now}
	step := func(l AppLoad, d time.Duration) int32 {
		t.Helper()
		load.set(l)
		clk.add(d)
		if err := c.Reconcile(context.Background(), nsKey(testNS, "web")); err != nil {
			t.Fatal(err)
		}
		return *h.getApp("web").Spec.Replicas
	}
	// Load crosses the target: up at once, at most +4 or double a step.
	if r := step(AppLoad{Instances: 2, MilliCPU: 500}, time.Second); r != 6 {
		t.Fatalf("after a burst: %d replicas, want 6 (2 + 4)", r)
	}
	if r := step(AppLoad{Instances: 6, MilliCPU: 1500}, time.Second); r != 12 {
		t.Fatalf("still hot: %d replicas, want 12 (double)", r)
	}
	// Steady near the target: no change, step after step.
	for i := 0; i < 30; i++ {
		if r := step(AppLoad{Instances: 12, MilliCPU: 624}, time.Second); r != 12 {
			t.Fatalf("steady at 52%%: %d replicas at step %d, want 12 (no flapping)", r, i)
		}
	}
	// A 20 s dip is shorter than the 60 s window: nothing moves.
	for i := 0; i < 20; i++ {
		if r := step(AppLoad{Instances: 12, MilliCPU: 60}, time.Second); r != 12 {
			t.Fatalf("a short dip scaled down to %d", r)
		}
	}
	step(AppLoad{Instances: 12, MilliCPU: 624}, time.Second)
	// A dip as long as the window: down to what the load asks (12 at 5%
	// of a 50% target: 2).
	var r int32
	for i := 0; i < 62; i++ {
		r = step(AppLoad{Instances: 12, MilliCPU: 60}, time.Second)
	}
	if r != 2 {
		t.Fatalf("after a 62 s dip: %d replicas, want 2", r)
	}
	st := h.getApp("web").Status.Autoscale
	if st == nil || len(st.Decisions) != 3 || !strings.Contains(st.Decisions[0], "2 → 6 replicas: CPU 250% of request (target 50%)") {
		t.Fatalf("status %+v", st)
	}
}
