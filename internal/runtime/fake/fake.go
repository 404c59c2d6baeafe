package fake

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Driver is the in-memory runtime. The zero value is not usable; call New.
type Driver struct {
	mu         sync.Mutex
	containers map[string]*runtime.Status
	calls      []Call
	record     bool
	subs       map[chan string]struct{}
	// last makes every start time distinct even on a coarse clock.
	last     time.Time
	usage    map[string]runtime.Usage
	writable map[string]int64

	// IP is every container's IP (default 127.0.0.1, where tests listen).
	IP string
	// ExecFunc answers Exec; nil: exit 0 with no output.
	ExecFunc func(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, string, error)
}

// Call is one method call the driver saw.
type Call struct {
	At   time.Time
	What string // "start ID", "stop ID 10s", ...
}

var _ runtime.Driver = (*Driver)(nil)

// New returns an empty driver that records its calls (see Calls).
func New() *Driver {
	return &Driver{containers: map[string]*runtime.Status{}, subs: map[chan string]struct{}{}, IP: "127.0.0.1", record: true}
}

// NewHollow returns an empty driver that keeps no call log, for long runs
// with many containers.
func NewHollow() *Driver {
	d := New()
	d.record = false
	return d
}

func (d *Driver) log(format string, args ...any) {
	if d.record {
		d.calls = append(d.calls, Call{At: time.Now(), What: fmt.Sprintf(format, args...)})
	}
}

// Calls returns what was called, in order.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func (d *Driver) now() time.Time {
	t := time.Now().UTC()
	if !t.After(d.last) {
		t = d.last.Add(time.Microsecond)
	}
	d.last = t
	return t
}

// exitLocked ends a running process and tells the event subscribers.
func (d *Driver) exitLocked(st *runtime.Status, code int32) {
	if st.State != runtime.StateRunning {
		return
	}
	st.State, st.ExitCode, st.ExitedAt = runtime.StateExited, code, d.now()
	for ch := range d.subs {
		select {
		case ch <- st.ID:
		default: // a slow reader loses events, as with containerd
		}
	}
}

// EnsureImage succeeds for every image.
func (d *Driver) EnsureImage(_ context.Context, image string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log("image %s", image)
	return nil
}

// Create records a container.
func (d *Driver) Create(_ context.Context, spec runtime.Spec) (runtime.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log("create %s", spec.ID)
	if _, ok := d.containers[spec.ID]; ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", spec.ID, runtime.ErrAlreadyExists)
	}
	st := &runtime.Status{ID: spec.ID, Labels: spec.Labels, Image: spec.Image, State: runtime.StateCreated, IP: d.IP}
	d.containers[spec.ID] = st
	return *st, nil
}

// Start begins a new run; starting a running container changes nothing.
func (d *Driver) Start(_ context.Context, id string) (runtime.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log("start %s", id)
	st, ok := d.containers[id]
	if !ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if st.State != runtime.StateRunning {
		st.State, st.StartedAt, st.ExitedAt, st.ExitCode, st.Pid = runtime.StateRunning, d.now(), time.Time{}, 0, st.Pid+1
	}
	return *st, nil
}

// Stop ends the run as SIGTERM would (exit code 143).
func (d *Driver) Stop(_ context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log("stop %s %s", id, grace)
	if st, ok := d.containers[id]; ok {
		d.exitLocked(st, 143)
	}
	return nil
}

// Remove forgets the container; a missing one is no error.
func (d *Driver) Remove(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log("remove %s", id)
	delete(d.containers, id)
	return nil
}

// Inspect returns the container's status.
func (d *Driver) Inspect(_ context.Context, id string) (runtime.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.containers[id]
	if !ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	return *st, nil
}

// List returns every container.
func (d *Driver) List(context.Context) ([]runtime.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]runtime.Status, 0, len(d.containers))
	for _, st := range d.containers {
		out = append(out, *st)
	}
	return out, nil
}

// Exec answers with ExecFunc in a running container.
func (d *Driver) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, string, error) {
	d.mu.Lock()
	d.log("exec %s %q", id, cmd)
	exec := d.ExecFunc
	st, ok := d.containers[id]
	running := ok && st.State == runtime.StateRunning
	d.mu.Unlock()
	if !ok {
		return -1, "", fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if !running {
		return -1, "", fmt.Errorf("container %q: exec: not running", id)
	}
	if exec == nil {
		return 0, "", nil
	}
	return exec(ctx, id, cmd, timeout)
}

// Events streams the ids of containers whose run ended, until ctx ends.
func (d *Driver) Events(ctx context.Context) <-chan string {
	ch := make(chan string, 256)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		close(ch)
		d.mu.Unlock()
	}()
	return ch
}

// Exit ends container id's run with code, as a crash would.
func (d *Driver) Exit(id string, code int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.containers[id]; ok {
		d.exitLocked(st, code)
	}
}

// Attach runs like Exec (ExecFunc answers, its output goes to Stdout); a
// command of "cat" copies Stdin to Stdout instead.
func (d *Driver) Attach(ctx context.Context, id string, req runtime.AttachRequest) (int, error) {
	if len(req.Cmd) == 1 && req.Cmd[0] == "cat" && req.Stdin != nil {
		if _, _, err := d.Exec(ctx, id, []string{"true"}, 0); err != nil {
			return -1, err
		}
		_, err := io.Copy(req.Stdout, req.Stdin)
		return 0, err
	}
	code, out, err := d.Exec(ctx, id, req.Cmd, 0)
	if err == nil && req.Stdout != nil {
		_, err = io.WriteString(req.Stdout, out)
	}
	return code, err
}

// SetUsage makes Usage report u for container id (tests).
func (d *Driver) SetUsage(id string, u runtime.Usage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.usage == nil {
		d.usage = map[string]runtime.Usage{}
	}
	d.usage[id] = u
}

// Usage reports what SetUsage set, for running containers.
func (d *Driver) Usage(context.Context) (map[string]runtime.Usage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]runtime.Usage{}
	for id, u := range d.usage {
		out[id] = u
	}
	return out, nil
}

// WritableBytes reports what SetWritable set for id (0 by default).
func (d *Driver) WritableBytes(_ context.Context, id string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writable[id], nil
}

// SetWritable makes WritableBytes report n for container id (tests).
func (d *Driver) SetWritable(id string, n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writable == nil {
		d.writable = map[string]int64{}
	}
	d.writable[id] = n
}
