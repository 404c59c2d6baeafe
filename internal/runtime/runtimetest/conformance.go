package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Suite describes the driver under test and an image it can run.
type Suite struct {
	Driver runtime.Driver
	// Image runs a process that stays up with Args.
	Image string
	Args  []string
	// ExecCmd prints ExecOutput and exits with ExecCode.
	ExecCmd    []string
	ExecOutput string
	ExecCode   int
	// CatCmd copies its stdin to its stdout.
	CatCmd []string
	// LogPath is where the container's output goes.
	LogPath string
}

// Run walks one container through its life: create, start, exec, attach,
// stop (with an exit event), start again, remove.
func Run(t *testing.T, s Suite) {
	d := s.Driver
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const id = "conformance"
	labels := map[string]string{"shoal.test": "conformance"}
	t.Cleanup(func() { _ = d.Remove(context.Background(), id) })

	events := d.Events(ctx)
	if err := d.EnsureImage(ctx, s.Image); err != nil {
		t.Fatalf("EnsureImage(%s): %v", s.Image, err)
	}
	spec := runtime.Spec{ID: id, Labels: labels, Image: s.Image, Args: s.Args, LogPath: s.LogPath, MilliCPU: 500, MemoryBytes: 64 << 20}
	st, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if st.State != runtime.StateCreated {
		t.Errorf("after Create: state %s, want %s", st.State, runtime.StateCreated)
	}
	if _, err := d.Create(ctx, spec); !errors.Is(err, runtime.ErrAlreadyExists) {
		t.Errorf("second Create: %v, want ErrAlreadyExists", err)
	}

	first, err := d.Start(ctx, id)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if first.State != runtime.StateRunning || first.StartedAt.IsZero() {
		t.Fatalf("after Start: %+v, want running with a start time", first)
	}
	if again, err := d.Start(ctx, id); err != nil || again.State != runtime.StateRunning || !again.StartedAt.Equal(first.StartedAt) {
		t.Errorf("Start of a running container: %+v, %v; want the same run", again, err)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	i := slices.IndexFunc(list, func(c runtime.Status) bool { return c.ID == id })
	if i < 0 || list[i].Labels["shoal.test"] != "conformance" || list[i].State != runtime.StateRunning {
		t.Errorf("List = %+v, want %s running with its labels", list, id)
	}

	code, out, err := d.Exec(ctx, id, s.ExecCmd, 10*time.Second)
	if err != nil || code != s.ExecCode || !strings.Contains(out, s.ExecOutput) {
		t.Errorf("Exec(%q) = %d, %q, %v; want %d and output with %q", s.ExecCmd, code, out, err, s.ExecCode, s.ExecOutput)
	}
	var stdout bytes.Buffer
	code, err = d.Attach(ctx, id, runtime.AttachRequest{Cmd: s.CatCmd, Stdin: strings.NewReader("ping\n"), Stdout: &stdout})
	if err != nil || code != 0 || stdout.String() != "ping\n" {
		t.Errorf("Attach(%q) with stdin = %d, %q, %v; want 0 and the input echoed", s.CatCmd, code, stdout.String(), err)
	}

	if err := d.Stop(ctx, id, 2*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := d.Stop(ctx, id, 2*time.Second); err != nil {
		t.Errorf("Stop of a stopped container: %v, want no error", err)
	}
	st, err = d.Inspect(ctx, id)
	if err != nil || st.State != runtime.StateExited || st.ExitedAt.IsZero() {
		t.Errorf("after Stop: %+v, %v; want exited with an exit time", st, err)
	}
	select {
	case got := <-events:
		if got != id {
			t.Errorf("exit event for %q, want %q", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no exit event within 10s of Stop")
	}
	if _, _, err := d.Exec(ctx, id, s.ExecCmd, time.Second); err == nil {
		t.Errorf("Exec in a stopped container succeeded")
	}

	second, err := d.Start(ctx, id)
	if err != nil || second.State != runtime.StateRunning || !second.StartedAt.After(first.StartedAt) {
		t.Errorf("Start after an exit: %+v, %v; want a new run after %v", second, err, first.StartedAt)
	}

	if err := d.Remove(ctx, id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Errorf("Remove of a missing container: %v, want no error", err)
	}
	if _, err := d.Start(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Start after Remove: %v, want ErrNotFound", err)
	}
}
