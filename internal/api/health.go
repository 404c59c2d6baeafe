package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Health holds an App's probes. Readiness decides whether an instance gets
// traffic (and whether a rollout may go on); liveness restarts it.
type Health struct {
	Readiness *Probe `json:"readiness,omitempty"`
	Liveness  *Probe `json:"liveness,omitempty"`
}

// Probe checks an instance one way: exactly one of HTTP, TCP or Exec.
type Probe struct {
	HTTP *HTTPProbe `json:"http,omitempty"`
	TCP  *TCPProbe  `json:"tcp,omitempty"`
	Exec *ExecProbe `json:"exec,omitempty"`
	// InitialDelaySeconds passes after the container starts before the
	// first check.
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32 `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int32 `json:"timeoutSeconds,omitempty"`
	// FailureThreshold consecutive failures make the probe fail.
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// HTTPProbe passes when GET Path on Port answers a status in
// [MinStatus, MaxStatus] (default 200–399).
type HTTPProbe struct {
	Path string `json:"path,omitempty"`
	// Port is a containerPort number or a port name.
	Port      PortRef `json:"port"`
	MinStatus int32   `json:"minStatus,omitempty"`
	MaxStatus int32   `json:"maxStatus,omitempty"`
}

// TCPProbe passes when a connection to Port opens.
type TCPProbe struct {
	Port PortRef `json:"port"`
}

// ExecProbe passes when Command, run in the container, exits 0.
type ExecProbe struct {
	Command []string `json:"command"`
}

// PortRef names a container port by number (8080, or "8080") or by the
// name of a declared port ("http"). Manifests may write either; it is kept
// as text and encoded back as a number when it is one, as written.
type PortRef string

// MarshalJSON writes a numeric reference as a JSON number.
func (r PortRef) MarshalJSON() ([]byte, error) {
	if _, ok := r.Number(); ok {
		return []byte(r), nil
	}
	return json.Marshal(string(r))
}

// UnmarshalJSON reads a JSON number or string.
func (r *PortRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("port: expected a number or a name, got %s", b)
		}
		*r = PortRef(strconv.FormatInt(n, 10))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r = PortRef(s)
	return nil
}

// Number returns the port number a numeric reference holds; ok is false
// for a name. The number may be out of range; validation says so.
func (r PortRef) Number() (n int64, ok bool) {
	if r == "" {
		return 0, false
	}
	for i, c := range r {
		if (c < '0' || c > '9') && !(i == 0 && c == '-' && len(r) > 1) {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		return 1 << 62, true // all digits, but too large: out of range
	}
	return n, true
}

// Probe defaults.
const (
	DefaultProbePeriodSeconds    int32 = 2
	DefaultProbeTimeoutSeconds   int32 = 1
	DefaultProbeFailureThreshold int32 = 3
)

// Update says how a new revision replaces the old one.
type Update struct {
	// MaxSurge is how many instances above replicas may exist during a
	// rollout; MaxUnavailable how many below replicas may be unready.
	MaxSurge       *int32 `json:"maxSurge,omitempty"`
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
	// ProgressDeadlineSeconds fails a rollout that makes no progress for
	// that long.
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`
	// AutoRollback returns a failed rollout to the last good revision.
	AutoRollback *bool `json:"autoRollback,omitempty"`
	// Paused holds rollouts: a changed template makes no new revision
	// until it is false again; the instances keep running the current one.
	Paused bool `json:"paused,omitempty"`
	// Window, when set, holds rollouts of new revisions until it opens.
	Window *UpdateWindow `json:"window,omitempty"`
}

// UpdateWindow is a maintenance window: it opens at each tick of Cron
// (read in TimeZone) and stays open for Duration.
type UpdateWindow struct {
	Cron     string `json:"cron"`
	TimeZone string `json:"timeZone,omitempty"`
	Duration string `json:"duration"`
}

// Open says whether the window is open at t, and when it next opens if
// not (or, if it is, when it closes).
func (w *UpdateWindow) Open(t time.Time) (bool, time.Time) {
	s, err := ParseSchedule(w.Cron, w.TimeZone)
	d, derr := time.ParseDuration(w.Duration)
	if err != nil || derr != nil {
		return true, time.Time{}
	}
	if start := s.Next(t.Add(-d)); !start.IsZero() && !start.After(t) {
		return true, start.Add(d)
	}
	return false, s.Next(t)
}

// Update defaults.
const (
	DefaultMaxSurge                int32 = 1
	DefaultMaxUnavailable          int32 = 0
	DefaultProgressDeadlineSeconds int32 = 120
)

// Rollout states of an App's current revision.
const (
	RolloutProgressing = "Progressing"
	RolloutComplete    = "Complete"
	RolloutFailed      = "Failed"
	RolloutRolledBack  = "RolledBack"
)

// RevisionRecord is one entry of an App's rollout history.
type RevisionRecord struct {
	Revision  int64     `json:"revision"`
	Hash      string    `json:"hash"`
	Image     string    `json:"image"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// Template is what the revision ran, so undo can return to it.
	Template  Template  `json:"template"`
	Placement Placement `json:"placement,omitzero"`
	// Cause is why the revision was made ("apply", "rollback to 2", "restart").
	Cause string `json:"cause,omitempty"`
	// RolledBackFrom is set on a revision the controller made by itself
	// because revision RolledBackFrom failed (automatic rollback).
	RolledBackFrom int64 `json:"rolledBackFrom,omitempty"`
}
