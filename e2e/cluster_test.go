package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/image"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/runtime/containerd/containerdtest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// Built once in TestMain.
var (
	shoalBin string
	helloV1  string // image tarball shoal.local/hello:v1
	helloV2  string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: they need root and containerd
	}
	dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
	if err != nil {
		panic(err)
	}
	buildErr = build(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	shoalBin = filepath.Join(dir, "shoal")
	args := []string{"build", "-o", shoalBin}
	if os.Getenv("SHOAL_E2E_RACE") != "" {
		// make test: the shoal processes run with the race detector too, and
		// a test fails when one reports a race (see proc.stop).
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "../cmd/shoal")...).CombinedOutput(); err != nil {
		return fmt.Errorf("build shoal: %v\n%s", err, out)
	}
	for _, v := range []string{"v1", "v2"} {
		bin := filepath.Join(dir, v, "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+v, "-o", bin, "../examples/hello")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build hello: %v\n%s", err, out)
		}
		tar := filepath.Join(dir, "hello-"+v+".tar")
		if err := image.WriteTarball(tar, image.BuildOptions{Ref: "shoal.local/hello:" + v, Binary: bin, Entrypoint: []string{"/hello"}}); err != nil {
			return err
		}
		if v == "v1" {
			helloV1 = tar
		} else {
			helloV2 = tar
		}
	}
	return nil
}

// seq gives every cluster in this test binary its own bridge, subnet and
// runtime namespace, so clusters never see each other's containers.
var seq atomic.Int32

// node is one agent's identity on this machine.
type node struct {
	name, runtimeNS, bridge, subnet string
}

// newNode names a node whose agent keeps its state in dataDir and its
// containers in the containerd at ctd. When the test ends, after the agent
// stopped, `shoal node reset` removes everything it made on the host, as
// a user would, and the test fails if that does not work.
func newNode(t *testing.T, name, ctd, dataDir string) node {
	nd := nodeFor(name)
	// Registered before the agent starts, so it runs after the agent stopped.
	t.Cleanup(func() {
		out, err := exec.Command(shoalBin, "node", "reset", "--data-dir", dataDir, "--containerd-address", ctd,
			"--runtime-namespace", nd.runtimeNS, "--bridge", nd.bridge, "--routes=false").CombinedOutput()
		if err != nil {
			t.Errorf("shoal node reset for %s: %v\n%s", name, err, out)
		}
	})
	return nd
}

// nodeFor names a node: its own runtime namespace, bridge and subnet.
func nodeFor(name string) node {
	n := seq.Add(1) + int32(os.Getpid()%50)*4
	return node{
		name: name,
		// Unique per run: an image cached by an earlier run under the same
		// tag would otherwise be used instead of this run's build.
		runtimeNS: fmt.Sprintf("e2e-%d-%s-%d", n, name, time.Now().UnixNano()%1e6),
		bridge:    fmt.Sprintf("se2e%d", n),
		subnet:    fmt.Sprintf("10.214.%d.0/24", n%250),
	}
}

// e2eClusterCIDR is the servers' --cluster-cidr in these tests: the
// subnets nodeFor gives lie in it (a server refuses any outside).
const e2eClusterCIDR = "10.214.0.0/16"

func (n node) agentFlags() []string {
	// Any free overlay port: several agents share this machine.
	f := []string{"--node-name", n.name, "--runtime-namespace", n.runtimeNS, "--bridge", n.bridge, "--overlay-port", "0", "--cluster-cidr", e2eClusterCIDR}
	if n.subnet != "" {
		f = append(f, "--subnet", n.subnet)
	}
	return f
}

// proc is a running shoal process.
type proc struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, log: &bytes.Buffer{}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) start() {
	p.cmd = exec.Command(shoalBin, p.args...)
	w := &syncWriter{buf: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start shoal %v: %v", p.args, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
}

// kill9 kills the process at once, as a crash would.
func (p *proc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill9()
	}
	if p.raced() {
		p.t.Errorf("shoal %v reported a data race", p.args)
	}
	if p.t.Failed() {
		p.t.Logf("log of shoal %v:\n%s", p.args, p.log.String())
	}
}

// output is what the process has printed so far.
func (p *proc) output() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// raced says whether the process's race detector reported a race.
func (p *proc) raced() bool {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), "WARNING: DATA RACE")
}

// syncWriter collects a process's output; the buffer is only read after
// the process ended or under the same lock.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

// String is what was written so far.
func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

// cluster is a shoal control plane plus the agents started for a test.
type cluster struct {
	t          *testing.T
	dir        string
	ctd        string
	url        string
	conf       string        // admin.conf
	admin      client.Config // what it holds
	server     *proc
	nodes      []node
	agents     []*proc
	allInOne   bool
	api        *client.Client
	extraFlags []string
}

func requireRoot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs root and containerd")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return containerdtest.Start(t)
}

// upCluster starts `shoal up` (server and agent in one process).
func upCluster(t *testing.T, extra ...string) *cluster {
	c := &cluster{t: t, ctd: requireRoot(t), allInOne: true, extraFlags: extra}
	dir := shortTempDir(t)
	n := newNode(t, "node1", c.ctd, filepath.Join(dir, "agent"))
	c.dir = dir
	c.nodes = []node{n}
	// A fixed port, so that a restarted server is where its agents expect it.
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	args := append([]string{"up", "--data-dir", c.dir, "--listen", listen, "--containerd-address", c.ctd}, n.agentFlags()...)
	c.server = startProc(t, append(args, extra...)...)
	c.waitReady()
	t.Cleanup(c.cleanup)
	return c
}

// serverCluster starts `shoal server` alone; add agents with addAgent.
func serverCluster(t *testing.T, extra ...string) *cluster {
	c := &cluster{t: t, ctd: requireRoot(t), dir: shortTempDir(t)}
	// The agents' subnets (nodeFor) lie in the servers' cluster range;
	// extra may give another.
	args := []string{"server", "--data-dir", c.dir, "--listen", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), "--cluster-cidr", e2eClusterCIDR}
	c.server = startProc(t, append(args, extra...)...)
	c.waitReady()
	t.Cleanup(c.cleanup)
	return c
}

func (c *cluster) addAgent(name string, extra ...string) *proc {
	agentDir := filepath.Join(c.dir, "agent-"+name)
	n := newNode(c.t, name, c.ctd, agentDir)
	for _, f := range extra {
		if f == "--subnet=server" { // ask the server for one
			n.subnet = ""
		}
	}
	extra = slices.DeleteFunc(extra, func(f string) bool { return f == "--subnet=server" })
	c.nodes = append(c.nodes, n)
	// Every agent joins with a token of its own, as a real machine does.
	token := strings.TrimSpace(c.mustShoal("token", "create", "--ttl", "10m"))
	args := append([]string{"agent", "--server", c.url, "--token", token, "--data-dir", agentDir, "--containerd-address", c.ctd}, n.agentFlags()...)
	p := startProc(c.t, append(args, extra...)...)
	// Registered after the agent's stop, so apps are deleted while it still
	// runs and can remove their containers.
	c.t.Cleanup(c.cleanup)
	c.agents = append(c.agents, p)
	c.eventually(30*time.Second, "node "+name+" ready", func() (bool, string) {
		obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", name)
		if err != nil {
			return false, err.Error()
		}
		return obj.(*api.Node).Status.Ready, "not ready"
	})
	return p
}

func (c *cluster) waitReady() {
	c.t.Helper()
	conf := filepath.Join(c.dir, "admin.conf")
	c.eventually(60*time.Second, "server writes admin.conf and answers /healthz", func() (bool, string) {
		cfg, err := client.ReadConfig(conf)
		if err != nil {
			return false, err.Error()
		}
		if c.api, err = client.FromConfig(cfg); err != nil {
			return false, err.Error()
		}
		c.url, c.conf, c.admin = cfg.Server, conf, cfg
		if err := c.api.Ping(context.Background()); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if c.allInOne {
		c.eventually(30*time.Second, "the all-in-one node registers", func() (bool, string) {
			objs, _, err := c.api.List(context.Background(), api.MustKind(api.KindNode), "", client.ListOptions{})
			if err != nil || len(objs) == 0 {
				return false, fmt.Sprint("nodes: ", len(objs), err)
			}
			return objs[0].(*api.Node).Status.Ready, "not ready"
		})
	}
}

// cleanup deletes every app and waits for the containers to go, so a
// test leaves nothing behind on the machine even when it failed.
func (c *cluster) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if c.api == nil || c.api.Ping(ctx) != nil {
		return
	}
	objs, _, _ := c.api.List(ctx, api.MustKind(api.KindApp), "", client.ListOptions{})
	for _, o := range objs {
		_ = c.api.Delete(ctx, api.MustKind(api.KindApp), o.GetMeta().Namespace, o.GetMeta().Name, client.DeleteOptions{})
	}
	for ctx.Err() == nil {
		ins, _, err := c.api.List(ctx, api.MustKind(api.KindInstance), "", client.ListOptions{})
		if err != nil || len(ins) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shoal runs the CLI against this cluster and returns its combined output.
func (c *cluster) shoal(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, append([]string{"--config", c.conf}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) mustShoal(args ...string) string {
	c.t.Helper()
	out, err := c.shoal(args...)
	if err != nil {
		c.t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) applyYAML(y string, extra ...string) string {
	c.t.Helper()
	return c.mustShoal(append([]string{"apply", "-f", c.writeFile(y)}, extra...)...)
}

func (c *cluster) writeFile(content string) string {
	c.t.Helper()
	f := filepath.Join(c.dir, fmt.Sprintf("manifest-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return f
}

// get fetches a path of the API server as the admin (its /metrics, say).
func (c *cluster) get(path string) (string, error) {
	cfg, err := c.admin.TLS()
	if err != nil {
		return "", err
	}
	return getTLS(c.url+path, cfg)
}

// agentGet fetches a path of node's agent as the admin, checking that the
// agent presents node's certificate (as the server does).
func (c *cluster) agentGet(node, path string) (string, error) {
	cfg, err := c.admin.TLS()
	if err != nil {
		return "", err
	}
	kp, err := pki.NewKeypair([]byte(c.admin.Certificate), []byte(c.admin.Key))
	if err != nil {
		return "", err
	}
	return getTLS("https://"+c.nodeAddress(node)+path, pki.PeerTLS(cfg.RootCAs, kp, pki.NodeName(node)))
}

func getTLS(url string, cfg *tls.Config) (string, error) {
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// nodeAddress is where node's agent serves (logs, metrics, exec).
func (c *cluster) nodeAddress(node string) string {
	c.t.Helper()
	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", node)
	if err != nil {
		c.t.Fatal(err)
	}
	return obj.(*api.Node).Status.Address
}

// publishedURL is a published port's URL on node's internal address: a
// node address, not loopback, so the kernel forwards it in kernel mode.
func (c *cluster) publishedURL(node string, port int) string {
	c.t.Helper()
	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", node)
	if err != nil {
		c.t.Fatal(err)
	}
	ip := obj.(*api.Node).Status.InternalIP
	if ip == "" {
		c.t.Fatalf("node %s reports no internal IP", node)
	}
	return fmt.Sprintf("http://%s/", net.JoinHostPort(ip, strconv.Itoa(port)))
}

func (c *cluster) getApp(name string) *api.App {
	c.t.Helper()
	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindApp), "default", name)
	if err != nil {
		c.t.Fatalf("get app %s: %v", name, err)
	}
	return obj.(*api.App)
}

func (c *cluster) instances(app string) []*api.Instance {
	c.t.Helper()
	objs, _, err := c.api.List(context.Background(), api.MustKind(api.KindInstance), "default", client.ListOptions{App: app})
	if err != nil {
		c.t.Fatalf("list instances: %v", err)
	}
	var out []*api.Instance
	for _, o := range objs {
		if in := o.(*api.Instance); in.Spec.App == app {
			out = append(out, in)
		}
	}
	return out
}

// running waits for exactly n live Running instances of app and returns them.
func (c *cluster) running(app string, n int) []*api.Instance {
	c.t.Helper()
	var got []*api.Instance
	c.eventually(90*time.Second, fmt.Sprintf("%d running instances of %s", n, app), func() (bool, string) {
		got = nil
		all := c.instances(app)
		var desc []string
		for _, in := range all {
			desc = append(desc, fmt.Sprintf("%s:%s:%q", in.Metadata.Name, in.Status.Phase, in.Status.Message))
			if in.Metadata.DeletedAt.IsZero() && in.Status.Phase == api.PhaseRunning {
				got = append(got, in)
			}
		}
		return len(got) == n && len(all) == n, strings.Join(desc, ", ")
	})
	return got
}

func (c *cluster) eventually(timeout time.Duration, what string, f func() (bool, string)) {
	c.t.Helper()
	eventually(c.t, timeout, what, f)
}

// eventually polls f every 150ms: e2e conditions run the CLI or ask a
// server that is busy starting containers.
func eventually(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	testutil.EventuallyEvery(t, timeout, 150*time.Millisecond, what, f)
}

// shortTempDir is under /tmp with a short name: unix socket paths inside
// must fit 108 bytes.
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("/tmp", "se2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// getEventually fetches url until it answers 200 (a process that was
// just started may not listen yet).
func getEventually(t *testing.T, url string) string {
	t.Helper()
	var body string
	eventually(t, 15*time.Second, "GET "+url, func() (bool, string) {
		var err error
		body, err = httpGet(url)
		return err == nil, fmt.Sprint(body, err)
	})
	return body
}

// sortedLines sorts a command's output lines, for comparing listings.
func sortedLines(s string) string {
	l := nonEmptyLines(s)
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// httpGet fetches url with a short timeout; the body or an error text.
func httpGet(url string) (string, error) {
	// A new connection each time: a pooled one could reach an instance that
	// is draining, which tells nothing about where new traffic goes.
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// listenNodePort binds a free TCP port of the host inside the cluster's
// default publish range (30000-32767), where published ports and hostPorts
// must be: the kernel's free ports (32768 and up) are outside it.
func listenNodePort(t *testing.T) net.Listener {
	t.Helper()
	r := api.DefaultPortRange
	start := r.Min + int32(rand.IntN(int(r.Max-r.Min+1)))
	for i := range r.Max - r.Min + 1 {
		port := r.Min + (start-r.Min+i)%(r.Max-r.Min+1)
		if l, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(int(port)))); err == nil {
			return l
		}
	}
	t.Fatalf("no free port in %s", r)
	return nil
}

// freeNodePort finds a free TCP port for a published port or hostPort.
func freeNodePort(t *testing.T) int {
	t.Helper()
	l := listenNodePort(t)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ctr runs containerd's CLI against the test's containerd.
func (c *cluster) ctr(ns string, args ...string) string {
	c.t.Helper()
	out, err := exec.Command("ctr", append([]string{"--address", c.ctd, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
