package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors a driver returns, wrapped with context; match with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrImageNotFound: the image reference does not resolve in its registry.
	ErrImageNotFound = errors.New("image not found")
)

// PortMapping publishes a container port on the node.
type PortMapping struct {
	ContainerPort int32
	HostPort      int32
	Protocol      string // "tcp" or "udp"
}

// Spec is everything the driver needs to create one container.
type Spec struct {
	// ID is the container id; the agent uses NAMESPACE.NAME.UID8 of the
	// Instance, so a new Instance of the same name gets a new container.
	ID string
	// Labels are stored on the container and returned by List; the agent
	// uses them to re-adopt containers after its own restart.
	Labels     map[string]string
	Image      string
	Command    []string // overrides the image entrypoint when set
	Args       []string // overrides the image cmd when set
	Env        []string // KEY=VALUE, added to the image's env
	WorkingDir string
	Hostname   string
	// MilliCPU becomes a CFS quota (0: no limit). MemoryBytes a memory
	// limit (0: no limit). PidsLimit a pids cgroup limit (0: driver default).
	MilliCPU    int64
	MemoryBytes int64
	PidsLimit   int64
	Ports       []PortMapping
	// DNSServers and DNSSearch make the container's /etc/resolv.conf;
	// without servers it gets the node's own resolv.conf.
	DNSServers []string
	DNSSearch  []string
	// Security is the container's user and privileges; the zero value is
	// the hardened default.
	Security Security
	// HostPID and HostIPC share the node's process and IPC namespaces.
	HostPID, HostIPC bool
	// Mounts bind paths of the node into the container.
	Mounts []Mount
	// Secrets become files /run/secrets/NAME/KEY (read-only, on tmpfs,
	// mode 0400, owned by the container's user): name -> key -> value.
	Secrets map[string]map[string][]byte
	// LogPath is the file the container's stdout and stderr go to. The
	// agent rotates it by size; a new run (Start after an exit) moves the
	// previous run's log to LogPath+".previous".
	LogPath string
}

// Mount binds a path of the node (Source, which must exist) at
// Destination in the container.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
}

// Security is what a container may do. Every container runs with no new
// privileges (unless privileged), the runtime's default seccomp profile
// and /proc and /sys paths masked.
type Security struct {
	// UID and GID replace the image's user when set; a UID alone takes its
	// group from the image's /etc/passwd.
	UID, GID *uint32
	// ReadOnlyRoot mounts the image read-only.
	ReadOnlyRoot bool
	// Capabilities is the whole set ("CAP_CHOWN", …); nil means
	// api.DefaultCapabilities, an empty set none.
	Capabilities []string
	// Privileged: every capability and device, no seccomp, nothing masked.
	Privileged bool
}

// AttachRequest is an interactive command to run in a container.
type AttachRequest struct {
	Cmd []string
	TTY bool
	// Stdin, if set, is the process's input; its EOF closes the input.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize delivers terminal sizes (TTY only).
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct{ Width, Height uint16 }

// State is a container's process state.
type State string

// Container states.
const (
	StateCreated State = "created" // container exists, no process has run
	StateRunning State = "running"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// Status is what the driver observed of one container.
type Status struct {
	ID        string
	Labels    map[string]string
	Image     string
	State     State
	Pid       uint32
	ExitCode  int32
	StartedAt time.Time
	ExitedAt  time.Time
	OOMKilled bool
	IP        string
	// Reason explains a failure to start ("exec format error", ...).
	Reason string
}

// Usage is what a container's cgroups and network namespace counted.
type Usage struct {
	// CPUNanos is the CPU time used since the process started
	// (cumulative: rates come from two samples).
	CPUNanos uint64
	// MemoryBytes is the working set: memory in use less the inactive
	// file cache the kernel can take back (what kubelet reports).
	MemoryBytes int64
	Pids        int64
	// RxBytes and TxBytes are the bytes through the container's
	// interfaces (loopback excluded), cumulative.
	RxBytes, TxBytes uint64
	// WritableBytes is the size of the container's writable layer; -1
	// when unknown.
	WritableBytes int64
}

// Driver runs containers on one node. All methods are safe for concurrent use.
type Driver interface {
	// EnsureImage makes image available locally, pulling it if needed.
	EnsureImage(ctx context.Context, image string) error
	// Create makes the container, its network namespace, IP and port
	// mappings, without starting a process.
	Create(ctx context.Context, spec Spec) (Status, error)
	// Start runs the container's process; after an exit it starts a new run.
	Start(ctx context.Context, id string) (Status, error)
	// Stop sends SIGTERM, waits up to grace, then SIGKILL, and returns when
	// the process has exited. Stopping a stopped container is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes the process, container, snapshot, network namespace,
	// IP allocation and port mappings. Removing a missing container succeeds.
	Remove(ctx context.Context, id string) error
	// Inspect returns the container's current status.
	Inspect(ctx context.Context, id string) (Status, error)
	// List returns every container this driver owns.
	List(ctx context.Context) ([]Status, error)
	// Exec runs cmd in the running container id, as its process runs
	// (user, environment, working directory), and returns its exit code
	// and the start of its combined stdout and stderr. A command that
	// cannot be started (not found, not executable) is an error, as is
	// one still running after timeout: it is killed, and the error
	// matches context.DeadlineExceeded. With an error, exitCode is -1.
	Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (exitCode int, output string, err error)
	// Attach runs req.Cmd in the running container id as Exec does, wired
	// to req's streams for as long as it runs (`shoal exec`), and returns
	// its exit code. With TTY the process gets a terminal; stderr then
	// arrives on Stdout.
	Attach(ctx context.Context, id string, req AttachRequest) (exitCode int, err error)
	// WritableBytes is the size of container id's writable layer (what
	// its processes wrote outside mounts).
	WritableBytes(ctx context.Context, id string) (int64, error)
	// Usage samples what every running container of the driver uses now,
	// by container id, in one pass.
	Usage(ctx context.Context) (map[string]Usage, error)
	// Events streams the ids of containers whose process exited, until
	// ctx ends (then the channel closes). It is a prompt, not a record:
	// exits while nobody listens, or while the reader is slow, may be
	// lost, so callers still reconcile from Inspect now and then.
	Events(ctx context.Context) <-chan string
}
