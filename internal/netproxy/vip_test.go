package netproxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// testNet is a network namespace behind a veth pair, standing in for a
// container behind the bridge: host side 10.250.N.1/24, namespace side
// 10.250.N.2/24 with its default route through the host side.
type testNet struct {
	ns, hostIf, hostIP, peerIP string
	vip                        string // routed through hostIf, on no interface
}

func run(t *testing.T, name string, args ...string) error {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	testutil.RequireRoot(t, "")
	for _, tool := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Unavailable(t, "%s not found: %v", tool, err)
		}
	}
	var rb [2]byte
	_, _ = rand.Read(rb[:])
	r := binary.BigEndian.Uint16(rb[:])
	third := 2 + int(r%120)*2 // even: 10.250.third.0/24 for the link, third+1 for the VIP
	id := fmt.Sprintf("%04x", r)
	n := &testNet{
		ns:     "shoalnp-" + id,
		hostIf: "snp" + id + "h",
		hostIP: fmt.Sprintf("10.250.%d.1", third),
		peerIP: fmt.Sprintf("10.250.%d.2", third),
		vip:    fmt.Sprintf("10.250.%d.10", third+1),
	}
	peer := "snp" + id + "c"
	if err := run(t, "ip", "netns", "add", n.ns); err != nil {
		testutil.Unavailable(t, "cannot make a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := run(t, "ip", "netns", "del", n.ns); err != nil {
			t.Error(err)
		}
	})
	if err := run(t, "ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", peer, "netns", n.ns); err != nil {
		testutil.Unavailable(t, "cannot make a veth pair: %v", err)
	}
	t.Cleanup(func() { _ = run(t, "ip", "link", "del", n.hostIf) })
	for _, args := range [][]string{
		{"addr", "add", n.hostIP + "/24", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.ns, "addr", "add", n.peerIP + "/24", "dev", peer},
		{"-n", n.ns, "link", "set", peer, "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", n.ns, "route", "add", "default", "via", n.hostIP},
		// The host's own connections to the VIP need a route before the
		// OUTPUT rule can rewrite them; it leaves with the veth.
		{"route", "add", n.vip + "/32", "dev", n.hostIf},
	} {
		if err := run(t, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// getInNS runs GET url inside the namespace, resolving names with dns.
func (n *testNet) getInNS(t *testing.T, url, dns string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETPROXY_TEST_GET="+url, "NETPROXY_TEST_DNS="+dns)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func natRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v: %s", err, out)
	}
	return string(out)
}

// TestServiceIP reaches an App through its serviceIP and its DNS name from
// a "container" (a network namespace behind a veth) and from the host,
// through the real nat chain, then checks that Run leaves nothing behind.
func TestServiceIP(t *testing.T) {
	n := newTestNet(t)
	// The backend listens on the host's side of the veth, as an instance
	// listens on its own address: the kernel DNATs service traffic to it.
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from backend, %s asked", r.Host)
	}))
	bl, err := net.Listen("tcp", net.JoinHostPort(n.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	backend.Listener = bl
	backend.Start()
	defer backend.Close()

	chain := "SHOAL-T-" + strings.TrimPrefix(n.hostIf, "snp")
	dnsPort := testutil.FreePortOn(t, n.hostIP)
	p, err := newProxy(Config{BridgeIP: n.hostIP, Bridge: n.hostIf, DNSPort: dnsPort, ChainName: chain, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.rules = &iptables{chain: chain, bridge: n.hostIf, log: p.log}
	p.apply([]*api.Node{testNode(testNodeName, n.hostIP+"/32")}, []*api.App{testApp("default", "web", n.vip, 80, 0)},
		[]*api.Instance{testInstance("default", "web", "web-1", strings.TrimPrefix(backend.URL, "http://"))})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return 15s after its context ended")
		}
	}
	t.Cleanup(stop)

	vipURL := "http://" + n.vip + "/"
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := httpGet(hc, vipURL)
		if err == nil {
			if !strings.HasPrefix(body, "hello from backend") {
				t.Fatalf("GET %s from the host: %q, want the backend's answer", vipURL, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s from the host (OUTPUT rule) still fails after 10s: %v\n%s", vipURL, err, natRules(t))
		}
		time.Sleep(50 * time.Millisecond)
	}

	if body, err := n.getInNS(t, vipURL, ""); err != nil || !strings.HasPrefix(body, "hello from backend") {
		t.Errorf("GET %s inside the namespace (PREROUTING rule): %q, %v; want the backend's answer\n%s", vipURL, body, err, natRules(t))
	}
	dns := net.JoinHostPort(n.hostIP, strconv.Itoa(dnsPort))
	nameURL := "http://web.default.shoal/"
	if body, err := n.getInNS(t, nameURL, dns); err != nil || !strings.HasPrefix(body, "hello from backend") {
		t.Errorf("GET %s inside the namespace, names from %s: %q, %v; want the backend's answer", nameURL, dns, body, err)
	}

	rules := natRules(t)
	for _, want := range []string{
		"-A PREROUTING -i " + n.hostIf + " -m comment --comment \"shoal service proxy\" -j " + chain,
		"-A OUTPUT -m comment --comment \"shoal service proxy\" -j " + chain,
		"-A " + chain + " -d " + n.vip + "/32 -p tcp -m tcp --dport 80",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("nat table lacks %q:\n%s", want, rules)
		}
	}

	// The App goes: its rule goes with the next reconcile.
	p.apply(nil, nil, nil)
	deadline = time.Now().Add(5 * time.Second)
	for strings.Contains(natRules(t), "-A "+chain+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("chain %s still has rules 5s after the App went:\n%s", chain, natRules(t))
		}
		time.Sleep(20 * time.Millisecond)
	}

	stop()
	if rules := natRules(t); strings.Contains(rules, chain) {
		t.Errorf("after Run returned, the nat table still mentions %s:\n%s", chain, rules)
	}
}

func httpGet(hc *http.Client, url string) (string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// TestPublishedPortModes: in kernel mode (the default) a connection to a
// published port on a node address is DNATed by the kernel straight to an
// endpoint; in proxy mode it goes through the proxy's listener. The
// backend tells them apart by who connects: the client itself (kernel) or
// the host (proxy). Loopback is always the proxy's.
func TestPublishedPortModes(t *testing.T) {
	n := newTestNet(t)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "from %s", host)
	}))
	bl, err := net.Listen("tcp", net.JoinHostPort(n.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	backend.Listener = bl
	backend.Start()
	defer backend.Close()

	chain := "SHOAL-T-" + strings.TrimPrefix(n.hostIf, "snp")
	pub := testutil.FreePortOn(t, "0.0.0.0")
	p, err := newProxy(Config{BridgeIP: n.hostIP, Bridge: n.hostIf, DNSPort: testutil.FreePortOn(t, n.hostIP), ChainName: chain, PortRange: anyPort, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.rules = &iptables{chain: chain, bridge: n.hostIf, publish: p.cfg.PublishAddress, log: p.log}
	app := testApp("default", "web", "", 80, int32(pub))
	inst := testInstance("default", "web", "web-1", strings.TrimPrefix(backend.URL, "http://"))
	nodes := []*api.Node{testNode(testNodeName, n.hostIP+"/32")}
	p.apply(nodes, []*api.App{app}, []*api.Instance{inst})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	url := fmt.Sprintf("http://%s:%d/", n.hostIP, pub)
	// answer waits for the published port to answer from the namespace as
	// want says.
	answer := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			body, err := n.getInNS(t, url, "")
			if err == nil && body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s from the namespace: %q, %v; want %q\n%s", what, url, body, err, want, natRules(t))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	answer("kernel mode", "from "+n.peerIP)
	rules := natRules(t)
	for _, want := range []string{
		"-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment \"shoal published ports\" -j " + chain + "-E",
		"-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment \"shoal published ports\" -j " + chain + "-E",
		fmt.Sprintf("-A %s-E -p tcp -m tcp --dport %d", chain, pub),
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("nat table lacks %q:\n%s", want, rules)
		}
	}
	// The jumps are written as iptables prints them: a resync keeps them.
	if err := p.rules.ensureJumps(ctx); err != nil {
		t.Fatal(err)
	}
	// Only this test's rules: other packages' tests change the nat table
	// meanwhile.
	ours := func(all string) string {
		var keep []string
		for _, l := range strings.Split(all, "\n") {
			if strings.Contains(l, chain) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if after := natRules(t); ours(after) != ours(rules) {
		t.Errorf("ensureJumps rewrote correct jumps:\nbefore:\n%s\nafter:\n%s", ours(rules), ours(after))
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if body, err := httpGet(hc, fmt.Sprintf("http://127.0.0.1:%d/", pub)); err != nil || body != "from "+n.hostIP {
		t.Errorf("GET on loopback: %q, %v; want the proxy's connection (from %s)", body, err, n.hostIP)
	}

	proxied := testApp("default", "web", "", 80, int32(pub))
	proxied.Spec.Ports[0].PublishMode = api.PublishProxy
	p.apply(nodes, []*api.App{proxied}, []*api.Instance{inst})
	answer("proxy mode", "from "+n.hostIP)
	if rules := natRules(t); strings.Contains(rules, fmt.Sprintf("--dport %d", pub)) {
		t.Errorf("proxy mode, yet the nat table still forwards port %d:\n%s", pub, rules)
	}

	stop()
	if rules := natRules(t); strings.Contains(rules, chain) {
		t.Errorf("after Run returned, the nat table still mentions %s:\n%s", chain, rules)
	}
}
