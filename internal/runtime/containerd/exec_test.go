package containerd_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/runtime"
	"github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/runtime/containerd/containerdtest"
)

// execImage runs testdata/exectool; "shoal.local" resolves to the test's
// registry through Config.Registries.
const execImage = "shoal.local/exectool:v1"

// netExec is the Exec test's network, apart from TestDriver's.
var netExec = containerd.NetworkConfig{Bridge: "shoalte0", Subnet: "10.213.202.0/24"}

// TestExec runs commands in a running container, the way the agent's exec
// probes do, against a real containerd.
func TestExec(t *testing.T) {
	address := containerdtest.Start(t)
	resetOnCleanup(t, address, testNamespace("exec"), netExec)
	cfg := containerd.Config{
		Address:    address,
		Namespace:  testNamespace("exec"),
		StateDir:   t.TempDir(),
		Network:    netExec,
		Registries: map[string]string{"shoal.local": serveExecTool(t)},
	}
	d := newDriver(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	removeOnCleanup(t, d, "box")
	if err := d.EnsureImage(ctx, execImage); err != nil {
		t.Fatalf("EnsureImage: %v", err)
	}
	_, err := d.Create(ctx, runtime.Spec{ID: "box", Image: execImage, Args: []string{"sleep"},
		Env: []string{"GREETING=hi"}, WorkingDir: "/work", LogPath: filepath.Join(t.TempDir(), "box.log")})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := d.Start(ctx, "box"); err != nil {
		t.Fatalf("Start: %v", err)
	}

	tests := []struct {
		name     string
		cmd      []string
		timeout  time.Duration
		wantCode int
		wantOut  []string // each must appear in the output
		wantErr  string   // empty: no error
	}{
		{name: "exit 0 with stdout and stderr", cmd: []string{"/exectool", "exit", "0"}, wantOut: []string{"to stdout\n", "to stderr\n"}},
		{name: "non-zero exit is a code, not an error", cmd: []string{"/exectool", "exit", "3"}, wantCode: 3, wantOut: []string{"to stderr\n"}},
		{name: "PATH lookup and the container's env and cwd", cmd: []string{"exectool", "where"}, wantOut: []string{"cwd=/work greeting=hi\n"}},
		{name: "command not found", cmd: []string{"nope"}, wantCode: -1, wantErr: `exec "nope": exec: "nope": executable file not found in $PATH`},
		{name: "timeout kills the command", cmd: []string{"/exectool", "sleep"}, timeout: 300 * time.Millisecond, wantCode: -1,
			wantErr: `container "box": exec "/exectool": timed out after 300ms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			start := time.Now()
			code, out, err := d.Exec(ctx, "box", tt.cmd, timeout)
			took := time.Since(start)
			t.Logf("Exec(%q) = %d, %q, %v in %v", tt.cmd, code, out, err, took)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Exec(%q): %v, want no error", tt.cmd, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Exec(%q) error = %v, want one containing %q", tt.cmd, err, tt.wantErr)
			}
			if code != tt.wantCode {
				t.Errorf("Exec(%q) exit code = %d, want %d", tt.cmd, code, tt.wantCode)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("Exec(%q) output = %q, want it to contain %q", tt.cmd, out, w)
				}
			}
			if tt.timeout > 0 {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("timeout error %v does not match context.DeadlineExceeded", err)
				}
				if took < tt.timeout || took > 5*time.Second {
					t.Errorf("Exec took %v, want the timeout (%v) and a prompt kill", took, tt.timeout)
				}
			}
			// Nothing is left running beside the container's process.
			if pids := taskPids(t, d, cfg.Namespace, "box"); pids != 1 {
				t.Errorf("%d processes in the container after Exec, want 1", pids)
			}
		})
	}

	t.Run("output is capped at 4 KiB and the command still completes", func(t *testing.T) {
		code, out, err := d.Exec(ctx, "box", []string{"/exectool", "spew", "1000000"}, 10*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("Exec spew = %d, %v; want 0, no error", code, err)
		}
		if len(out) != 4096 || !strings.HasPrefix(out, "abcdefghijklmnopqrstuvwxyzabc") {
			t.Errorf("output is %d bytes starting %.30q, want the first 4096", len(out), out)
		}
	})

	t.Run("concurrent execs do not collide", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				code, _, err := d.Exec(ctx, "box", []string{"/exectool", "exit", fmt.Sprint(i)}, 10*time.Second)
				if err != nil || code != i {
					errs <- fmt.Errorf("exec %d: code %d, err %v", i, code, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("a cancelled context ends the exec", func(t *testing.T) {
		cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer ccancel()
		start := time.Now()
		_, _, err := d.Exec(cctx, "box", []string{"/exectool", "sleep"}, time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("Exec with a 200ms context = %v after %v, want DeadlineExceeded soon", err, time.Since(start))
		}
		if pids := taskPids(t, d, cfg.Namespace, "box"); pids != 1 {
			t.Errorf("%d processes in the container, want 1", pids)
		}
	})

	t.Run("a stopped or missing container is an error", func(t *testing.T) {
		if _, _, err := d.Exec(ctx, "nosuch", []string{"/exectool", "exit", "0"}, time.Second); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Exec in a missing container = %v, want ErrNotFound", err)
		}
		if err := d.Stop(ctx, "box", time.Second); err != nil {
			t.Fatal(err)
		}
		_, _, err := d.Exec(ctx, "box", []string{"/exectool", "exit", "0"}, time.Second)
		if err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("Exec in a stopped container = %v, want a not running error", err)
		}
	})
}

// taskPids counts the processes in container id's task.
func taskPids(t *testing.T, d *containerd.Driver, namespace, id string) int {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	c, err := d.Client().LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := task.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(pids)
}

// serveExecTool builds testdata/exectool statically, packs it as /exectool
// (also on PATH) into an image with a /work directory, and serves it from
// a registry on 127.0.0.1. It returns the registry URL.
func serveExecTool(t *testing.T) string {
	t.Helper()
	tool := buildStatic(t, "./testdata/exectool")
	return serveImage(t, "exectool:v1", func(tw *tar.Writer) {
		for _, dir := range []string{"work/", "tmp/", "bin/"} {
			writeDir(t, tw, dir, 0o755)
		}
		writeFile(t, tw, "exectool", tool)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/exectool", Linkname: "/exectool"}); err != nil {
			t.Fatal(err)
		}
	}, func(c *v1.Config) {
		c.Entrypoint = []string{"/exectool"}
		c.Env = []string{"PATH=/bin"}
	})
}
