package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// fakeDriver is a runtime.Driver in memory. Its processes run until Stop
// (or exit); Exec answers with exec. Every call is logged.
type fakeDriver struct {
	mu         sync.Mutex
	containers map[string]*runtime.Status
	calls      []fakeCall
	// exec answers Exec; nil: exit 0.
	exec func(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, string, error)
	// ip is every container's IP (default 127.0.0.1, where tests listen).
	ip string
	// clock makes every start time distinct even on a coarse clock.
	last time.Time
}

type fakeCall struct {
	at   time.Time
	what string // "start ID", "stop ID 10s", ...
}

var _ runtime.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{containers: map[string]*runtime.Status{}, ip: "127.0.0.1"}
}

func (f *fakeDriver) record(format string, args ...any) {
	f.calls = append(f.calls, fakeCall{at: time.Now(), what: fmt.Sprintf(format, args...)})
}

// log returns what was called, in order.
func (f *fakeDriver) log() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeDriver) now() time.Time {
	t := time.Now().UTC()
	if !t.After(f.last) {
		t = f.last.Add(time.Microsecond)
	}
	f.last = t
	return t
}

func (f *fakeDriver) EnsureImage(_ context.Context, image string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("image %s", image)
	return nil
}

func (f *fakeDriver) Create(_ context.Context, spec runtime.Spec) (runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create %s", spec.ID)
	if _, ok := f.containers[spec.ID]; ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", spec.ID, runtime.ErrAlreadyExists)
	}
	st := &runtime.Status{ID: spec.ID, Labels: spec.Labels, Image: spec.Image, State: runtime.StateCreated, IP: f.ip}
	f.containers[spec.ID] = st
	return *st, nil
}

func (f *fakeDriver) Start(_ context.Context, id string) (runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start %s", id)
	st, ok := f.containers[id]
	if !ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if st.State != runtime.StateRunning {
		st.State, st.StartedAt, st.ExitedAt, st.ExitCode, st.Pid = runtime.StateRunning, f.now(), time.Time{}, 0, st.Pid+1
	}
	return *st, nil
}

func (f *fakeDriver) Stop(_ context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop %s %s", id, grace)
	if st, ok := f.containers[id]; ok && st.State == runtime.StateRunning {
		st.State, st.ExitCode, st.ExitedAt = runtime.StateExited, 143, f.now()
	}
	return nil
}

func (f *fakeDriver) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove %s", id)
	delete(f.containers, id)
	return nil
}

func (f *fakeDriver) Inspect(_ context.Context, id string) (runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.containers[id]
	if !ok {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	return *st, nil
}

func (f *fakeDriver) List(context.Context) ([]runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runtime.Status
	for _, st := range f.containers {
		out = append(out, *st)
	}
	return out, nil
}

func (f *fakeDriver) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, string, error) {
	f.mu.Lock()
	f.record("exec %s %q", id, cmd)
	exec := f.exec
	st, ok := f.containers[id]
	running := ok && st.State == runtime.StateRunning
	f.mu.Unlock()
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

// exit ends container id's process with code, as a crash would.
func (f *fakeDriver) exit(id string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.containers[id]; ok && st.State == runtime.StateRunning {
		st.State, st.ExitCode, st.ExitedAt = runtime.StateExited, code, f.now()
	}
}
