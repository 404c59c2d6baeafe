package api

import "time"

// LabelApp is the label every Instance carries with its App's name.
const LabelApp = "app"

// Instance is one replica of one revision of an App, bound to one node.
type Instance struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     InstanceSpec   `json:"spec"`
	Status   InstanceStatus `json:"status,omitzero"`
}

// GetMeta returns the object's metadata.
func (o *Instance) GetMeta() *ObjectMeta { return &o.Metadata }

// InstanceSpec says what an Instance runs and where.
type InstanceSpec struct {
	// App, or Job, is what the instance belongs to.
	App      string `json:"app"`
	Job      string `json:"job,omitempty"`
	Revision int64  `json:"revision"`
	// Node is empty until the binder (controller/binder.go, asking the pure
	// scheduler) binds the Instance.
	Node      string    `json:"node,omitempty"`
	Placement Placement `json:"placement,omitzero"`
	Template  Template  `json:"template"`
}

// Phase is where an Instance is in its life.
type Phase string

// Instance phases.
const (
	PhasePending     Phase = "Pending"     // waiting for a node
	PhaseScheduled   Phase = "Scheduled"   // bound, the agent has not started it yet
	PhaseStarting    Phase = "Starting"    // image pull / container create in progress
	PhaseRunning     Phase = "Running"     // the container's process is running
	PhaseSucceeded   Phase = "Succeeded"   // exited 0 and will not be restarted
	PhaseFailed      Phase = "Failed"      // exited non-zero (or could not start) and will not be restarted now
	PhaseTerminating Phase = "Terminating" // being stopped for deletion
)

// InstanceStatus is what the scheduler and agent observed.
type InstanceStatus struct {
	Phase     Phase     `json:"phase,omitempty"`
	Node      string    `json:"node,omitempty"`
	Restarts  int32     `json:"restarts,omitempty"`
	ExitCode  *int32    `json:"exitCode,omitempty"`
	Message   string    `json:"message,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	IP        string    `json:"ip,omitempty"`
	// Ready says the instance passes its readiness probe (or, without one,
	// is running) and may receive traffic.
	Ready bool `json:"ready,omitempty"`
	// ContainerID is the runtime's id for the container.
	ContainerID string `json:"containerID,omitempty"`
	// UpdatedAt is when the agent last wrote this status.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// Terminal reports whether an Instance in phase p will not run again.
func (p Phase) Terminal() bool { return p == PhaseSucceeded || p == PhaseFailed }
