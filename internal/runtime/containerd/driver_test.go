package containerd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/runtime"
	"github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/runtime/containerd/containerdtest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// The test networks: away from the default 10.213.0.0/24 so a real agent on
// the same machine is not disturbed.
var (
	netA = containerd.NetworkConfig{Bridge: "shoalta0", Subnet: "10.213.200.0/24"}
	netB = containerd.NetworkConfig{Bridge: "shoaltb0", Subnet: "10.213.201.0/24"}
)

// TestDriver walks one container through its life, as the agent drives it,
// against a real containerd. Subtests depend on the ones before them.
func TestDriver(t *testing.T) {
	address := containerdtest.Start(t)
	resetOnCleanup(t, address, testNamespace("a"), netA)
	resetOnCleanup(t, address, testNamespace("b"), netB)
	// Left by an earlier run: New must install it, not find it.
	deleteMasquerade(t, netA)
	registryURL := serveTestImage(t)
	cfgA := containerd.Config{
		Address:    address,
		Namespace:  testNamespace("a"),
		StateDir:   t.TempDir(),
		Network:    netA,
		Registries: map[string]string{"shoal.local": registryURL},
	}
	d := newDriver(t, cfgA)
	// Exit events, collected from the start of the test: by the time a
	// subtest kills a process, the subscription has long been open.
	exits := collectExits(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logDir := t.TempDir()
	logPath := filepath.Join(logDir, "web.log")
	hostPort := testutil.FreePort(t)
	removeOnCleanup(t, d, "web")

	t.Run("New installs one masquerade rule for the subnet, once", func(t *testing.T) {
		rule := masqueradeRule(netA)
		if n := countLines(natRules(t), rule); n != 1 {
			t.Fatalf("%d copies of %s after New, want 1", n, rule)
		}
		newDriver(t, cfgA)
		if n := countLines(natRules(t), rule); n != 1 {
			t.Errorf("%d copies of %s after a second New, want 1", n, rule)
		}
	})

	t.Run("New installs the egress rules once, and no IPv6 on the bridge", func(t *testing.T) {
		newDriver(t, cfgA)
		rules := filterRules(t)
		for _, j := range []string{"FORWARD", "INPUT"} {
			if n := strings.Count(rules, "-A "+j+" -i "+netA.Bridge+" "); n != 1 {
				t.Errorf("%d jumps from %s for %s, want 1:\n%s", n, j, netA.Bridge, rules)
			}
		}
		for _, c := range []string{hostnet.ForwardChain(netA.Bridge), hostnet.HostChain(netA.Bridge)} {
			if !strings.Contains(rules, "-N "+c+"\n") {
				t.Errorf("no chain %s:\n%s", c, rules)
			}
		}
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + netA.Bridge + "/disable_ipv6")
		if err == nil && strings.TrimSpace(string(b)) != "1" {
			t.Errorf("IPv6 on bridge %s: disable_ipv6 = %s", netA.Bridge, b)
		}
	})

	t.Run("EnsureImage pulls from the registry", func(t *testing.T) {
		if err := d.EnsureImage(ctx, testImage); err != nil {
			t.Fatalf("EnsureImage: %v", err)
		}
		cctx := namespaces.WithNamespace(ctx, cfgA.Namespace)
		img, err := d.Client().GetImage(cctx, testImage)
		if err != nil {
			t.Fatalf("image not stored after EnsureImage: %v", err)
		}
		if ok, err := img.IsUnpacked(cctx, "overlayfs"); !ok || err != nil {
			t.Fatalf("image not unpacked: %v %v", ok, err)
		}
		start := time.Now()
		if err := d.EnsureImage(ctx, testImage); err != nil {
			t.Fatalf("EnsureImage again: %v", err)
		}
		t.Logf("EnsureImage of a present image: %v", time.Since(start))
	})

	t.Run("missing image is ErrImageNotFound", func(t *testing.T) {
		err := d.EnsureImage(ctx, "shoal.local/nope:v1")
		if !errors.Is(err, runtime.ErrImageNotFound) {
			t.Fatalf("EnsureImage(missing) = %v, want ErrImageNotFound", err)
		}
		if want := "image not found: shoal.local/nope:v1"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})

	var web runtime.Status
	t.Run("Create and Start run the process on its own IP", func(t *testing.T) {
		spec := runtime.Spec{
			ID:          "web",
			Labels:      map[string]string{"shoal.app": "web", "shoal.revision": "3"},
			Image:       testImage,
			Env:         []string{"GREETING=hi"},
			WorkingDir:  "/work",
			Hostname:    "web-0",
			MilliCPU:    250,
			MemoryBytes: 64 << 20,
			Ports: []runtime.PortMapping{
				{ContainerPort: 8080, HostPort: int32(hostPort), Protocol: "tcp"},
				{ContainerPort: 9090, HostPort: 0}, // not published
			},
			LogPath: logPath,
		}
		start := time.Now()
		created, err := d.Create(ctx, spec)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		createTook := time.Since(start)
		web, err = d.Start(ctx, "web")
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Logf("create %v + start %v = %v", createTook, time.Since(start)-createTook, time.Since(start))

		if created.State != runtime.StateCreated || created.IP == "" {
			t.Errorf("Create status = %+v, want created with an IP", created)
		}
		if web.State != runtime.StateRunning || web.Pid == 0 || web.StartedAt.IsZero() {
			t.Fatalf("Start status = %+v, want running with pid and start time", web)
		}
		if web.IP != created.IP || !strings.HasPrefix(web.IP, "10.213.200.") {
			t.Errorf("IP = %q (created %q), want one in %s", web.IP, created.IP, netA.Subnet)
		}
		if _, ok := web.Labels["io.shoal.runtime.ip"]; ok || web.Labels["shoal.app"] != "web" {
			t.Errorf("labels = %v, want the agent's labels only", web.Labels)
		}

		if got := httpGet(t, "http://"+net.JoinHostPort(web.IP, "8080")+"/"); got != "hello from web-0\n" {
			t.Errorf("GET container IP = %q", got)
		}
		var info struct {
			Hostname string
			Args     []string
			Env      []string
			Cwd      string
		}
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+net.JoinHostPort(web.IP, "8080")+"/info")), &info); err != nil {
			t.Fatal(err)
		}
		if info.Cwd != "/work" || !slices.Contains(info.Env, "GREETING=hi") || !slices.Contains(info.Env, "PORT=8080") ||
			!slices.Equal(info.Args, []string{"/app", "serve"}) {
			t.Errorf("process = %+v, want cwd /work, image env plus GREETING, args from the image", info)
		}
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); got != "hello from web-0\n" {
			t.Errorf("GET 127.0.0.1:%d = %q", hostPort, got)
		}
		testutil.Eventually(t, 5*time.Second, "log lines", func() (bool, string) {
			s := readFile(t, logPath)
			return strings.Contains(s, "starting on web-0:8080") && strings.Contains(s, "stderr works"), s
		})
	})

	t.Run("Usage reads the cgroup and the network namespace", func(t *testing.T) {
		for range 20 { // some traffic and some CPU
			httpGet(t, "http://"+net.JoinHostPort(web.IP, "8080")+"/")
		}
		got, err := d.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u, ok := got["web"]
		if !ok {
			t.Fatalf("Usage has no entry for the running container: %v", got)
		}
		if u.CPUNanos == 0 || u.MemoryBytes <= 0 || u.Pids < 1 || u.RxBytes == 0 || u.TxBytes == 0 {
			t.Fatalf("usage %+v: want CPU time, a working set, a process and bytes both ways", u)
		}
		if u.MemoryBytes > 64<<20 {
			t.Errorf("working set %d bytes for a small static server: the file cache was not taken out?", u.MemoryBytes)
		}
		if n, err := d.WritableBytes(ctx, "web"); err != nil || n < 0 || n > 16<<20 {
			t.Errorf("WritableBytes = %d, %v", n, err)
		}
	})

	t.Run("limits and hardening are in the OCI spec and the cgroup (CPU: the cgroup only)", func(t *testing.T) {
		cctx := namespaces.WithNamespace(ctx, cfgA.Namespace)
		c, err := d.Client().LoadContainer(cctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Spec(cctx)
		if err != nil {
			t.Fatal(err)
		}
		r := s.Linux.Resources
		if r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 64<<20 {
			t.Errorf("memory = %+v, want limit 64Mi", r.Memory)
		}
		if r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 1024 {
			t.Errorf("pids = %+v, want 1024", r.Pids)
		}
		if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
			t.Error("no seccomp profile")
		}
		if !s.Process.NoNewPrivileges {
			t.Error("NoNewPrivileges not set")
		}
		if caps := s.Process.Capabilities; caps == nil || !slices.Equal(caps.Bounding, api.DefaultCapabilities) || !slices.Equal(caps.Effective, api.DefaultCapabilities) || slices.Contains(caps.Bounding, "CAP_NET_RAW") {
			t.Errorf("capabilities = %+v, want the defaults (no NET_RAW)", caps)
		}
		if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
			t.Errorf("masked %v, read-only %v: want /proc/kcore masked and /proc/sys read-only", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
		}
		if s.Hostname != "web-0" {
			t.Errorf("hostname = %q", s.Hostname)
		}
		var netns string
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == "network" {
				netns = ns.Path
			}
		}
		if netns != d.NetNSPath("web") {
			t.Errorf("network namespace = %q, want %q", netns, d.NetNSPath("web"))
		}
		// The kernel really enforces them (cgroup v1 or v2 layout).
		if got := cgroupValue(t, s.Linux.CgroupsPath, "memory", "memory.limit_in_bytes", "memory.max"); got != fmt.Sprint(64<<20) {
			t.Errorf("memory cgroup limit = %q, want %d", got, 64<<20)
		}
		if got := cgroupValue(t, s.Linux.CgroupsPath, "cpu", "cpu.cfs_quota_us", "cpu.max"); got != "25000" && got != "25000 100000" {
			t.Errorf("cpu cgroup quota = %q, want 25000", got)
		}
		// The quota is applied to the running task, not written in the
		// spec: runc's own set-up inside the cgroup must not be throttled
		// by it (a start at 10m took seconds).
		if r := s.Linux.Resources; r != nil && r.CPU != nil && r.CPU.Quota != nil {
			t.Errorf("spec carries CPU quota %d; it must be applied after the start", *r.CPU.Quota)
		}
	})

	t.Run("host port already in use is a clear error", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken := l.Addr().(*net.TCPAddr).Port
		for _, hp := range []int{taken, hostPort} { // a host process's port, then web's
			free := testutil.FreePort(t)
			_, err := d.Create(ctx, runtime.Spec{ID: "clash", Image: testImage,
				Ports: []runtime.PortMapping{
					{ContainerPort: 8081, HostPort: int32(free), Protocol: "tcp"},
					{ContainerPort: 8080, HostPort: int32(hp), Protocol: "tcp"},
				}})
			if want := fmt.Sprintf("host port %d/tcp is already in use", hp); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Create with host port %d: %v, want %q", hp, err, want)
			}
			assertFree(t, free, 0)
			if _, err := d.Inspect(ctx, "clash"); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Inspect after failed Create: %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(d.NetNSPath("clash")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("netns left after failed Create: %v", err)
			}
		}
	})

	t.Run("a published host port is held while its container exists", func(t *testing.T) {
		var logs bytes.Buffer
		cfg := cfgA
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		tcpPort, udpPort := testutil.FreePort(t), freeUDPPort(t)
		removeOnCleanup(t, d, "held")

		// A driver of its own, to restart it below. Its New cannot take
		// web's port, which d holds, and says so.
		first := newDriver(t, cfg)
		if want := fmt.Sprintf("port=%d/tcp", hostPort); !strings.Contains(logs.String(), want) {
			t.Errorf("New did not warn that web's port is held by someone else; logged:\n%s", logs.String())
		}
		_, err := first.Create(ctx, runtime.Spec{ID: "held", Image: testImage, Hostname: "held", Ports: []runtime.PortMapping{
			{ContainerPort: 8080, HostPort: int32(tcpPort), Protocol: "tcp"},
			{ContainerPort: 5353, HostPort: int32(udpPort), Protocol: "udp"},
		}})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := first.Start(ctx, "held"); err != nil {
			t.Fatalf("Start: %v", err)
		}
		assertHeld(t, tcpPort, udpPort)
		// The DNAT rules still take the traffic, to loopback and to the
		// node's other addresses.
		for _, addr := range append([]string{"127.0.0.1"}, nodeAddrs(t)...) {
			url := fmt.Sprintf("http://%s/", net.JoinHostPort(addr, fmt.Sprint(tcpPort)))
			if got := httpGet(t, url); got != "hello from held\n" {
				t.Errorf("GET %s = %q, want the container's answer", url, got)
			}
		}

		// An agent restart: the sockets die with the old driver and the
		// new one takes them again.
		first.Close()
		assertFree(t, tcpPort, udpPort)
		second := newDriver(t, cfg)
		assertHeld(t, tcpPort, udpPort)
		httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", tcpPort))

		if err := second.Remove(ctx, "held"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		assertFree(t, tcpPort, udpPort)
	})

	t.Run("Create of an existing container is ErrAlreadyExists", func(t *testing.T) {
		_, err := d.Create(ctx, runtime.Spec{ID: "web", Image: testImage})
		if !errors.Is(err, runtime.ErrAlreadyExists) {
			t.Fatalf("Create(web) again = %v, want ErrAlreadyExists", err)
		}
		if st, err := d.Inspect(ctx, "web"); err != nil || st.State != runtime.StateRunning {
			t.Fatalf("web after duplicate Create: %+v %v, want still running", st, err)
		}
	})

	t.Run("Stop sends SIGTERM first", func(t *testing.T) {
		start := time.Now()
		if err := d.Stop(ctx, "web", 20*time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Stop took %v; the process exits on SIGTERM at once", took)
		}
		st, err := d.Inspect(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtime.StateExited || st.ExitCode != 0 || st.ExitedAt.IsZero() || st.OOMKilled {
			t.Errorf("after Stop: %+v, want exited 0 with exit time", st)
		}
		testutil.Eventually(t, 5*time.Second, "SIGTERM in the log", func() (bool, string) {
			s := readFile(t, logPath)
			return strings.Contains(s, "got SIGTERM"), s
		})
		if err := d.Stop(ctx, "web", time.Second); err != nil {
			t.Errorf("Stop of a stopped container: %v", err)
		}
		if err := d.Stop(ctx, "nosuch", time.Second); err != nil {
			t.Errorf("Stop of a missing container: %v", err)
		}
	})

	t.Run("Stop escalates to SIGKILL after grace", func(t *testing.T) {
		removeOnCleanup(t, d, "stubborn")
		stubbornLog := filepath.Join(t.TempDir(), "stubborn.log")
		if _, err := d.Create(ctx, runtime.Spec{ID: "stubborn", Image: testImage, Args: []string{"stubborn"}, LogPath: stubbornLog}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Start(ctx, "stubborn"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := d.Stop(ctx, "stubborn", 300*time.Millisecond); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		st, _ := d.Inspect(ctx, "stubborn")
		if st.State != runtime.StateExited || st.ExitCode != 137 {
			// Once seen in a full run: exit 2 some 30 ms after the start.
			out, _ := os.ReadFile(stubbornLog)
			t.Errorf("after Stop: %+v, want exited 137 (SIGKILL); its log:\n%s", st, out)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
			t.Errorf("Stop took %v, want grace then kill", took)
		}
	})

	t.Run("Start after exit is a new run with the previous log kept", func(t *testing.T) {
		before := web
		st, err := d.Start(ctx, "web")
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if st.State != runtime.StateRunning || st.Pid == before.Pid || st.IP != before.IP || !st.StartedAt.After(before.StartedAt) {
			t.Errorf("restart = %+v, want running, new pid and start time, same IP %s", st, before.IP)
		}
		web = st
		prev := readFile(t, logPath+".previous")
		if !strings.Contains(prev, "got SIGTERM") {
			t.Errorf("previous log = %q, want the first run's output", prev)
		}
		testutil.Eventually(t, 5*time.Second, "new run's log", func() (bool, string) {
			s := readFile(t, logPath)
			return strings.Contains(s, "starting on") && !strings.Contains(s, "got SIGTERM"), s
		})
		httpGet(t, "http://"+net.JoinHostPort(st.IP, "8080")+"/")
	})

	t.Run("a killed process shows as exited, and Events says so", func(t *testing.T) {
		before := exits.count("web")
		if err := syscall.Kill(int(web.Pid), syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", web.Pid, err)
		}
		testutil.Eventually(t, 10*time.Second, "an exit event for web", func() (bool, string) {
			return exits.count("web") > before, fmt.Sprint(exits.all())
		})
		st := waitState(t, d, "web", runtime.StateExited, 10*time.Second)
		if st.ExitCode != 137 || st.ExitedAt.IsZero() || st.OOMKilled {
			t.Errorf("after SIGKILL: %+v, want exit code 137", st)
		}
		// Back up for the restart test below.
		var err error
		if web, err = d.Start(ctx, "web"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Start re-creates a network namespace lost in a reboot", func(t *testing.T) {
		if err := d.Stop(ctx, "web", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		// What a reboot does to /run/netns; iptables rules and the IP file
		// survive here, which Start must cope with too.
		p := d.NetNSPath("web")
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		st, err := d.Start(ctx, "web")
		if err != nil {
			t.Fatalf("Start without netns: %v", err)
		}
		if st.State != runtime.StateRunning || st.IP == "" {
			t.Fatalf("Start = %+v, want running with an IP", st)
		}
		httpGet(t, "http://"+net.JoinHostPort(st.IP, "8080")+"/")
		httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if ips := ipamFiles(t, d.IPAMDir()); !slices.Equal(ips, []string{st.IP}) {
			t.Errorf("allocated IPs = %v, want only %s", ips, st.IP)
		}
		web = st
	})

	t.Run("OOM kill is reported", func(t *testing.T) {
		removeOnCleanup(t, d, "hog")
		_, err := d.Create(ctx, runtime.Spec{ID: "hog", Image: testImage, Args: []string{"alloc", "64"}, MemoryBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Start(ctx, "hog"); err != nil {
			t.Fatal(err)
		}
		st := waitState(t, d, "hog", runtime.StateExited, 30*time.Second)
		if !st.OOMKilled || st.ExitCode != 137 {
			t.Errorf("hog = %+v, want OOMKilled with exit code 137", st)
		}
	})

	t.Run("a command missing from the image is a clear start error", func(t *testing.T) {
		removeOnCleanup(t, d, "nocmd")
		if _, err := d.Create(ctx, runtime.Spec{ID: "nocmd", Image: testImage, Command: []string{"nope"}}); err != nil {
			t.Fatal(err)
		}
		st, err := d.Start(ctx, "nocmd")
		want := `exec: "nope": executable file not found in $PATH`
		if err == nil || st.Reason != want {
			t.Fatalf("Start = %+v, %v; want an error with Reason %q", st, err, want)
		}
		if st.State == runtime.StateRunning {
			t.Errorf("state %s after failed start", st.State)
		}
		if st, _ := d.Inspect(ctx, "nocmd"); st.Reason != want {
			t.Errorf("Inspect Reason = %q, want %q", st.Reason, want)
		}
	})

	t.Run("a fresh driver finds the running container", func(t *testing.T) {
		d2 := newDriver(t, cfgA)
		list, err := d2.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(s runtime.Status) bool { return s.ID == "web" })
		if i < 0 {
			t.Fatalf("List = %+v, want web", list)
		}
		got := list[i]
		if got.State != runtime.StateRunning || got.IP != web.IP || got.Pid != web.Pid || got.Image != testImage ||
			got.Labels["shoal.app"] != "web" || got.Labels["shoal.revision"] != "3" || len(got.Labels) != 2 ||
			!got.StartedAt.Equal(web.StartedAt) {
			t.Errorf("List entry = %+v, want %+v", got, web)
		}
	})

	t.Run("two drivers on one containerd do not see each other", func(t *testing.T) {
		cfgB := containerd.Config{
			Address:    address,
			Namespace:  testNamespace("b"),
			StateDir:   t.TempDir(),
			Network:    netB,
			Registries: cfgA.Registries,
		}
		b := newDriver(t, cfgB)
		removeOnCleanup(t, b, "web")
		if _, err := b.Create(ctx, runtime.Spec{ID: "web", Image: testImage, Labels: map[string]string{"owner": "b"}}); err != nil {
			t.Fatalf("B Create web: %v", err)
		}
		stB, err := b.Start(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stB.IP, "10.213.201.") {
			t.Errorf("B's IP %q not in %s", stB.IP, netB.Subnet)
		}
		httpGet(t, "http://"+net.JoinHostPort(stB.IP, "8080")+"/")
		httpGet(t, "http://"+net.JoinHostPort(web.IP, "8080")+"/")

		listB, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(listB) != 1 || listB[0].Labels["owner"] != "b" {
			t.Errorf("B lists %+v, want only its web", listB)
		}
		listA, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range listA {
			if s.Labels["owner"] == "b" {
				t.Errorf("A lists B's container %+v", s)
			}
		}
		testutil.Eventually(t, 5*time.Second, "B's log file", func() (bool, string) {
			s := readFile(t, filepath.Join(cfgB.StateDir, "logs", "web.log"))
			return strings.Contains(s, "starting on"), s
		})
		if err := b.Remove(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if st, err := d.Inspect(ctx, "web"); err != nil || st.State != runtime.StateRunning {
			t.Errorf("A's web after B removed its web: %+v %v", st, err)
		}
	})

	t.Run("latency of Create and Start", func(t *testing.T) {
		var creates, starts []time.Duration
		for i := range 5 {
			id := fmt.Sprintf("lat%d", i)
			removeOnCleanup(t, d, id)
			t0 := time.Now()
			if _, err := d.Create(ctx, runtime.Spec{ID: id, Image: testImage, MilliCPU: 100, MemoryBytes: 32 << 20,
				Ports: []runtime.PortMapping{{ContainerPort: 8080, HostPort: int32(testutil.FreePort(t))}}}); err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			if _, err := d.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			creates, starts = append(creates, t1.Sub(t0)), append(starts, time.Since(t1))
		}
		slices.Sort(creates)
		slices.Sort(starts)
		t.Logf("create (netns, CNI with port mapping, container): min %v median %v", creates[0], creates[2])
		t.Logf("start (task with logger, start): min %v median %v", starts[0], starts[2])
	})

	t.Run("Remove leaves nothing behind", func(t *testing.T) {
		cid := d.CNIContainerID("web")
		if !strings.Contains(natRules(t), cid) {
			t.Fatalf("no NAT rules mention %s before Remove; the check below would prove nothing", cid)
		}
		if err := d.Remove(ctx, "web"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		assertGone(t, d, cfgA, "web")
		assertFree(t, hostPort, 0)
		if err := d.Remove(ctx, "web"); err != nil {
			t.Errorf("Remove again: %v", err)
		}
	})

	t.Run("Remove cleans up after a Create that crashed half-way", func(t *testing.T) {
		port := testutil.FreePort(t)
		if _, err := d.Create(ctx, runtime.Spec{ID: "half", Image: testImage,
			Ports: []runtime.PortMapping{{ContainerPort: 8080, HostPort: int32(port)}}}); err != nil {
			t.Fatal(err)
		}
		// Lose the container record, keeping netns, IP and iptables rules.
		cctx := namespaces.WithNamespace(ctx, cfgA.Namespace)
		if err := d.Client().ContainerService().Delete(cctx, "half"); err != nil {
			t.Fatal(err)
		}
		if err := d.Remove(ctx, "half"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		assertGone(t, d, cfgA, "half")
		assertFree(t, port, 0)
	})
}

// assertGone checks that nothing of container id is left: record,
// snapshot, netns, IP, NAT rules.
func assertGone(t *testing.T, d *containerd.Driver, cfg containerd.Config, id string) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), cfg.Namespace)
	if _, err := d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if _, err := d.Client().SnapshotService("overlayfs").Stat(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s after Remove: %v, want not found", id, err)
	}
	if _, err := os.Stat(d.NetNSPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s after Remove: %v", d.NetNSPath(id), err)
	}
	if ips := ipamFiles(t, d.IPAMDir()); len(ips) != 0 {
		t.Errorf("IPs still allocated in %s: %v", d.IPAMDir(), ips)
	}
	cid := d.CNIContainerID(id)
	for _, line := range strings.Split(natRules(t), "\n") {
		if strings.Contains(line, cid) {
			t.Errorf("NAT rule left: %s", line)
		}
	}
}

// cgroupValue reads a cgroup file for cgroupsPath, trying the v1 layout
// (/sys/fs/cgroup/CONTROLLER/PATH/V1FILE) then v2 (/sys/fs/cgroup/PATH/V2FILE).
func cgroupValue(t *testing.T, cgroupsPath, controller, v1file, v2file string) string {
	t.Helper()
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup", controller, cgroupsPath, v1file),
		filepath.Join("/sys/fs/cgroup", cgroupsPath, v2file),
	} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s or %s for cgroup %s", v1file, v2file, cgroupsPath)
	return ""
}

// exitLog records the ids Driver.Events reports, for the whole test.
type exitLog struct {
	mu  sync.Mutex
	ids []string
}

func collectExits(t *testing.T, d *containerd.Driver) *exitLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &exitLog{}
	events := d.Events(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := range events {
			l.mu.Lock()
			l.ids = append(l.ids, id)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *exitLog) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.ids {
		if x == id {
			n++
		}
	}
	return n
}

func (l *exitLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}
