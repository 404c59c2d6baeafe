package netproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// fakeRules records what the reconciler would write to the nat table.
type fakeRules struct {
	mu   sync.Mutex
	last []natRule
}

func (f *fakeRules) write(_ context.Context, rules []natRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = slices.Clone(rules)
	return nil
}

func (f *fakeRules) ensureJumps(context.Context) error { return nil }
func (f *fakeRules) cleanup(context.Context) error     { return nil }

// published is the ports the last write forwards as published ports.
func (f *fakeRules) published() []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int32
	for _, r := range f.last {
		if r.published {
			out = append(out, r.port)
		}
	}
	slices.Sort(out)
	return out
}

// TestPublishedPortsOnlyInRangeAndFree: a node opens no published port
// outside its owner's range, and never takes over a port another program
// on the node listens on (no listener, no DNAT rule), and says why in an
// Event on the Node.
func TestPublishedPortsOnlyInRangeAndFree(t *testing.T) {
	// Ports the kernel hands out are free; the range is made around two of
	// them, and a third is kept outside it.
	free, busy := testutil.FreePort(t), testutil.FreePort(t)
	r := api.PortRange{Min: int32(min(free, busy)), Max: int32(max(free, busy))}
	outside := testutil.FreePort(t)
	for r.Contains(int32(outside)) {
		outside = testutil.FreePort(t)
	}
	// Another program of the node listens on busy.
	other, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("other program\n"))
			c.Close()
		}
	}()

	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t), PublishAddress: "127.0.0.1", NodeName: "n1", PortRange: r, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rules := &fakeRules{}
	p.rules = rules
	events := make(chan *api.Event, 10)
	p.record = func(ev *api.Event) { events <- ev }
	p.apply(loopbackNodes, []*api.App{
		testApp("default", "ok", "", 80, int32(free)),
		testApp("default", "taker", "", 80, int32(busy)),
		testApp("default", "ssh", "", 22, int32(outside)),
	}, nil)
	startProxy(t, p)
	waitDial(t, "127.0.0.1:"+strconv.Itoa(free))

	// Both refusals are said once each, naming the port and why.
	want := map[string]string{
		"taker": fmt.Sprintf("published port %d of App default/taker not opened on node n1: the port is in use on this node", busy),
		"ssh":   fmt.Sprintf("published port %d of App default/ssh not opened on node n1: it is outside this node's publish range %s (set by its owner with --port-range)", outside, r),
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-events:
			found := false
			for app, msg := range want {
				if strings.HasPrefix(ev.Message, msg) {
					found = true
					delete(want, app)
				}
			}
			if !found || ev.Type != "Warning" || ev.Object != "Node/n1" {
				t.Errorf("unexpected event %s %s on %s: %q", ev.Type, ev.Reason, ev.Object, ev.Message)
			}
		case <-deadline:
			t.Fatalf("no event for %v after 10s", want)
		}
	}
	if got := rules.published(); !slices.Equal(got, []int32{int32(free)}) {
		t.Errorf("published ports in the nat rules: %v, want only %d (%d is taken, %d outside %s)", got, free, busy, outside, r)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(outside), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d, outside the range %s, accepts connections", outside, r)
	}
	// The other program still has its port.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(busy), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	if n, _ := c.Read(b); string(b[:n]) != "other program\n" {
		t.Errorf("port %d answered %q, want the other program's answer", busy, b[:n])
	}

	// Once the other program is gone, the port is the App's.
	other.Close()
	deadline = time.After(20 * time.Second)
	for !slices.Contains(rules.published(), int32(busy)) {
		select {
		case <-deadline:
			t.Fatalf("port %d freed, yet not published after 20s: rules %v", busy, rules.published())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestEndpointsOnlyInsideTheirNodesSubnet: an instance's address is an
// endpoint only inside the subnet of the node that runs it, so a node
// cannot point the cluster's proxies at an address of its choosing.
func TestEndpointsOnlyInsideTheirNodesSubnet(t *testing.T) {
	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	inst := func(name, node, ip string) *api.Instance {
		in := testInstance("default", "web", name, ip+":8080")
		in.Spec.Node = node
		return in
	}
	nodes := []*api.Node{testNode("n1", "10.244.1.0/24"), testNode("n2", "10.244.2.0/24"), testNode("n3", "")}
	p.apply(nodes, []*api.App{testApp("default", "web", "10.96.0.10", 8080, 0)}, []*api.Instance{
		inst("web-1", "n1", "10.244.1.5"),
		inst("web-2", "n2", "10.244.2.7"),
		inst("forged", "n1", "10.244.2.9"), // another node's subnet
		inst("metadata", "n2", "169.254.169.254"),
		inst("nowhere", "gone", "10.244.1.6"), // a node the proxy does not know
		inst("nosubnet", "n3", "10.244.3.1"),
	})
	if got, want := p.Endpoints("default", "web"), []string{"10.244.1.5:8080", "10.244.2.7:8080"}; !slices.Equal(got, want) {
		t.Errorf("Endpoints = %v, want %v", got, want)
	}
	tbl := p.table.Load()
	for _, ip := range []string{"10.244.2.9", "169.254.169.254", "10.244.1.6"} {
		if ns, ok := tbl.nsOfIP[netip.MustParseAddr(ip)]; ok {
			t.Errorf("DNS counts %s as an instance of namespace %q", ip, ns)
		}
	}

	// A node's subnet that changes takes its instances' addresses along.
	nodes[1] = testNode("n2", "169.254.169.0/24")
	p.update([]api.WatchEvent{{Type: api.WatchModified, Object: nodes[1]}})
	if got, want := p.Endpoints("default", "web"), []string{"10.244.1.5:8080", "169.254.169.254:8080"}; !slices.Equal(got, want) {
		t.Errorf("after n2's subnet changed: Endpoints = %v, want %v", got, want)
	}
	p.update([]api.WatchEvent{{Type: api.WatchDeleted, Object: nodes[1]}})
	if got, want := p.Endpoints("default", "web"), []string{"10.244.1.5:8080"}; !slices.Equal(got, want) {
		t.Errorf("after n2 left: Endpoints = %v, want %v", got, want)
	}
}
