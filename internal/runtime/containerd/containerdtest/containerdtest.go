package containerdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/shoal-dev/shoal/internal/testutil"
)

// EnvAddress names an already running containerd to use instead of
// starting one.
const EnvAddress = "SHOAL_CONTAINERD_ADDRESS"

// Start returns the address of a containerd for t. Without root or the
// containerd binaries it skips t, except under CI=true where it fails.
func Start(t testing.TB) (address string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs root and containerd")
	}
	if addr := os.Getenv(EnvAddress); addr != "" {
		return addr
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			testutil.Unavailable(t, "containerd not installed: run make deps (%s not in PATH)", bin)
		}
	}
	if os.Geteuid() != 0 {
		testutil.Unavailable(t, "containerd needs root: run the test as root or set %s", EnvAddress)
	}

	// Not t.TempDir(): its path can be too long for a unix socket.
	dir, err := os.MkdirTemp("/tmp", "shoal-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{dir: dir}
	if err := d.start(); err != nil {
		d.stop(t)
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() { d.stop(t) })
	return d.socket()
}

// config mirrors scripts/containerd.sh: everything under dir, no CRI.
var config = template.Must(template.New("config").Parse(`version = 2
root = "{{.}}/root"
state = "{{.}}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{{.}}/containerd.sock"

[ttrpc]
  address = "{{.}}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.}}/opt"
`))

type daemon struct {
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (d *daemon) socket() string  { return filepath.Join(d.dir, "containerd.sock") }
func (d *daemon) logPath() string { return filepath.Join(d.dir, "containerd.log") }

func (d *daemon) start() error {
	cfgPath := filepath.Join(d.dir, "config.toml")
	f, err := os.Create(cfgPath)
	if err != nil {
		return err
	}
	if err := config.Execute(f, d.dir); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	logf, err := os.Create(d.logPath())
	if err != nil {
		return err
	}
	defer logf.Close()
	d.cmd = exec.Command("containerd", "--config", cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Own process group: a ^C to the test reaches the test, which then
	// stops containerd in its cleanup.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := d.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after 15s: %v; log:\n%s", d.socket(), err, d.tail())
		}
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited; log:\n%s", d.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *daemon) ping() error {
	if _, err := os.Stat(d.socket()); err != nil {
		return err
	}
	c, err := containerd.New(d.socket(), containerd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.Version(ctx)
	return err
}

// stop kills what tests left running (so no shim outlives the daemon),
// stops containerd and removes its directory.
func (d *daemon) stop(t testing.TB) {
	if d.cmd != nil && d.cmd.Process != nil {
		if err := killLeftovers(d.socket()); err != nil {
			t.Logf("containerdtest: cleaning up leftovers: %v", err)
		}
		if t.Failed() {
			t.Logf("containerdtest: containerd log (%s):\n%s", d.logPath(), d.tail())
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		t.Logf("containerdtest: remove %s: %v", d.dir, err)
	}
}

// killLeftovers deletes every task and container in every namespace.
func killLeftovers(address string) error {
	c, err := containerd.New(address, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ctr := range cs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("%s/%s: delete task: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: delete: %w", ns, ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (d *daemon) tail() string {
	f, err := os.Open(d.logPath())
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > 40 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
