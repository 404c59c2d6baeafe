package api

import "time"

// App is a long-running service: a container template run as N replicas.
type App struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     AppSpec    `json:"spec"`
	Status   AppStatus  `json:"status,omitzero"`
}

// GetMeta returns the object's metadata.
func (o *App) GetMeta() *ObjectMeta { return &o.Metadata }

// AppSpec is what the user wants of an App. The embedded Template is what
// each replica runs; changing it makes a new revision.
type AppSpec struct {
	Template  `json:",inline"`
	Replicas  *int32    `json:"replicas,omitempty"`
	Placement Placement `json:"placement,omitzero"`
}

// Template is the container an Instance runs, copied from its App.
type Template struct {
	Image         string        `json:"image"`
	Command       []string      `json:"command,omitempty"`
	Args          []string      `json:"args,omitempty"`
	Env           []EnvVar      `json:"env,omitempty"`
	WorkingDir    string        `json:"workingDir,omitempty"`
	Ports         []Port        `json:"ports,omitempty"`
	Resources     Resources     `json:"resources,omitzero"`
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// TerminationGracePeriodSeconds is how long a stopping container has
	// between SIGTERM and SIGKILL.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Protocol is a port's transport.
type Protocol string

// Supported protocols.
const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
)

// Port is a port the container listens on, optionally bound on the node.
type Port struct {
	Name          string   `json:"name,omitempty"`
	ContainerPort int32    `json:"containerPort"`
	HostPort      int32    `json:"hostPort,omitempty"`
	Protocol      Protocol `json:"protocol,omitempty"`
}

// Resources are the container's limits, also what placement reserves.
// CPU is in cores ("500m", "0.5", "2"), Memory in bytes ("128Mi", "1Gi").
type Resources struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// RestartPolicy says when a stopped container is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// Placement constrains which nodes may run an App's instances.
type Placement struct {
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
}

// AppStatus is what the system observed of an App.
type AppStatus struct {
	// Revision is the App's current template revision; it increases by one
	// each time the template changes.
	Revision int64 `json:"revision,omitempty"`
	// TemplateHash identifies the template of Revision.
	TemplateHash string `json:"templateHash,omitempty"`
	Replicas     int32  `json:"replicas"`
	Placed       int32  `json:"placed"`
	Running      int32  `json:"running"`
	// Message explains why the App is not yet what its spec asks, if so.
	Message string `json:"message,omitempty"`
	// ObservedAt is when a controller last wrote this status.
	ObservedAt time.Time `json:"observedAt,omitzero"`
}
