package netproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// TestMain doubles as a tiny HTTP client, so a test can run this binary
// inside a network namespace it made (ip netns exec NS <binary>).
func TestMain(m *testing.M) {
	if url := os.Getenv("NETPROXY_TEST_GET"); url != "" {
		os.Exit(helperGet(url, os.Getenv("NETPROXY_TEST_DNS")))
	}
	os.Exit(m.Run())
}

// helperGet prints the body of GET url; with dnsServer set, names are
// resolved by that server only.
func helperGet(url, dnsServer string) int {
	d := &net.Dialer{Timeout: 3 * time.Second}
	if dnsServer != "" {
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dnsServer)
		}}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startProxy runs p until the test ends and waits for Run to return then.
func startProxy(t *testing.T, p *Proxy) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return 15s after its context ended")
		}
	})
}

// waitDial waits until addr accepts connections.
func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections after 5s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testApp is an App with one named TCP port.
func testApp(ns, name, vip string, port, publish int32) *api.App {
	return &api.App{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp},
		Metadata: api.ObjectMeta{Namespace: ns, Name: name},
		Spec:     api.AppSpec{Template: api.Template{Ports: []api.Port{{Name: "http", ContainerPort: port, Protocol: api.ProtocolTCP, Publish: publish}}}},
		Status:   api.AppStatus{ServiceIP: vip},
	}
}

// anyPort lets a test's proxy publish whatever free port the kernel gave
// the test.
var anyPort = api.PortRange{Min: 1, Max: 65535}

// testNodeName is the node every testInstance runs on.
const testNodeName = "node-1"

// testNode is a Node with a subnet: its instances' addresses count only
// inside it.
func testNode(name, subnet string) *api.Node {
	return &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.NodeSpec{Subnet: subnet},
	}
}

// loopbackNodes are the nodes of tests whose instances listen on loopback.
var loopbackNodes = []*api.Node{testNode(testNodeName, "127.0.0.0/8")}

// testInstance is a ready instance of app at ip:port on testNodeName ("127.0.0.1:PORT" in
// tests: the port is found by its name, as for an instance of another
// revision, so every fake backend can have its own port).
func testInstance(ns, app, name, addr string) *api.Instance {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		panic(err)
	}
	port, _ := strconv.Atoi(ps)
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Namespace: ns, Name: name},
		Spec: api.InstanceSpec{App: app, Node: testNodeName, Template: api.Template{
			Ports: []api.Port{{Name: "http", ContainerPort: int32(port), Protocol: api.ProtocolTCP}},
		}},
		Status: api.InstanceStatus{Phase: api.PhaseRunning, IP: host, Ready: true},
	}
}

func TestNewChecksConfig(t *testing.T) {
	c := client.New("http://127.0.0.1:1")
	p, err := New(Config{Client: c, BridgeIP: "10.213.0.1", Bridge: "shoal0", Upstream: []string{"10.0.0.2:53"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.ChainName != "SHOAL-SVC-shoal0" || p.cfg.DNSPort != 53 || p.cfg.PublishAddress != "0.0.0.0" {
		t.Errorf("defaults: chain %q, dns port %d, publish address %q; want SHOAL-SVC-shoal0, 53, 0.0.0.0", p.cfg.ChainName, p.cfg.DNSPort, p.cfg.PublishAddress)
	}
	for _, bad := range []Config{
		{BridgeIP: "10.213.0.1", Bridge: "shoal0"},
		{Client: c, BridgeIP: "10.213.0.1"},
		{Client: c, BridgeIP: "", Bridge: "shoal0"},
		{Client: c, BridgeIP: "fd00::1", Bridge: "shoal0"},
		{Client: c, BridgeIP: "10.213.0.1", Bridge: "shoal0", ChainName: "SHOAL-SVC-much-too-long-a-name"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", bad)
		}
	}
}
