package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// clock is the injected time of a Jobs controller under test.
// testEpoch is where injected clocks start: 23:59:40 UTC, twenty seconds
// before a new day (and a new month and year), in no daylight-saving
// transition, so a test that assumed "today" fails here every time.
var testEpoch = time.Date(2030, 12, 31, 23, 59, 40, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// jobRig drives a Jobs controller by hand on a real embedded etcd, playing
// the agents by writing instances' phases.
type jobRig struct {
	t       *testing.T
	h       *harness
	c       *Jobs
	clock   *clock
	requeue map[string]time.Duration
}

func newJobRig(t *testing.T) *jobRig {
	h := newHarness(t)
	// A fixed instant, never the wall clock (a test must not depend on the
	// time of day it runs at); the store stamps createdAt from it too.
	r := &jobRig{t: t, h: h, clock: &clock{t: testEpoch}, requeue: map[string]time.Duration{}}
	h.st = h.st.WithClock(r.clock.now)
	r.c = &Jobs{Store: h.st, Log: h.log, Now: r.clock.now, Requeue: func(key string, d time.Duration) { r.requeue[key] = d }}
	return r
}

func (r *jobRig) create(y string) *api.Job {
	r.t.Helper()
	objs, err := api.Decode([]byte(y))
	if err != nil {
		r.t.Fatal(err)
	}
	j := objs[0].(*api.Job)
	api.SetDefaults(j)
	if err := api.Validate(j); err != nil {
		r.t.Fatal(err)
	}
	if err := r.h.st.Create(context.Background(), j); err != nil {
		r.t.Fatal(err)
	}
	return r.job(j.Metadata.Name)
}

func (r *jobRig) job(name string) *api.Job {
	r.t.Helper()
	o, err := r.h.st.Get(context.Background(), jobKind, testNS, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return o.(*api.Job)
}

func (r *jobRig) reconcile(name string) {
	r.t.Helper()
	if err := r.c.Reconcile(context.Background(), testNS+"/"+name); err != nil {
		r.t.Fatal(err)
	}
}

// instances are a Job's instances by name.
func (r *jobRig) instances(job string) map[string]*api.Instance {
	r.t.Helper()
	ins, err := r.c.instancesOf(context.Background(), testNS, job)
	if err != nil {
		r.t.Fatal(err)
	}
	m := map[string]*api.Instance{}
	for _, in := range ins {
		m[in.Metadata.Name] = in
	}
	return m
}

func (r *jobRig) names(job string) []string {
	var out []string
	for n := range r.instances(job) {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// finish plays the agent: the instance ran and exited in phase ph.
func (r *jobRig) finish(name string, ph api.Phase) {
	r.t.Helper()
	_, err := r.h.st.Mutate(context.Background(), instanceKind, testNS, name, func(o api.Object) error {
		in := o.(*api.Instance)
		in.Spec.Node = "n1"
		in.Status.Phase, in.Status.UpdatedAt = ph, r.clock.now()
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *jobRig) runs(parent string) []string {
	r.t.Helper()
	rs, err := r.c.runsOf(context.Background(), testNS, parent)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, j := range rs {
		out = append(out, j.Metadata.Name)
	}
	return out
}

func TestJobCompletionsAndParallelism(t *testing.T) {
	r := newJobRig(t)
	r.create("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: batch}\nspec: {image: x, completions: 3, parallelism: 2}\n")
	r.reconcile("batch")
	if got := r.names("batch"); !slices.Equal(got, []string{"batch-0", "batch-1"}) {
		t.Fatalf("instances %v, want batch-0 and batch-1 (parallelism 2)", got)
	}
	r.reconcile("batch") // nothing new while both run
	if n := len(r.instances("batch")); n != 2 {
		t.Fatalf("%d instances after a second reconcile", n)
	}
	r.finish("batch-0", api.PhaseSucceeded)
	r.reconcile("batch")
	if got := r.names("batch"); !slices.Equal(got, []string{"batch-0", "batch-1", "batch-2"}) {
		t.Fatalf("instances %v, want a third", got)
	}
	r.finish("batch-1", api.PhaseSucceeded)
	r.reconcile("batch")
	if n := len(r.instances("batch")); n != 3 {
		t.Fatalf("%d instances: only one completion was missing", n)
	}
	r.finish("batch-2", api.PhaseSucceeded)
	r.reconcile("batch")
	j := r.job("batch")
	if j.Status.State != api.JobComplete || j.Status.Succeeded != 3 || j.Status.CompletionTime.IsZero() {
		t.Fatalf("status %+v, want Complete with 3", j.Status)
	}
}

// Two leaders reconciling the same Job at once make no extra instance.
func TestJobNoDuplicatesUnderTwoControllers(t *testing.T) {
	r := newJobRig(t)
	r.create("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: once}\nspec: {image: x, completions: 4, parallelism: 4}\n")
	other := &Jobs{Store: r.h.st, Log: r.h.log, Now: r.clock.now}
	var wg sync.WaitGroup
	for _, c := range []*Jobs{r.c, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Reconcile(context.Background(), testNS+"/once"); err != nil && !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(r.instances("once")); n != 4 {
		t.Fatalf("%d instances, want 4", n)
	}
}

func TestJobBackoffLimitAndDelay(t *testing.T) {
	r := newJobRig(t)
	r.create("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: flaky}\nspec: {image: x, backoffLimit: 1}\n")
	r.reconcile("flaky")
	r.finish("flaky-0", api.PhaseFailed)
	r.reconcile("flaky")
	if n := len(r.instances("flaky")); n != 1 {
		t.Fatalf("replaced at once: %d instances (want a 1 s back-off first)", n)
	}
	if d := r.requeue[testNS+"/flaky"]; d <= 0 || d > time.Second {
		t.Fatalf("requeued after %v, want within the 1 s back-off", d)
	}
	r.clock.add(time.Second)
	r.reconcile("flaky")
	if got := r.names("flaky"); !slices.Equal(got, []string{"flaky-0", "flaky-1"}) {
		t.Fatalf("instances %v after the back-off", got)
	}
	r.finish("flaky-1", api.PhaseFailed)
	r.reconcile("flaky")
	j := r.job("flaky")
	if j.Status.State != api.JobFailed || j.Status.Reason != "BackoffLimitExceeded" || j.Status.Failed != 2 {
		t.Fatalf("status %+v, want Failed, BackoffLimitExceeded, 2 failures", j.Status)
	}
	r.clock.add(time.Hour)
	r.reconcile("flaky")
	if n := len(r.instances("flaky")); n != 2 {
		t.Fatalf("a failed Job made more instances: %d", n)
	}
}

func TestJobDeadlineAndTTL(t *testing.T) {
	r := newJobRig(t)
	r.create("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: slow}\nspec: {image: x, activeDeadlineSeconds: 5, ttlSecondsAfterFinished: 10}\n")
	r.reconcile("slow")
	if d := r.requeue[testNS+"/slow"]; d != 5*time.Second {
		t.Fatalf("requeued after %v, want the deadline, 5 s", d)
	}
	r.finish("slow-0", api.PhaseRunning) // placed and running
	r.clock.add(5 * time.Second)
	r.reconcile("slow")
	j := r.job("slow")
	if j.Status.State != api.JobFailed || j.Status.Reason != "DeadlineExceeded" {
		t.Fatalf("status %+v, want DeadlineExceeded", j.Status)
	}
	if in := r.instances("slow")["slow-0"]; in == nil || in.Metadata.DeletedAt.IsZero() {
		t.Fatalf("the running instance was not stopped: %+v", in)
	}
	r.clock.add(9 * time.Second)
	r.reconcile("slow")
	r.job("slow") // still there
	r.clock.add(time.Second)
	r.reconcile("slow")
	if _, err := r.h.st.Get(context.Background(), jobKind, testNS, "slow"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the Job outlived its ttlSecondsAfterFinished: %v", err)
	}
	r.reconcile("slow") // its instances go with it
	if in := r.instances("slow")["slow-0"]; in != nil && in.Metadata.DeletedAt.IsZero() {
		t.Fatal("a deleted Job's instance is not being stopped")
	}
}

// cronRig starts a scheduled Job with the clock at its creation.
func cronRig(t *testing.T, spec string) (*jobRig, *api.Job) {
	r := newJobRig(t)
	j := r.create("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: tick}\nspec: {image: x, " + spec + "}\n")
	r.clock.set(j.Metadata.CreatedAt)
	return r, j
}

func minute(t time.Time) time.Time { return t.Truncate(time.Minute).Add(time.Minute) }

func TestScheduleOneRunPerTick(t *testing.T) {
	r, j := cronRig(t, `schedule: "* * * * *"`)
	first := minute(j.Metadata.CreatedAt)
	r.reconcile("tick")
	if runs := r.runs("tick"); len(runs) != 0 {
		t.Fatalf("runs before the first tick: %v", runs)
	}
	if d := r.requeue[testNS+"/tick"]; d != first.Sub(r.clock.now()) {
		t.Fatalf("requeued after %v, want the next tick in %v", d, first.Sub(r.clock.now()))
	}
	r.clock.set(first)
	r.reconcile("tick")
	r.clock.add(10 * time.Second)
	r.reconcile("tick") // the same tick again: nothing new
	want := []string{RunName("tick", first)}
	if runs := r.runs("tick"); !slices.Equal(runs, want) {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	st := r.job("tick").Status
	if !st.LastScheduleTime.Equal(first) || !st.NextScheduleTime.Equal(first.Add(time.Minute)) || st.Active != 1 {
		t.Fatalf("status %+v", st)
	}
	// A leader that lost its status write makes the same tick's run again:
	// the name is taken, and nothing doubles.
	stale := &Jobs{Store: r.h.st, Log: r.h.log, Now: r.clock.now}
	if _, err := r.h.st.Mutate(context.Background(), jobKind, testNS, "tick", func(o api.Object) error {
		o.(*api.Job).Status.LastScheduleTime = time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := stale.Reconcile(context.Background(), testNS+"/tick"); err != nil {
		t.Fatal(err)
	}
	if runs := r.runs("tick"); !slices.Equal(runs, want) {
		t.Fatalf("runs %v after a repeated tick, want %v", runs, want)
	}
}

func TestScheduleMissedTicksNeverBurst(t *testing.T) {
	r, j := cronRig(t, `schedule: "* * * * *", startingDeadlineSeconds: 30`)
	first := minute(j.Metadata.CreatedAt)
	// The control plane was down over five ticks; it is back 20 s after
	// the fifth: that one runs, the four before are missed.
	r.clock.set(first.Add(4*time.Minute + 20*time.Second))
	r.reconcile("tick")
	if runs := r.runs("tick"); !slices.Equal(runs, []string{RunName("tick", first.Add(4*time.Minute))}) {
		t.Fatalf("runs %v, want only the latest tick's", runs)
	}
	if m := r.job("tick").Status.Missed; m != 4 {
		t.Fatalf("missed %d, want 4", m)
	}
	// Down again over three ticks, back 45 s after the last: past the
	// 30 s deadline, nothing runs and all three are missed.
	r.clock.set(first.Add(7*time.Minute + 45*time.Second))
	r.reconcile("tick")
	if runs := r.runs("tick"); len(runs) != 1 {
		t.Fatalf("runs %v: a tick past its starting deadline ran", runs)
	}
	if m := r.job("tick").Status.Missed; m != 7 {
		t.Fatalf("missed %d, want 7", m)
	}
}

func TestScheduleConcurrencyPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   func(first, second string) []string
	}{
		{"Allow", func(a, b string) []string { return []string{a, b} }},
		{"Forbid", func(a, b string) []string { return []string{a} }},
		{"Replace", func(a, b string) []string { return []string{b} }},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			r, j := cronRig(t, `schedule: "* * * * *", concurrencyPolicy: `+tc.policy)
			first := minute(j.Metadata.CreatedAt)
			r.clock.set(first)
			r.reconcile("tick")
			r.clock.set(first.Add(time.Minute)) // the first run is still active
			r.reconcile("tick")
			a, b := RunName("tick", first), RunName("tick", first.Add(time.Minute))
			if runs := r.runs("tick"); !slices.Equal(runs, tc.want(a, b)) {
				t.Fatalf("runs %v, want %v", runs, tc.want(a, b))
			}
		})
	}
}

func TestScheduleHistoryLimitsAndSuspend(t *testing.T) {
	r, j := cronRig(t, `schedule: "* * * * *", successfulJobsHistoryLimit: 2, failedJobsHistoryLimit: 1`)
	first := minute(j.Metadata.CreatedAt)
	var made []string
	for i := range 5 {
		tick := first.Add(time.Duration(i) * time.Minute)
		r.clock.set(tick)
		r.reconcile("tick")
		name := RunName("tick", tick)
		made = append(made, name)
		state := api.JobComplete
		if i == 1 || i == 2 {
			state = api.JobFailed
		}
		if _, err := r.h.st.Mutate(context.Background(), jobKind, testNS, name, func(o api.Object) error {
			o.(*api.Job).Status.State = state
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	r.reconcile("tick")
	// Kept: the 2 newest successes (4th, 5th) and the newest failure (3rd).
	if runs := r.runs("tick"); !slices.Equal(runs, []string{made[2], made[3], made[4]}) {
		t.Fatalf("runs %v, want %v", runs, []string{made[2], made[3], made[4]})
	}

	if _, err := r.h.st.Mutate(context.Background(), jobKind, testNS, "tick", func(o api.Object) error {
		o.(*api.Job).Spec.Suspend = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.clock.set(first.Add(8 * time.Minute))
	r.reconcile("tick")
	if st := r.job("tick").Status; st.State != api.JobSuspended || len(r.runs("tick")) != 3 {
		t.Fatalf("suspended: state %s, runs %v", st.State, r.runs("tick"))
	}
}

// TestScheduleTimeZonesAndDST: a daily 02:30 in Berlin runs once on the
// day the clocks go back (02:30 happens twice) and not at all on the day
// they go forward (there is no 02:30); every other day once, at 02:30
// local time.
func TestScheduleTimeZonesAndDST(t *testing.T) {
	s, err := api.ParseSchedule("30 2 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	perDay := map[string]int{}
	for tk := s.Next(time.Date(2026, 3, 27, 0, 0, 0, 0, berlin)); tk.Before(time.Date(2026, 10, 28, 0, 0, 0, 0, berlin)); tk = s.Next(tk) {
		if tk.Year() != 2026 {
			break
		}
		l := tk.In(berlin)
		if l.Hour() != 2 || l.Minute() != 30 {
			t.Fatalf("a tick at %v local", l)
		}
		perDay[l.Format("2006-01-02")]++
	}
	for day, want := range map[string]int{"2026-03-28": 1, "2026-03-29": 0, "2026-03-30": 1, "2026-10-24": 1, "2026-10-25": 1, "2026-10-26": 1} {
		if perDay[day] != want {
			t.Errorf("%s: %d runs, want %d", day, perDay[day], want)
		}
	}
	// Time zones move the tick: 08:00 in New York is 13:00 UTC in winter.
	ny, err := api.ParseSchedule("0 8 * * *", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if got := ny.Next(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)).UTC(); !got.Equal(time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)) {
		t.Fatalf("next 08:00 New York = %v UTC, want 13:00", got)
	}
}
