package api

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// LabelJob is the label every Instance of a Job carries with the Job's
// name; LabelCronJob is the label a run of a scheduled Job carries with
// the scheduled Job's name.
const (
	LabelJob     = "job"
	LabelCronJob = "cronjob"
)

// Job is run-to-completion work: the template runs until `completions`
// instances have exited 0. With a schedule it is a cron job: each tick
// makes a run, a Job of its own named NAME-TICK.
type Job struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     JobSpec    `json:"spec"`
	Status   JobStatus  `json:"status,omitzero"`
}

// GetMeta returns the object's metadata.
func (o *Job) GetMeta() *ObjectMeta { return &o.Metadata }

// JobSpec is what the user wants of a Job.
type JobSpec struct {
	Template  `json:",inline"`
	Placement Placement `json:"placement,omitzero"`
	// Completions is how many instances must succeed (default 1).
	Completions *int32 `json:"completions,omitempty"`
	// Parallelism is how many run at once at most (default 1).
	Parallelism *int32 `json:"parallelism,omitempty"`
	// BackoffLimit is how many failures (failed instances, and restarts
	// with restartPolicy OnFailure) the Job survives (default 6).
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// ActiveDeadlineSeconds, when set, fails the Job and stops what runs
	// that long after it started.
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// TTLSecondsAfterFinished, when set, deletes the Job (and its
	// instances and logs) that long after it finished.
	TTLSecondsAfterFinished *int64 `json:"ttlSecondsAfterFinished,omitempty"`

	// Schedule, standard cron syntax ("*/5 * * * *", or @hourly, @daily
	// …), makes the Job a cron job.
	Schedule string `json:"schedule,omitempty"`
	// TimeZone the schedule is read in (an IANA name; default UTC).
	TimeZone string `json:"timeZone,omitempty"`
	// ConcurrencyPolicy says what a tick does while a run is still active:
	// Allow (another run), Forbid (skip the tick), Replace (stop the old
	// run, start the new).
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
	// StartingDeadlineSeconds, when set, is how late a run may start
	// after its tick (the control plane was down); a tick missed by more
	// is recorded as missed.
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`
	// SuccessfulJobsHistoryLimit and FailedJobsHistoryLimit are how many
	// finished runs are kept (default 3 and 1).
	SuccessfulJobsHistoryLimit *int32 `json:"successfulJobsHistoryLimit,omitempty"`
	FailedJobsHistoryLimit     *int32 `json:"failedJobsHistoryLimit,omitempty"`
	// Suspend stops new runs; runs under way go on.
	Suspend bool `json:"suspend,omitempty"`
}

// ConcurrencyPolicy is what a scheduled Job's tick does while a run is
// active.
type ConcurrencyPolicy string

// Concurrency policies.
const (
	ConcurrencyAllow   ConcurrencyPolicy = "Allow"
	ConcurrencyForbid  ConcurrencyPolicy = "Forbid"
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// JobState is where a Job is in its life.
type JobState string

// Job states.
const (
	JobRunning   JobState = "Running"
	JobComplete  JobState = "Complete"
	JobFailed    JobState = "Failed"
	JobScheduled JobState = "Scheduled" // a cron job
	JobSuspended JobState = "Suspended" // a suspended cron job
)

// Finished reports whether a Job in state s will run nothing more.
func (s JobState) Finished() bool { return s == JobComplete || s == JobFailed }

// JobStatus is what the job controller observed.
type JobStatus struct {
	State     JobState `json:"state,omitempty"`
	Active    int32    `json:"active"`
	Succeeded int32    `json:"succeeded"`
	Failed    int32    `json:"failed"`
	// Reason says why a Job failed: BackoffLimitExceeded,
	// DeadlineExceeded.
	Reason         string    `json:"reason,omitempty"`
	Message        string    `json:"message,omitempty"`
	StartTime      time.Time `json:"startTime,omitzero"`
	CompletionTime time.Time `json:"completionTime,omitzero"`

	// Of a cron job: the last tick a run was made (or skipped) for, the
	// next one, the runs active now, and the ticks missed for good.
	LastScheduleTime   time.Time `json:"lastScheduleTime,omitzero"`
	NextScheduleTime   time.Time `json:"nextScheduleTime,omitzero"`
	LastSuccessfulTime time.Time `json:"lastSuccessfulTime,omitzero"`
	ActiveRuns         []string  `json:"activeRuns,omitempty"`
	Missed             int32     `json:"missed,omitempty"`
}

// Defaults of a Job.
const (
	DefaultCompletions                int32 = 1
	DefaultParallelism                int32 = 1
	DefaultBackoffLimit               int32 = 6
	DefaultSuccessfulJobsHistoryLimit int32 = 3
	DefaultFailedJobsHistoryLimit     int32 = 1
)

func defaultJob(o *Job) {
	if o.Spec.RestartPolicy == "" {
		o.Spec.RestartPolicy = RestartNever
	}
	defaultTemplate(&o.Spec.Template)
	set := func(p **int32, v int32) {
		if *p == nil {
			*p = &v
		}
	}
	set(&o.Spec.Completions, DefaultCompletions)
	set(&o.Spec.Parallelism, min(DefaultParallelism, *o.Spec.Completions))
	set(&o.Spec.BackoffLimit, DefaultBackoffLimit)
	if o.Spec.Schedule != "" {
		if o.Spec.ConcurrencyPolicy == "" {
			o.Spec.ConcurrencyPolicy = ConcurrencyAllow
		}
		set(&o.Spec.SuccessfulJobsHistoryLimit, DefaultSuccessfulJobsHistoryLimit)
		set(&o.Spec.FailedJobsHistoryLimit, DefaultFailedJobsHistoryLimit)
	}
}

// CronSchedule is a parsed schedule in its time zone.
type CronSchedule struct {
	spec cron.Schedule
	loc  *time.Location
}

// ParseSchedule reads a standard cron expression ("*/5 * * * *", "0 8 * *
// 1-5", "@daily"), in time zone tz (an IANA name; "" is UTC).
func ParseSchedule(expr, tz string) (*CronSchedule, error) {
	loc, err := LoadTimeZone(tz)
	if err != nil {
		return nil, err
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule (MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK, e.g. \"*/5 * * * *\"): %v", expr, err)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return &CronSchedule{spec: s, loc: loc}, nil
}

// LoadTimeZone finds an IANA time zone; "" is UTC.
func LoadTimeZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone (an IANA name such as Europe/Berlin)", tz)
	}
	return loc, nil
}

// Next is the first tick after t (zero if there is none). A wall-clock
// time that happens twice, in the hour the clocks go back, ticks once (the
// first time); one that does not happen, in the hour they go forward,
// does not tick.
func (s *CronSchedule) Next(t time.Time) time.Time {
	for range 8 {
		n := s.spec.Next(t.In(s.loc))
		if _, wall := s.spec.(*cron.SpecSchedule); n.IsZero() || !wall || !s.repeated(n) {
			return n
		}
		t = n
	}
	return time.Time{}
}

// repeated says whether n's wall-clock time already passed once, an
// offset change earlier.
func (s *CronSchedule) repeated(n time.Time) bool {
	_, now := n.In(s.loc).Zone()
	_, before := n.Add(-12 * time.Hour).In(s.loc).Zone()
	back := time.Duration(before-now) * time.Second
	const wall = "2006-01-02 15:04:05"
	return back > 0 && n.Add(-back).In(s.loc).Format(wall) == n.In(s.loc).Format(wall)
}
