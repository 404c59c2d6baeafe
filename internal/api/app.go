package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
	Update    Update    `json:"update,omitzero"`
	// Schedule changes the App at set times: a release at an hour, more
	// replicas for the busy hours, none at night.
	Schedule []ScheduledChange `json:"schedule,omitempty"`
	// Autoscale, when set, owns Replicas: it follows the load between
	// Min and Max.
	Autoscale *Autoscale `json:"autoscale,omitempty"`
}

// Autoscale keeps an App's replicas where its instances' CPU (as a share
// of their request) or its request rate per replica meets the target:
// the larger of the two answers wins.
type Autoscale struct {
	Min int32 `json:"min"`
	Max int32 `json:"max"`
	// TargetCPUPercent is the average CPU use of the instances, in percent
	// of their CPU request (1 to 100).
	TargetCPUPercent int32 `json:"targetCPUPercent,omitempty"`
	// TargetRequestsPerSecond is the rate each replica should take, as the
	// nodes' proxies count it (new connections in kernel mode).
	TargetRequestsPerSecond int32 `json:"targetRequestsPerSecond,omitempty"`
	// The stabilization windows: a scale-up takes the lowest of the
	// recommendations of its window (default 0 s: at once), a scale-down
	// the highest of its window (default 300 s), so a short dip or burst
	// does not flap the App.
	ScaleUpStabilizationSeconds   *int32 `json:"scaleUpStabilizationSeconds,omitempty"`
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`
}

// Autoscale defaults.
const (
	DefaultScaleUpStabilizationSeconds   int32 = 0
	DefaultScaleDownStabilizationSeconds int32 = 300
)

// AutoscaleStatus is what the autoscaler last saw and decided.
type AutoscaleStatus struct {
	// CPUPercent is the instances' average CPU use in percent of their
	// request; RequestsPerSecond the App's rate over all nodes.
	CPUPercent        int32     `json:"cpuPercent"`
	RequestsPerSecond float64   `json:"requestsPerSecond"`
	Desired           int32     `json:"desired"`
	LastScaleTime     time.Time `json:"lastScaleTime,omitzero"`
	// Decisions are the last scalings, newest last, with the figures that
	// led to them.
	Decisions []string  `json:"decisions,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// ScheduledChange sets some of an App's fields once (at) or on a cron
// schedule. Its first tick is the first one after the change was applied.
type ScheduledChange struct {
	// At is a time (RFC 3339, "2026-12-24T18:00:00+01:00").
	At string `json:"at,omitempty"`
	// Cron is a standard cron schedule ("0 8 * * 1-5"), read in TimeZone.
	Cron     string       `json:"cron,omitempty"`
	TimeZone string       `json:"timeZone,omitempty"`
	Set      ScheduledSet `json:"set"`
}

// ScheduledSet is what a scheduled change sets.
type ScheduledSet struct {
	Replicas *int32 `json:"replicas,omitempty"`
	Image    string `json:"image,omitempty"`
	// Paused holds (true) or releases (false) rollouts of new revisions.
	Paused *bool `json:"paused,omitempty"`
}

// Key identifies a scheduled change by its content.
func (c ScheduledChange) Key() string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// String says what the change sets: "replicas 0, image x:v2".
func (s ScheduledSet) String() string {
	var parts []string
	if s.Replicas != nil {
		parts = append(parts, fmt.Sprintf("replicas %d", *s.Replicas))
	}
	if s.Image != "" {
		parts = append(parts, "image "+s.Image)
	}
	if s.Paused != nil {
		parts = append(parts, fmt.Sprintf("paused %v", *s.Paused))
	}
	return strings.Join(parts, ", ")
}

// When says when the change happens: "at …" or "cron … (zone)".
func (c ScheduledChange) When() string {
	if c.At != "" {
		return "at " + c.At
	}
	w := "cron " + strconv.Quote(c.Cron)
	if c.TimeZone != "" {
		w += " " + c.TimeZone
	}
	return w
}

// NextAfter is the change's first time after t (zero if none).
func (c ScheduledChange) NextAfter(t time.Time) time.Time {
	if c.At != "" {
		at, err := time.Parse(time.RFC3339, c.At)
		if err != nil || !at.After(t) {
			return time.Time{}
		}
		return at
	}
	s, err := ParseSchedule(c.Cron, c.TimeZone)
	if err != nil {
		return time.Time{}
	}
	return s.Next(t)
}

// ScheduledRecord is a scheduled change an App went through.
type ScheduledRecord struct {
	At     time.Time `json:"at"`
	Change string    `json:"change"`
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
	Health                        Health `json:"health,omitzero"`
	// Secrets are mounted as files /run/secrets/NAME/KEY (tmpfs, 0400,
	// owned by the container's user). Only nodes that run an instance
	// using a Secret can read it.
	Secrets []string `json:"secrets,omitempty"`
	// SecurityContext hardens or, where the namespace allows, loosens the
	// container's defaults.
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	// HostPID and HostIPC put the container in the node's own process
	// and IPC namespaces: it sees (and, with the capabilities, may
	// signal) the node's processes. The Namespace's policy must allow
	// host namespaces, and the node's owner too.
	HostPID bool `json:"hostPID,omitempty"`
	HostIPC bool `json:"hostIPC,omitempty"`
	// Volumes mount paths of the node into the container. The
	// Namespace's policy must allow their host paths, and the node's
	// owner too.
	Volumes []Volume `json:"volumes,omitempty"`
	// RestartedAt, when changed, makes a new revision of an unchanged
	// template: `shoal rollout restart`.
	RestartedAt string `json:"restartedAt,omitempty"`
	// Signature is the App owner's signature of this template
	// (SignedBytes), made by `shoal apply --sign-key`. Agents verify it
	// before they run anything.
	Signature *Signature `json:"signature,omitempty"`
}

// Signature is an owner's signature of a template.
type Signature struct {
	// Key is the signer's public key, "ed25519:BASE64".
	Key string `json:"key"`
	// Value is the Ed25519 signature of SignedBytes, base64.
	Value string `json:"value"`
	// Namespace is the namespace the template was signed for. The signed
	// bytes cover it anyway; it is here so that a template replayed in
	// another namespace is refused with a message that says so.
	Namespace string `json:"namespace,omitempty"`
}

// SignedBytes is what an owner signs of a template for a namespace: the
// namespace and the template's canonical JSON (encoding/json of the
// struct: fields in declaration order, map keys sorted) with defaults
// filled in, without the signature itself and without restartedAt, which
// only restarts what was signed. The namespace is part of it so that a
// signed template copied into another namespace (where other Secrets
// and another policy apply) does not verify there.
func SignedBytes(t *Template, namespace string) []byte {
	// A deep copy (through JSON) to default and clear: t is not touched.
	b, err := json.Marshal(t)
	if err != nil {
		panic("api: a template does not encode: " + err.Error())
	}
	var c Template
	if err := json.Unmarshal(b, &c); err != nil {
		panic("api: a template does not decode: " + err.Error())
	}
	defaultTemplate(&c)
	c.Signature, c.RestartedAt = nil, ""
	payload := struct {
		Namespace string   `json:"namespace"`
		Template  Template `json:"template"`
	}{namespace, c}
	if b, err = json.Marshal(payload); err != nil {
		panic("api: a template does not encode: " + err.Error())
	}
	return b
}

// Volume mounts a directory or file of the node (hostPath) at mountPath
// in the container, read-only if asked. The path must exist on the node.
type Volume struct {
	Name      string `json:"name"`
	HostPath  string `json:"hostPath"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// HostNamespaces names the node namespaces the template shares
// ("hostPID", "hostIPC"), for messages; none for most.
func (t *Template) HostNamespaces() []string {
	var out []string
	if t.HostPID {
		out = append(out, "hostPID")
	}
	if t.HostIPC {
		out = append(out, "hostIPC")
	}
	return out
}

// HostPathAllowed says whether path is one of allowed or below one
// ("/" allows every path).
func HostPathAllowed(path string, allowed []string) bool {
	for _, a := range allowed {
		if a == "/" || path == a || strings.HasPrefix(path, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// SecurityContext is the container's identity and privileges. Without
// one a container runs as its image's user, with no new privileges, the
// runtime's default seccomp profile, /proc and /sys paths masked, and
// containerd's default capabilities minus NET_RAW (DefaultCapabilities).
type SecurityContext struct {
	// RunAsUser and RunAsGroup replace the image's user and group.
	RunAsUser  *int64 `json:"runAsUser,omitempty"`
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// ReadOnlyRootFilesystem mounts the image read-only.
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem,omitempty"`
	// Capabilities are added to and dropped from the default set
	// ("NET_ADMIN" or "CAP_NET_ADMIN"; drop ALL empties it first).
	Capabilities Capabilities `json:"capabilities,omitzero"`
	// Privileged gives the container every capability, every device and
	// no seccomp profile. Refused unless the namespace's policy allows it.
	Privileged bool `json:"privileged,omitempty"`
}

// Capabilities changes the default capability set.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// DefaultCapabilities is what a container gets unless its securityContext
// says otherwise: containerd's default set without NET_RAW (no raw sockets,
// so no ARP or ICMP spoofing of its neighbours).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// knownCapabilities are the Linux capabilities, as the kernel numbers them.
var knownCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// CapabilityName returns a capability's canonical name ("CAP_NET_ADMIN")
// from either spelling, and whether it is one; "ALL" stays "ALL".
func CapabilityName(s string) (string, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "ALL" {
		return u, true
	}
	u = strings.TrimPrefix(u, "CAP_")
	if !slices.Contains(knownCapabilities, u) {
		return "", false
	}
	return "CAP_" + u, true
}

// EffectiveCapabilities returns the container's capability set: the defaults, less
// what is dropped, plus what is added; every one for a privileged
// container.
func (sc *SecurityContext) EffectiveCapabilities() []string {
	if sc != nil && sc.Privileged {
		out := make([]string, len(knownCapabilities))
		for i, c := range knownCapabilities {
			out[i] = "CAP_" + c
		}
		return out
	}
	caps := slices.Clone(DefaultCapabilities)
	if sc == nil {
		return caps
	}
	for _, d := range sc.Capabilities.Drop {
		name, _ := CapabilityName(d)
		if name == "ALL" {
			caps = []string{}
			break
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == name })
	}
	for _, a := range sc.Capabilities.Add {
		name, ok := CapabilityName(a)
		if name == "ALL" {
			return (&SecurityContext{Privileged: true}).EffectiveCapabilities()
		}
		if ok && !slices.Contains(caps, name) {
			caps = append(caps, name)
		}
	}
	return caps
}

// NeedsPrivilege names what in sc only a namespace whose policy allows
// privileged containers may run ("" when nothing): privileged itself, or a
// capability beyond DefaultCapabilities.
func (sc *SecurityContext) NeedsPrivilege() string {
	if sc == nil {
		return ""
	}
	if sc.Privileged {
		return "securityContext.privileged"
	}
	for i, a := range sc.Capabilities.Add {
		if name, _ := CapabilityName(a); !slices.Contains(DefaultCapabilities, name) {
			return fmt.Sprintf("securityContext.capabilities.add[%d] (%s)", i, name)
		}
	}
	return ""
}

// AddedCapabilities are the capabilities sc adds beyond
// DefaultCapabilities, by canonical name ("CAP_NET_ADMIN", or "ALL"), in
// the order of capabilities.add; privileged is apart from them.
func (sc *SecurityContext) AddedCapabilities() []string {
	if sc == nil {
		return nil
	}
	var out []string
	for _, a := range sc.Capabilities.Add {
		if name, ok := CapabilityName(a); ok && !slices.Contains(DefaultCapabilities, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// EnvVar is one environment variable: a value, or one key of a Secret.
type EnvVar struct {
	Name         string        `json:"name"`
	Value        string        `json:"value,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SecretKeyRef names one key of a Secret in the instance's namespace.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// SecretNames lists the Secrets a template uses, as files or in env,
// sorted and once each.
func (t *Template) SecretNames() []string {
	var out []string
	out = append(out, t.Secrets...)
	for _, e := range t.Env {
		if e.SecretKeyRef != nil {
			out = append(out, e.SecretKeyRef.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
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
	// Publish opens this port on every node, reaching a ready instance
	// wherever it runs (a routing mesh). Two Apps cannot publish one port.
	Publish int32 `json:"publish,omitempty"`
	// PublishMode says how a published port reaches the instances:
	// "kernel" (the default) or "proxy".
	PublishMode PublishMode `json:"publishMode,omitempty"`
}

// PublishMode is how a node forwards a published port.
type PublishMode string

// Publish modes.
const (
	// PublishKernel DNATs connections in the kernel, straight to a ready
	// instance: as fast as the service address. A connection cut by an
	// instance's crash fails, as it does through kube-proxy.
	PublishKernel PublishMode = "kernel"
	// PublishProxy passes connections through the node's user-space
	// proxy: about half the throughput, but a refused connection moves to
	// another instance and, on ports named http or http-*, an idempotent
	// request cut by a crash is replayed on another instance.
	PublishProxy PublishMode = "proxy"
)

// Resources are what placement reserves for the container (requests) and
// what it may use at most (limits). CPU is in cores ("500m", "0.5", "2"),
// Memory in bytes ("128Mi", "1Gi"). The CPU and Memory shorthand means
// both request and limit; Requests and Limits, when set, override it.
type Resources struct {
	CPU      string        `json:"cpu,omitempty"`
	Memory   string        `json:"memory,omitempty"`
	Requests *ResourceList `json:"requests,omitempty"`
	Limits   *ResourceList `json:"limits,omitempty"`
}

// ResourceList is an amount of each resource. Pids and EphemeralStorage
// are limits only: the most processes (threads) the container may have,
// and the most its writable layer may hold before it is stopped.
type ResourceList struct {
	CPU              string `json:"cpu,omitempty"`
	Memory           string `json:"memory,omitempty"`
	Pids             int64  `json:"pids,omitempty"`
	EphemeralStorage string `json:"ephemeralStorage,omitempty"`
}

// Amounts are parsed resources; zero is none (no reservation, no limit).
type Amounts struct {
	MilliCPU, MemoryBytes, Pids, EphemeralBytes int64
}

// Request is what placement reserves. Quantities were validated on the
// way in: one that does not parse counts as none.
func (r Resources) Request() Amounts {
	cpu, mem := r.CPU, r.Memory
	if q := r.Requests; q != nil {
		cpu, mem = cmpOr(q.CPU, cpu), cmpOr(q.Memory, mem)
	}
	var a Amounts
	a.MilliCPU, _ = ParseCPU(cpu)
	a.MemoryBytes, _ = ParseMemory(mem)
	return a
}

// Limit is what the container may use at most.
func (r Resources) Limit() Amounts {
	cpu, mem := r.CPU, r.Memory
	var a Amounts
	if q := r.Limits; q != nil {
		cpu, mem = cmpOr(q.CPU, cpu), cmpOr(q.Memory, mem)
		a.Pids = q.Pids
		a.EphemeralBytes, _ = ParseMemory(q.EphemeralStorage)
	}
	a.MilliCPU, _ = ParseCPU(cpu)
	a.MemoryBytes, _ = ParseMemory(mem)
	return a
}

// MemoryLimit is the memory limit as written ("128Mi"), for messages.
func (r Resources) MemoryLimit() string {
	if r.Limits != nil && r.Limits.Memory != "" {
		return r.Limits.Memory
	}
	return r.Memory
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
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
	// MaxPerNode, when set, is the most instances of the App one node
	// runs.
	MaxPerNode int32 `json:"maxPerNode,omitempty"`
	// SpreadBy is a node label ("zone"): instances go first to the value
	// of it with the fewest of the App's (nodes without the label count
	// as one more value), as Swarm's spread preference does.
	SpreadBy string `json:"spreadBy,omitempty"`
}

// AppStatus is what the system observed of an App.
type AppStatus struct {
	// Revision is the App's current template revision; it increases by one
	// each time the template changes.
	Revision int64 `json:"revision,omitempty"`
	// TemplateHash identifies the template of Revision.
	TemplateHash string `json:"templateHash,omitempty"`
	// SecretsRevision is the store revisions of the Secrets the template
	// uses ("db=412,tls=97"); a change to it is a new revision, so a
	// changed Secret rolls the App.
	SecretsRevision string `json:"secretsRevision,omitempty"`
	Replicas        int32  `json:"replicas"`
	Placed          int32  `json:"placed"`
	Running         int32  `json:"running"`
	// Ready counts current-revision instances that pass readiness.
	Ready int32 `json:"ready"`
	// ServiceIP is the App's stable virtual address (Apps with ports).
	ServiceIP string `json:"serviceIP,omitempty"`
	// Rollout is the state of the current revision: Progressing,
	// Complete, Failed or RolledBack.
	Rollout string `json:"rollout,omitempty"`
	// ProgressAt is when the current rollout last made progress.
	ProgressAt time.Time `json:"progressAt,omitzero"`
	// LastGoodRevision is the newest revision that completed a rollout.
	LastGoodRevision int64 `json:"lastGoodRevision,omitempty"`
	// RollbackTo is set while a failed rollout is being rolled back.
	RollbackTo int64 `json:"rollbackTo,omitempty"`
	// History lists recent revisions, oldest first.
	History []RevisionRecord `json:"history,omitempty"`
	// Scheduled is, per scheduled change (by its Key), the time it was
	// last applied, or first seen: it applies at its ticks after that.
	Scheduled map[string]time.Time `json:"scheduled,omitempty"`
	// ScheduleHistory lists the scheduled changes applied, oldest first.
	ScheduleHistory []ScheduledRecord `json:"scheduleHistory,omitempty"`
	// Autoscale is the autoscaler's view (Apps with spec.autoscale).
	Autoscale *AutoscaleStatus `json:"autoscale,omitempty"`
	// Message explains why the App is not yet what its spec asks, if so.
	Message string `json:"message,omitempty"`
	// ObservedAt is when a controller last wrote this status.
	ObservedAt time.Time `json:"observedAt,omitzero"`
}

// TemplateHash identifies what an App's instances run: the template, the
// placement and the revisions of the Secrets it uses. A change to it is a
// new revision.
func TemplateHash(app *App) string {
	b, _ := json.Marshal(struct {
		T Template
		P Placement
		S string `json:",omitempty"`
	}{app.Spec.Template, app.Spec.Placement, app.Status.SecretsRevision})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}
