package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
)

const verbsApps = `
apiVersion: shoal/v1
kind: App
metadata: {name: front, labels: {tier: front}}
spec:
  image: shoal.local/hello:v1
  replicas: 1
  ports: [{name: http, containerPort: 8080}]
  resources: {cpu: 50m, memory: 32Mi}
  health:
    readiness: {http: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: shoal/v1
kind: App
metadata: {name: back, labels: {tier: back}}
spec:
  image: shoal.local/hello:v1
  replicas: 1
  resources: {cpu: 50m, memory: 32Mi}
`

// streaming is a long-running CLI command (get -w, events -w) whose
// output the test reads as it comes.
type streaming struct {
	cmd *exec.Cmd
	out *syncWriter
}

func (c *cluster) stream(args ...string) *streaming {
	c.t.Helper()
	s := &streaming{out: &syncWriter{buf: &bytes.Buffer{}}}
	s.cmd = exec.Command(shoalBin, append([]string{"--config", c.conf}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGTERM); _ = s.cmd.Wait() })
	return s
}

func (s *streaming) output() string {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return s.out.buf.String()
}

// TestDailyVerbs: label selectors, watching with get -w and events -w,
// and apply --dry-run, as a user types them.
func TestDailyVerbs(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	manifest := c.writeFile(verbsApps)
	c.mustShoal("apply", "-f", manifest, "--wait", "--timeout", "90s")

	// -l selects by label; a bad selector is refused, naming it.
	out := c.mustShoal("get", "apps", "-l", "tier=front")
	if !strings.Contains(out, "front") || strings.Contains(out, "back") {
		t.Fatalf("get apps -l tier=front:\n%s", out)
	}
	if out := c.mustShoal("get", "instances", "-l", "app=back", "-o", "name"); !strings.HasPrefix(out, "instance/back-") || strings.Contains(out, "front") {
		t.Fatalf("get instances -l app=back -o name:\n%s", out)
	}
	if out, err := c.shoal("get", "apps", "-l", "tier"); err == nil || !strings.Contains(out, `"tier" is not key=value`) {
		t.Fatalf("get apps -l tier: err %v, output:\n%s", err, out)
	}

	// A dry run says what would change and changes nothing.
	dry := c.writeFile(strings.Replace(verbsApps, "replicas: 1", "replicas: 3", 1))
	out = c.mustShoal("apply", "-f", dry, "--dry-run")
	for _, want := range []string{"app/front configured (dry run)", "spec.replicas: 1 -> 3", "app/back unchanged (dry run)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply --dry-run output lacks %q:\n%s", want, out)
		}
	}
	if n := *c.getApp("front").Spec.Replicas; n != 1 {
		t.Fatalf("apply --dry-run changed replicas to %d", n)
	}

	// get -w and events -w print what happens after they started.
	watch := c.stream("get", "instances", "-l", "app=front", "-w")
	events := c.stream("events", "-w")
	c.eventually(10*time.Second, "get -w prints the current instance", func() (bool, string) {
		return strings.Count(watch.output(), "front-") >= 1, watch.output()
	})
	c.mustShoal("scale", "app", "front", "--replicas", "2")
	c.running("front", 2)
	c.eventually(15*time.Second, "get -w prints the new instance, running and ready", func() (bool, string) {
		names := map[string]bool{}
		ready := false
		for _, l := range strings.Split(watch.output(), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[0], "front-") {
				names[f[0]] = true
				ready = ready || (f[2] == "Running" && f[3] == "yes" && len(names) == 2)
			}
		}
		return len(names) == 2 && ready, watch.output()
	})
	c.eventually(15*time.Second, "events -w prints the new instance being scheduled and started", func() (bool, string) {
		o := events.output()
		return strings.Count(o, "Scheduled") >= 3 && strings.Count(o, "Started") >= 3, o
	})
	// Without -w, events are listed oldest first.
	out = c.mustShoal("events")
	if i, j := strings.Index(out, "Scheduled"), strings.LastIndex(out, "Started"); i < 0 || j < i {
		t.Fatalf("events, oldest first:\n%s", out)
	}
}

// TestExec runs commands in a real container through the API server: exit
// codes pass through, stdin reaches the command, -t gives it a terminal
// that follows resizes.
func TestExec(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.mustShoal("apply", "-f", c.writeFile(verbsApps), "--wait", "--timeout", "90s")
	inst := c.running("front", 1)[0].Metadata.Name

	out, err := c.shoal("exec", "app/front", "--", "/hello", "exit", "3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exec /hello exit 3: %v, want exit code 3\n%s", err, out)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	cmd := exec.CommandContext(cctx, shoalBin, "--config", c.conf, "exec", "-i", inst, "--", "/hello", "cat")
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	if b, err := cmd.CombinedOutput(); err != nil || string(b) != "line one\nline two\n" {
		t.Fatalf("exec -i cat: %v, output %q", err, b)
	}
	if out := c.mustShoal("exec", "-t", "app/front", "--", "/hello", "tty"); !strings.Contains(out, "tty ") {
		t.Fatalf("exec -t /hello tty: %q, want a terminal", out)
	}
	if out := c.mustShoal("exec", "app/front", "--", "/hello", "tty"); !strings.Contains(out, "no tty") {
		t.Fatalf("exec without -t: %q, want no terminal", out)
	}

	// A resize reaches the command's terminal.
	resize := make(chan [2]uint16, 1)
	var buf syncWriter
	buf.buf = &bytes.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = c.api.Exec(ctx, "default", inst, client.ExecOptions{Cmd: []string{"/hello", "tty", "--wait"}, TTY: true, Stdout: &buf, Resize: resize})
		done <- err
	}()
	c.eventually(10*time.Second, "the command waits for a resize", func() (bool, string) {
		buf.mu.Lock()
		defer buf.mu.Unlock()
		return strings.Contains(buf.buf.String(), "waiting for a resize"), buf.buf.String()
	})
	resize <- [2]uint16{123, 45}
	if err := <-done; err != nil || code != 0 {
		t.Fatalf("exec -t tty --wait: code %d, %v", code, err)
	}
	buf.mu.Lock()
	got := buf.buf.String()
	buf.mu.Unlock()
	if !strings.Contains(got, "tty 123x45") {
		t.Fatalf("after a resize to 123x45 the command printed %q", got)
	}

	if out, err := c.shoal("exec", "nosuch-0", "--", "/hello", "exit", "0"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("exec into a missing instance: %v\n%s", err, out)
	}
}
