package containerd_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-dev/shoal/internal/runtime"
	"github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// testImage is the reference the tests use; "shoal.local" resolves to the
// loopback registry through Config.Registries.
const testImage = "shoal.local/app:v1"

// serveTestImage builds testdata/app statically, packs it into an image
// and serves it from a registry on 127.0.0.1. It returns the registry URL.
func serveTestImage(t *testing.T) string {
	t.Helper()
	app := buildStatic(t, "./testdata/app")
	return serveImage(t, "app:v1", func(tw *tar.Writer) {
		writeDir(t, tw, "work/", 0o755)
		writeDir(t, tw, "tmp/", 0o1777)
		writeFile(t, tw, "app", app)
	}, func(c *v1.Config) {
		c.Entrypoint = []string{"/app"}
		c.Cmd = []string{"serve"}
		c.Env = []string{"PATH=/usr/bin:/bin", "PORT=8080"}
	})
}

// buildStatic builds the Go program in dir as a static binary.
func buildStatic(t *testing.T, dir string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command(filepath.Join(goruntime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", bin, dir)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", dir, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeDir(t *testing.T, tw *tar.Writer, name string, mode int64) {
	t.Helper()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, tw *tar.Writer, name string, content []byte) {
	t.Helper()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
}

// serveImage makes a one-layer image (files written by layer, config set
// by config) and serves it as repo from a registry on 127.0.0.1. It
// returns the registry URL.
func serveImage(t *testing.T, repo string, layer func(*tar.Writer), config func(*v1.Config)) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	layer(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	config(&cf.Config)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push test image %s: %v", repo, err)
	}
	return srv.URL
}

// newDriver starts a driver and closes it with the test.
func newDriver(t *testing.T, cfg containerd.Config) *containerd.Driver {
	t.Helper()
	d, err := containerd.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// resetOnCleanup resets the test's own driver namespace and network with
// containerd.Reset once the test is over, and checks that it left nothing:
// no namespace, bridge, masquerade or egress rule.
func resetOnCleanup(t *testing.T, address, namespace string, net containerd.NetworkConfig) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cfg := containerd.Config{Address: address, Namespace: namespace, StateDir: t.TempDir(), Network: containerd.NetworkConfig{Bridge: net.Bridge}}
		if err := containerd.Reset(ctx, cfg); err != nil {
			t.Errorf("Reset: %v", err)
		}
		if err := exec.Command("ip", "link", "show", "dev", net.Bridge).Run(); err == nil {
			t.Errorf("bridge %s still there after Reset", net.Bridge)
		}
		if n := countLines(natRules(t), masqueradeRule(net)); n != 0 {
			t.Errorf("%d masquerade rules for %s after Reset", n, net.Bridge)
		}
		if rules := filterRules(t); strings.Contains(rules, "-i "+net.Bridge+" ") || strings.Contains(rules, "-"+net.Bridge+"\n") {
			t.Errorf("egress rules for %s after Reset:\n%s", net.Bridge, rules)
		}
		out, err := exec.Command("ctr", "--address", address, "namespaces", "ls", "-q").Output()
		if err != nil {
			t.Errorf("ctr namespaces ls: %v", err)
		}
		for _, ns := range strings.Fields(string(out)) {
			if ns == namespace {
				t.Errorf("containerd namespace %s still there after Reset", ns)
			}
		}
	})
}

// masqueradeRule is the nat rule New installs for net, as iptables-save
// prints it.
func masqueradeRule(net containerd.NetworkConfig) string {
	return fmt.Sprintf(`-A POSTROUTING -s %s ! -d %s -m comment --comment "shoal %s" -j MASQUERADE`,
		net.Subnet, net.Subnet, net.Bridge)
}

// deleteMasquerade deletes every copy of net's masquerade rule.
func deleteMasquerade(t *testing.T, net containerd.NetworkConfig) {
	t.Helper()
	for range 100 {
		err := exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", net.Subnet, "!", "-d", net.Subnet,
			"-m", "comment", "--comment", "shoal "+net.Bridge, "-j", "MASQUERADE").Run()
		if err != nil {
			return
		}
	}
	t.Errorf("more than 100 copies of %s", masqueradeRule(net))
}

// countLines counts the lines of s equal to line.
func countLines(s, line string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			n++
		}
	}
	return n
}

// removeOnCleanup removes container id when the test ends, in case the
// test failed before its own Remove.
func removeOnCleanup(t *testing.T, d *containerd.Driver, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Remove(ctx, id); err != nil {
			t.Errorf("cleanup: Remove(%s): %v", id, err)
		}
	})
}

func waitState(t *testing.T, d *containerd.Driver, id string, want runtime.State, timeout time.Duration) runtime.Status {
	t.Helper()
	var st runtime.Status
	testutil.Eventually(t, timeout, fmt.Sprintf("%s to be %s", id, want), func() (bool, string) {
		var err error
		st, err = d.Inspect(context.Background(), id)
		if err != nil {
			return false, err.Error()
		}
		return st.State == want, fmt.Sprintf("%+v", st)
	})
	return st
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// httpGet fetches url, retrying for a few seconds while the server starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	testutil.Eventually(t, 10*time.Second, "GET "+url, func() (bool, string) {
		resp, err := httpClient.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err.Error()
		}
		body = string(b)
		return resp.StatusCode == http.StatusOK, resp.Status + " " + body
	})
	return body
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// assertHeld checks that nothing else can bind the host ports: they are the
// driver's.
func assertHeld(t *testing.T, tcpPort, udpPort int) {
	t.Helper()
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort)); err == nil {
		l.Close()
		t.Errorf("listened on 127.0.0.1:%d/tcp; want it held by the driver", tcpPort)
	}
	if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", udpPort)); err == nil {
		c.Close()
		t.Errorf("listened on 127.0.0.1:%d/udp; want it held by the driver", udpPort)
	}
}

// assertFree checks that the host ports can be bound again.
func assertFree(t *testing.T, tcpPort, udpPort int) {
	t.Helper()
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort)); err != nil {
		t.Errorf("host port %d/tcp still held: %v", tcpPort, err)
	} else {
		l.Close()
	}
	if udpPort == 0 {
		return
	}
	if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", udpPort)); err != nil {
		t.Errorf("host port %d/udp still held: %v", udpPort, err)
	} else {
		c.Close()
	}
}

// nodeAddrs are the node's IPv4 addresses other than loopback: where
// traffic to a published port may come from another machine.
func nodeAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			out = append(out, n.IP.String())
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// natRules is the host's iptables NAT table, where bridge masquerading and
// portmap DNAT live.
func natRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, out)
	}
	return string(out)
}

// ipamFiles lists the addresses host-local holds in dir.
func ipamFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// testNamespace is a containerd namespace of this test process alone: the
// runc shim keeps its state under /run/containerd/runc/NAMESPACE whatever
// the daemon, so a fixed name would collide with another run, or with the
// leftovers of a killed one.
func testNamespace(name string) string {
	return fmt.Sprintf("shoal-test-%s-%d", name, os.Getpid())
}

// filterRules is the host's iptables filter table, where the egress rules
// are.
func filterRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "-t", "filter", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -S: %v\n%s", err, out)
	}
	return string(out)
}
