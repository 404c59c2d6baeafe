package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/testutil"
)

func TestPlannedRoutes(t *testing.T) {
	node := func(name, subnet, ip string) *api.Node {
		return &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: subnet}, Status: api.NodeStatus{InternalIP: ip}}
	}
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("192.168.50.1") }
	got, _ := plannedRoutes("a", []*api.Node{
		node("a", "10.244.0.0/24", "192.168.50.1"), // itself
		node("c", "10.244.2.0/24", "192.168.50.3"),
		node("b", "10.244.1.0/24", "192.168.50.2"),
		node("d", "", "192.168.50.4"),              // no subnet yet
		node("e", "10.244.4.0/24", ""),             // no address
		node("f", "10.244.5.0/24", "192.168.50.1"), // another agent on this machine
	}, netip.MustParsePrefix("10.244.0.0/16"), local)
	want := []route{
		{subnet: netip.MustParsePrefix("10.244.1.0/24"), via: netip.MustParseAddr("192.168.50.2")},
		{subnet: netip.MustParsePrefix("10.244.2.0/24"), via: netip.MustParseAddr("192.168.50.3")},
	}
	if len(got) != len(want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("routes %v, want %v", got, want)
		}
	}
}

func TestPlannedOverlay(t *testing.T) {
	keys := map[string]overlay.Key{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		k, _ := overlay.NewKey()
		keys[n] = k.Public()
	}
	node := func(name, subnet, ip, endpoint string, ready bool) *api.Node {
		n := &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: subnet},
			Status: api.NodeStatus{InternalIP: ip, Ready: ready, Overlay: &api.NodeOverlay{PublicKey: keys[name].String(), Endpoint: endpoint}}}
		return n
	}
	relay := func(n *api.Node) *api.Node { n.Spec.Relay = true; return n }
	p := netip.MustParsePrefix
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("192.168.50.1") }
	nodes := []*api.Node{
		node("a", "10.244.0.0/24", "192.168.50.1", "192.168.50.1:51820", true), // itself
		relay(node("c", "10.244.2.0/24", "192.168.50.3", "192.168.50.3:51820", true)),
		node("b", "10.244.1.0/24", "192.168.50.2", "192.168.50.2:51820", false),            // not ready: a peer, not a relay
		node("d", "10.244.3.0/24", "10.0.0.4", "", true),                                   // behind NAT
		{Metadata: api.ObjectMeta{Name: "e"}, Spec: api.NodeSpec{Subnet: "10.244.4.0/24"}}, // no overlay (host-gw)
		node("f", "10.244.5.0/24", "192.168.50.1", "192.168.50.1:51821", true),             // another agent on this machine
	}
	src := netip.MustParseAddr("10.244.0.1")
	ep := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	for _, tc := range []struct {
		name      string
		reachable bool
		peers     []overlay.Peer
		routes    []string
	}{
		{"reachable node", true, []overlay.Peer{
			{PublicKey: keys["b"], Endpoint: ep("192.168.50.2:51820"), AllowedIPs: []netip.Prefix{p("10.244.1.0/24")}, Keepalive: overlay.Keepalive},
			{PublicKey: keys["c"], Endpoint: ep("192.168.50.3:51820"), AllowedIPs: []netip.Prefix{p("10.244.2.0/24")}, Keepalive: overlay.Keepalive},
			{PublicKey: keys["d"], AllowedIPs: []netip.Prefix{p("10.244.3.0/24")}}, // it dials us
		}, []string{"10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"}},
		{"behind NAT: d through the relay c", false, []overlay.Peer{
			{PublicKey: keys["b"], Endpoint: ep("192.168.50.2:51820"), AllowedIPs: []netip.Prefix{p("10.244.1.0/24")}, Keepalive: overlay.Keepalive},
			{PublicKey: keys["c"], Endpoint: ep("192.168.50.3:51820"), AllowedIPs: []netip.Prefix{p("10.244.2.0/24"), p("10.244.3.0/24")}, Keepalive: overlay.Keepalive},
		}, []string{"10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers, routes, _ := plannedOverlay("a", nodes, p("10.244.0.0/16"), local, tc.reachable, "wg0", src)
			slices.SortFunc(tc.peers, func(a, b overlay.Peer) int { return strings.Compare(a.PublicKey.String(), b.PublicKey.String()) })
			if fmt.Sprint(peers) != fmt.Sprint(tc.peers) {
				t.Errorf("peers\n%v\nwant\n%v", peers, tc.peers)
			}
			var got []string
			for _, r := range routes {
				if r.dev != "wg0" || r.src != src || r.via.IsValid() {
					t.Errorf("route %+v: want dev wg0 src %v", r, src)
				}
				got = append(got, r.subnet.String())
			}
			if !slices.Equal(got, tc.routes) {
				t.Errorf("routes %v, want %v", got, tc.routes)
			}
		})
	}
}

// TestSyncRoutes installs and removes real routes, in a network namespace
// of the test's own.
func TestSyncRoutes(t *testing.T) {
	testutil.RequireRoot(t, "installs routes in a network namespace")
	ns := fmt.Sprintf("shoal-rt-%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	run("-n", ns, "addr", "add", "192.168.77.1/24", "dev", "d0")
	run("-n", ns, "link", "set", "d0", "up")
	run("-n", ns, "link", "set", "d1", "up")
	old := ipCommand
	ipCommand = []string{"ip", "-n", ns}
	t.Cleanup(func() { ipCommand = old })

	a := New(Config{NodeName: "a", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir()})
	installed := map[netip.Prefix]route{}
	ctx := context.Background()
	a.syncRoutes(ctx, installed, []route{{subnet: netip.MustParsePrefix("10.99.1.0/24"), via: netip.MustParseAddr("192.168.77.2")}})
	if got := run("-n", ns, "route", "show", "proto", routeProto); !strings.Contains(got, "10.99.1.0/24 via 192.168.77.2") {
		t.Fatalf("route not installed; routes with proto %s: %q", routeProto, got)
	}
	// The node moved to another address: the route follows.
	a.syncRoutes(ctx, installed, []route{{subnet: netip.MustParsePrefix("10.99.1.0/24"), via: netip.MustParseAddr("192.168.77.3")}})
	if got := run("-n", ns, "route", "show", "proto", routeProto); !strings.Contains(got, "via 192.168.77.3") || strings.Contains(got, "via 192.168.77.2") {
		t.Fatalf("route not moved: %q", got)
	}
	// The overlay: into the device, with the node's own source address.
	run("-n", ns, "addr", "add", "10.99.0.1/32", "dev", "d1")
	a.syncRoutes(ctx, installed, []route{{subnet: netip.MustParsePrefix("10.99.1.0/24"), dev: "d1", src: netip.MustParseAddr("10.99.0.1")}})
	if got := run("-n", ns, "route", "show", "proto", routeProto); !strings.Contains(got, "10.99.1.0/24 dev d1") || !strings.Contains(got, "src 10.99.0.1") {
		t.Fatalf("overlay route not installed: %q", got)
	}
	// The node left: the route goes.
	a.syncRoutes(ctx, installed, nil)
	if got := run("-n", ns, "route", "show", "proto", routeProto); strings.TrimSpace(got) != "" {
		t.Fatalf("route left behind: %q", got)
	}
}

// TestRouteViewPlansOnlyWhatRoutingReads: a heartbeat (or any change
// routing does not read) plans nothing again; a new node, a moved subnet,
// a rotated key, a relay mark, readiness and a removal do.
func TestRouteViewPlansOnlyWhatRoutingReads(t *testing.T) {
	node := func(name string, edit func(*api.Node)) *api.Node {
		n := &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: "10.244.1.0/24"},
			Status: api.NodeStatus{Ready: true, InternalIP: "192.0.2.1", Overlay: &api.NodeOverlay{PublicKey: "k1", Endpoint: "192.0.2.1:51820"}}}
		if edit != nil {
			edit(n)
		}
		return n
	}
	v := &routeView{nodes: map[string]*api.Node{}}
	v.replace([]api.Object{node("n1", nil)})
	for _, tc := range []struct {
		name string
		ev   api.WatchEvent
		want bool
	}{
		{"a heartbeat", api.WatchEvent{Type: api.WatchModified, Object: node("n1", func(n *api.Node) {
			n.Status.LastHeartbeat = time.Now()
			n.Status.Usage = []api.InstanceUsage{{Instance: "a-1", MilliCPU: 5}}
			n.Status.Allocated.MilliCPU = 100
		})}, false},
		{"a new node", api.WatchEvent{Type: api.WatchAdded, Object: node("n2", nil)}, true},
		{"a moved subnet", api.WatchEvent{Type: api.WatchModified, Object: node("n2", func(n *api.Node) { n.Spec.Subnet = "10.244.2.0/24" })}, true},
		{"the same again", api.WatchEvent{Type: api.WatchModified, Object: node("n2", func(n *api.Node) { n.Spec.Subnet = "10.244.2.0/24" })}, false},
		{"a rotated key", api.WatchEvent{Type: api.WatchModified, Object: node("n1", func(n *api.Node) { n.Status.Overlay.PublicKey = "k2" })}, true},
		{"a new endpoint", api.WatchEvent{Type: api.WatchModified, Object: node("n1", func(n *api.Node) {
			n.Status.Overlay.PublicKey = "k2"
			n.Status.Overlay.Endpoint = "192.0.2.9:51820"
		})}, true},
		{"marked a relay", api.WatchEvent{Type: api.WatchModified, Object: node("n1", func(n *api.Node) {
			n.Status.Overlay = &api.NodeOverlay{PublicKey: "k2", Endpoint: "192.0.2.9:51820"}
			n.Spec.Relay = true
		})}, true},
		{"not ready", api.WatchEvent{Type: api.WatchModified, Object: node("n2", func(n *api.Node) {
			n.Spec.Subnet = "10.244.2.0/24"
			n.Status.Ready = false
		})}, true},
		{"removed", api.WatchEvent{Type: api.WatchDeleted, Object: node("n2", nil)}, true},
		{"removed again", api.WatchEvent{Type: api.WatchDeleted, Object: node("n2", nil)}, false},
	} {
		if got := v.update([]api.WatchEvent{tc.ev}); got != tc.want {
			t.Errorf("%s: plans again %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := v.list(); len(got) != 1 || got[0].Metadata.Name != "n1" || !got[0].Spec.Relay {
		t.Errorf("view after the events: %+v", got)
	}
	// A list replaces the view: nodes it lacks are gone.
	v.replace([]api.Object{node("n3", nil)})
	if got := v.list(); len(got) != 1 || got[0].Metadata.Name != "n3" {
		t.Errorf("view after a list: %+v", got)
	}
}
