package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
)

// The test binary stands in for hollowbench when the bench starts its
// server process (os.Executable -serve DIR).
func TestMain(m *testing.M) {
	if os.Getenv("HOLLOWBENCH_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The server runs in a process of its own that says where it listens,
// answers with the credential it hands over, serves etcd's counters, has
// a peak RSS of its own, and exits when the bench closes its stdin.
func TestServerProcess(t *testing.T) {
	t.Setenv("HOLLOWBENCH_TEST_MAIN", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := startServer(ctx, t.TempDir(), 3, "")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	if len(p.Tokens) != joiners || !strings.HasPrefix(p.URL, "https://127.0.0.1:") {
		t.Errorf("hello %+v: want an https loopback URL and %d join tokens", p.hello, joiners)
	}
	c, err := client.FromConfig(p.Admin)
	if err != nil {
		t.Fatal(err)
	}
	a, err := scrapeEtcd(ctx, p.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	manifest := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec: {image: x/web:v1, replicas: 0}\n"
	if _, err := c.Apply(ctx, []byte(manifest), client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := scrapeEtcd(ctx, p.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	if b.puts <= a.puts {
		t.Errorf("etcd puts %v before an apply and %v after: want the server's etcd counters", a.puts, b.puts)
	}
	rss, err := p.peakRSS()
	if err != nil || rss < 1<<20 {
		t.Errorf("peak RSS %d, %v: want a server's (more than 1 MiB)", rss, err)
	}
	exited := make(chan struct{})
	go func() { p.stop(); close(exited) }()
	select {
	case <-exited:
		stopped = true
	case <-ctx.Done():
		t.Fatal("the server process did not exit when its stdin closed")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the server process exited %d, want 0", code)
	}
}

func TestVmHWM(t *testing.T) {
	got, err := vmHWM(strings.NewReader("Name:\tshoal\nVmPeak:\t  900 kB\nVmHWM:\t   81920 kB\nVmRSS:\t 4096 kB\n"))
	if err != nil || got != 81920<<10 {
		t.Errorf("vmHWM = %d, %v; want %d", got, err, 81920<<10)
	}
	for _, bad := range []string{"VmRSS:\t4096 kB\n", "VmHWM:\t12 MB\n", "VmHWM:\tlots kB\n"} {
		if _, err := vmHWM(strings.NewReader(bad)); err == nil {
			t.Errorf("vmHWM(%q): want an error", bad)
		}
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	defer f.Close()
	if got, err := vmHWM(f); err != nil || got <= 0 {
		t.Errorf("vmHWM(/proc/self/status) = %d, %v; want this process's peak", got, err)
	}
}

func TestOptionsCheck(t *testing.T) {
	good := options{nodes: 1, instances: 1, perApp: 1, probeEvery: time.Millisecond, probeTimeout: time.Second, idleWindow: time.Second}
	if err := good.check(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for _, c := range []struct {
		name string
		mod  func(*options)
		want string
	}{
		{"no nodes", func(o *options) { o.nodes = 0 }, "-nodes 0"},
		{"no instances", func(o *options) { o.instances = -1 }, "-instances -1"},
		{"no replicas per app", func(o *options) { o.perApp = 0 }, "-per-app 0"},
		{"no probe interval", func(o *options) { o.probeEvery = 0 }, "-probe-every 0s"},
		{"no probe timeout", func(o *options) { o.probeTimeout = 0 }, "-probe-timeout 0s"},
		{"no idle window", func(o *options) { o.idleWindow = 0 }, "-idle-window 0s"},
	} {
		o := good
		c.mod(&o)
		if err := o.check(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %s", c.name, err, c.want)
		}
	}
}
