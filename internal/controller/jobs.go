package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

var jobKind = api.MustKind(api.KindJob)

// Jobs runs Jobs to completion, and makes the runs of scheduled ones.
//
// A run's instances are named JOB-N, N the lowest number none of the
// Job's instances has; a scheduled Job's runs are named JOB-TICK, TICK the
// tick's Unix minute. Two leaders (or one restarted mid-reconcile) that
// decide the same thing try to create the same name, and the store lets
// one of them: a tick never runs twice, and no instance is doubled.
type Jobs struct {
	Store  *store.Store
	Log    *slog.Logger
	Events *Recorder
	// Requeue asks for key again after d (ticks, deadlines, back-off,
	// TTLs); nil in tests that drive Reconcile.
	Requeue func(key string, d time.Duration)
	// Now is the clock (tests inject one); nil is time.Now.
	Now func() time.Time
	// Cache, when set, is what the controller reads (the manager's); nil
	// reads the store.
	Cache *Caches
}

// maxJobBackoff caps the wait before a failed instance is replaced.
const maxJobBackoff = time.Minute

func (c *Jobs) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

func (c *Jobs) requeue(key string, d time.Duration) {
	if c.Requeue != nil {
		c.Requeue(key, max(d, 10*time.Millisecond))
	}
}

// Reconcile implements Reconciler for key "namespace/job".
func (c *Jobs) Reconcile(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	if name == "" {
		return nil
	}
	obj, err := readerOf(c.Cache, c.Store).get(ctx, api.KindJob, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return c.deleted(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	job := obj.(*api.Job)
	if job.Spec.Schedule != "" {
		return c.reconcileSchedule(ctx, key, job)
	}
	return c.reconcileRun(ctx, key, job)
}

// deleted stops what a deleted Job left: its instances, and a scheduled
// Job's runs.
func (c *Jobs) deleted(ctx context.Context, ns, name string) error {
	insts, err := c.instancesOf(ctx, ns, name)
	if err != nil {
		return err
	}
	for _, in := range insts {
		if err := removeInstance(ctx, c.Store, c.Cache, in); err != nil {
			return err
		}
	}
	runs, err := c.runsOf(ctx, ns, name)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if err := c.Store.Delete(ctx, jobKind, ns, r.Metadata.Name, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (c *Jobs) instancesOf(ctx context.Context, ns, job string) ([]*api.Instance, error) {
	objs, err := readerOf(c.Cache, c.Store).byIndex(ctx, api.KindInstance, indexOwner, jobOwnerKey(ns, job))
	if err != nil {
		return nil, err
	}
	var out []*api.Instance
	for _, o := range objs {
		if in := o.(*api.Instance); in.Spec.Job == job {
			out = append(out, in)
		}
	}
	return out, nil
}

// runsOf are the runs of scheduled Job parent, oldest first.
func (c *Jobs) runsOf(ctx context.Context, ns, parent string) ([]*api.Job, error) {
	objs, err := readerOf(c.Cache, c.Store).byIndex(ctx, api.KindJob, indexCronJob, nsKey(ns, parent))
	if err != nil {
		return nil, err
	}
	var out []*api.Job
	for _, o := range objs {
		if j := o.(*api.Job); j.Metadata.Labels[api.LabelCronJob] == parent {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *api.Job) int {
		if c := a.Metadata.CreatedAt.Compare(b.Metadata.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name) // ticks, in order
	})
	return out, nil
}

// tally is what a run's instances did.
type tally struct {
	succeeded, active, failures int32
	lastFailure                 time.Time
	used                        map[string]bool
}

func tallyOf(insts []*api.Instance) tally {
	t := tally{used: map[string]bool{}}
	for _, in := range insts {
		t.used[in.Metadata.Name] = true
		onFailure := in.Spec.Template.RestartPolicy == api.RestartOnFailure
		t.failures += in.Status.Restarts
		switch ph := in.Status.Phase; {
		case ph == api.PhaseSucceeded:
			t.succeeded++
		case ph == api.PhaseFailed:
			// With OnFailure the agent restarts it after a back-off: one
			// failure, and still active.
			t.failures++
			if onFailure && live(in) {
				t.active++
			}
			if in.Status.UpdatedAt.After(t.lastFailure) {
				t.lastFailure = in.Status.UpdatedAt
			}
		case live(in):
			t.active++
		}
	}
	return t
}

func (c *Jobs) reconcileRun(ctx context.Context, key string, job *api.Job) error {
	now := c.now()
	insts, err := c.instancesOf(ctx, job.Metadata.Namespace, job.Metadata.Name)
	if err != nil {
		return err
	}
	sp := &job.Spec
	completions, parallelism, backoffLimit := deref32(sp.Completions, 1), deref32(sp.Parallelism, 1), deref32(sp.BackoffLimit, api.DefaultBackoffLimit)
	t := tallyOf(insts)
	st := job.Status
	if st.StartTime.IsZero() {
		st.StartTime = now
	}
	finish := func(state api.JobState, reason, msg string) {
		st.State, st.Reason, st.Message, st.CompletionTime = state, reason, msg, now
		typ := "Normal"
		if state == api.JobFailed {
			typ = "Warning"
		}
		c.Events.Record(ctx, job, typ, string(state), msg)
	}
	switch {
	case st.State.Finished():
	case t.succeeded >= completions:
		finish(api.JobComplete, "", fmt.Sprintf("%d of %d completions succeeded", t.succeeded, completions))
	case t.failures > backoffLimit:
		finish(api.JobFailed, "BackoffLimitExceeded", fmt.Sprintf("%d failures, more than backoffLimit %d", t.failures, backoffLimit))
	case sp.ActiveDeadlineSeconds != nil && !now.Before(st.StartTime.Add(time.Duration(*sp.ActiveDeadlineSeconds)*time.Second)):
		finish(api.JobFailed, "DeadlineExceeded", fmt.Sprintf("still running %ds after it started (activeDeadlineSeconds)", *sp.ActiveDeadlineSeconds))
	default:
		st.State = api.JobRunning
		want := min(parallelism, completions-t.succeeded) - t.active
		if want > 0 && t.failures > 0 {
			delay := min(time.Second<<min(t.failures-1, 10), maxJobBackoff)
			if wait := t.lastFailure.Add(delay).Sub(now); wait > 0 {
				c.requeue(key, wait)
				want = 0
			}
		}
		for n := 0; want > 0; n++ {
			name := job.Metadata.Name + "-" + strconv.Itoa(n)
			if t.used[name] {
				continue
			}
			in := newJobInstance(job, name)
			err := c.Store.Create(ctx, in)
			if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
			if err == nil {
				readerOf(c.Cache, c.Store).wrote(api.KindInstance, in.Metadata.Revision)
			}
			t.used[name] = true
			t.active++
			want--
		}
		if d := sp.ActiveDeadlineSeconds; d != nil {
			c.requeue(key, st.StartTime.Add(time.Duration(*d)*time.Second).Sub(now))
		}
	}
	if st.State.Finished() {
		// Nothing more runs: stop what still does (a failed Job's
		// instances, or surplus ones).
		for _, in := range insts {
			if live(in) && !in.Status.Phase.Terminal() || in.Status.Phase == api.PhaseFailed && live(in) && in.Spec.Template.RestartPolicy == api.RestartOnFailure {
				if err := removeInstance(ctx, c.Store, c.Cache, in); err != nil {
					return err
				}
				t.active--
			}
		}
		t.active = max(t.active, 0)
		if ttl := sp.TTLSecondsAfterFinished; ttl != nil {
			if wait := st.CompletionTime.Add(time.Duration(*ttl) * time.Second).Sub(now); wait > 0 {
				c.requeue(key, wait)
			} else {
				c.Log.Info("job deleted after its ttlSecondsAfterFinished", "job", key)
				err := c.Store.Delete(ctx, jobKind, job.Metadata.Namespace, job.Metadata.Name, job.Metadata.Revision)
				if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
					return nil
				}
				return err
			}
		}
	}
	st.Active, st.Succeeded, st.Failed = t.active, t.succeeded, t.failures
	return c.writeStatus(ctx, job, st)
}

func (c *Jobs) writeStatus(ctx context.Context, job *api.Job, st api.JobStatus) error {
	if jobStatusSame(&job.Status, &st) {
		return nil
	}
	written, err := c.Store.Mutate(ctx, jobKind, job.Metadata.Namespace, job.Metadata.Name, func(o api.Object) error {
		o.(*api.Job).Status = st
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		readerOf(c.Cache, c.Store).wrote(api.KindJob, written.GetMeta().Revision)
	}
	return err
}

func jobStatusSame(a, b *api.JobStatus) bool {
	return a.State == b.State && a.Active == b.Active && a.Succeeded == b.Succeeded && a.Failed == b.Failed &&
		a.Reason == b.Reason && a.Message == b.Message && a.StartTime.Equal(b.StartTime) && a.CompletionTime.Equal(b.CompletionTime) &&
		a.LastScheduleTime.Equal(b.LastScheduleTime) && a.NextScheduleTime.Equal(b.NextScheduleTime) &&
		a.LastSuccessfulTime.Equal(b.LastSuccessfulTime) && slices.Equal(a.ActiveRuns, b.ActiveRuns) && a.Missed == b.Missed
}

func newJobInstance(job *api.Job, name string) *api.Instance {
	labels := maps.Clone(job.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[api.LabelJob] = job.Metadata.Name
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: name, Namespace: job.Metadata.Namespace, Labels: labels},
		Spec: api.InstanceSpec{
			Job:       job.Metadata.Name,
			Placement: job.Spec.Placement,
			Template:  job.Spec.Template,
		},
		Status: api.InstanceStatus{Phase: api.PhasePending},
	}
}

// maxTicks bounds the ticks looked at in one reconcile (a schedule of
// every minute missed for more than two months).
const maxTicks = 100000

// reconcileSchedule makes the run of the latest tick due, at most once:
// if it is due within startingDeadlineSeconds (or there is none), as the
// concurrency policy allows; every older tick not run is missed. Then it
// keeps the history limits and waits for the next tick.
func (c *Jobs) reconcileSchedule(ctx context.Context, key string, job *api.Job) error {
	now := c.now()
	sp := &job.Spec
	sched, err := api.ParseSchedule(sp.Schedule, sp.TimeZone)
	if err != nil {
		return nil // validation refused it; nothing to do
	}
	runs, err := c.runsOf(ctx, job.Metadata.Namespace, job.Metadata.Name)
	if err != nil {
		return err
	}
	st := job.Status
	var active []*api.Job
	for _, r := range runs {
		if !r.Status.State.Finished() {
			active = append(active, r)
		}
		if r.Status.State == api.JobComplete && r.Status.CompletionTime.After(st.LastSuccessfulTime) {
			st.LastSuccessfulTime = r.Status.CompletionTime
		}
	}
	from := st.LastScheduleTime
	if from.IsZero() {
		from = job.Metadata.CreatedAt
	}
	var due time.Time
	older := int32(0)
	for t, n := sched.Next(from), 0; !t.IsZero() && !t.After(now) && n < maxTicks; t, n = sched.Next(t), n+1 {
		if !due.IsZero() {
			older++
		}
		due = t
	}
	st.State = api.JobScheduled
	if sp.Suspend {
		st.State = api.JobSuspended
	}
	if !due.IsZero() && !sp.Suspend {
		late := now.Sub(due)
		switch {
		case sp.StartingDeadlineSeconds != nil && late > time.Duration(*sp.StartingDeadlineSeconds)*time.Second:
			older++
			c.Events.Record(ctx, job, "Warning", "Missed", fmt.Sprintf("the run of %s was not started: %s late, more than startingDeadlineSeconds %d", due.Format(time.RFC3339), late.Round(time.Second), *sp.StartingDeadlineSeconds))
		case sp.ConcurrencyPolicy == api.ConcurrencyForbid && len(active) > 0:
			c.Events.Record(ctx, job, "Normal", "Skipped", fmt.Sprintf("the run of %s was skipped: %s is still active (concurrencyPolicy Forbid)", due.Format(time.RFC3339), active[0].Metadata.Name))
		default:
			if sp.ConcurrencyPolicy == api.ConcurrencyReplace {
				for _, r := range active {
					if err := c.Store.Delete(ctx, jobKind, r.Metadata.Namespace, r.Metadata.Name, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					c.Events.Record(ctx, job, "Normal", "Replaced", fmt.Sprintf("run %s stopped for the run of %s (concurrencyPolicy Replace)", r.Metadata.Name, due.Format(time.RFC3339)))
				}
				active = nil
			}
			run := NewRun(job, RunName(job.Metadata.Name, due))
			err := c.Store.Create(ctx, run)
			switch {
			case err == nil:
				readerOf(c.Cache, c.Store).wrote(api.KindJob, run.Metadata.Revision)
				c.Events.Record(ctx, job, "Normal", "Started", fmt.Sprintf("run %s for %s", run.Metadata.Name, due.Format(time.RFC3339)))
				active = append(active, run)
			case errors.Is(err, store.ErrAlreadyExists):
				// Made before, by this leader or the last one.
			default:
				return err
			}
		}
		if older > 0 {
			c.Events.Record(ctx, job, "Warning", "Missed", fmt.Sprintf("%d earlier ticks missed (the control plane was away); only the latest runs", older))
		}
		st.Missed += older
		st.LastScheduleTime = due
	}
	st.ActiveRuns = nil
	for _, r := range active {
		st.ActiveRuns = append(st.ActiveRuns, r.Metadata.Name)
	}
	st.Active = int32(len(st.ActiveRuns))
	st.NextScheduleTime = sched.Next(maxTime(now, st.LastScheduleTime))
	if !st.NextScheduleTime.IsZero() {
		c.requeue(key, st.NextScheduleTime.Sub(now))
	}
	if err := c.writeStatus(ctx, job, st); err != nil {
		return err
	}
	return c.pruneRuns(ctx, job, runs)
}

// pruneRuns deletes the oldest finished runs past the history limits. It
// runs after the status recorded the latest tick, so a tick whose run is
// pruned is never made again.
func (c *Jobs) pruneRuns(ctx context.Context, job *api.Job, runs []*api.Job) error {
	keep := map[api.JobState]int32{
		api.JobComplete: deref32(job.Spec.SuccessfulJobsHistoryLimit, api.DefaultSuccessfulJobsHistoryLimit),
		api.JobFailed:   deref32(job.Spec.FailedJobsHistoryLimit, api.DefaultFailedJobsHistoryLimit),
	}
	seen := map[api.JobState]int32{}
	for i := len(runs) - 1; i >= 0; i-- { // newest first
		r := runs[i]
		if !r.Status.State.Finished() {
			continue
		}
		seen[r.Status.State]++
		if seen[r.Status.State] <= keep[r.Status.State] {
			continue
		}
		if err := c.Store.Delete(ctx, jobKind, r.Metadata.Namespace, r.Metadata.Name, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// RunName names the run of a scheduled Job's tick.
func RunName(parent string, tick time.Time) string {
	return parent + "-" + strconv.FormatInt(tick.Unix()/60, 10)
}

// ManualRunName names a run started by hand (`shoal job run`) at t.
func ManualRunName(parent string, t time.Time) string {
	return parent + "-m" + strconv.FormatInt(t.Unix(), 10)
}

// NewRun is a run of Job parent: its template and completion rules, no
// schedule, labelled with the parent's name.
func NewRun(parent *api.Job, name string) *api.Job {
	labels := maps.Clone(parent.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[api.LabelCronJob] = parent.Metadata.Name
	sp := parent.Spec
	return &api.Job{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindJob},
		Metadata: api.ObjectMeta{Name: name, Namespace: parent.Metadata.Namespace, Labels: labels},
		Spec: api.JobSpec{
			Template: sp.Template, Placement: sp.Placement,
			Completions: sp.Completions, Parallelism: sp.Parallelism, BackoffLimit: sp.BackoffLimit,
			ActiveDeadlineSeconds: sp.ActiveDeadlineSeconds, TTLSecondsAfterFinished: sp.TTLSecondsAfterFinished,
		},
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func deref32(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// removeInstance tears an instance down: an unplaced one is deleted at
// once, a placed one is marked so its agent stops the container and then
// deletes it.
func removeInstance(ctx context.Context, st *store.Store, cache *Caches, in *api.Instance) error {
	_, err := (&Apps{Store: st, Cache: cache}).remove(ctx, in)
	return err
}
