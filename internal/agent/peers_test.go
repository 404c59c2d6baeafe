package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/overlay"
)

type testNodes struct {
	keys map[string]overlay.Key
	t0   time.Time
	n    int
}

func newTestNodes() *testNodes {
	return &testNodes{keys: map[string]overlay.Key{}, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// key is name's WireGuard public key, made at first use.
func (tn *testNodes) key(name string) overlay.Key {
	if _, ok := tn.keys[name]; !ok {
		k, _ := overlay.NewKey()
		tn.keys[name] = k.Public()
	}
	return tn.keys[name]
}

// node is a ready node publishing keyOf's key; each one made joined after
// the one before. endpoint "" is a node behind NAT.
func (tn *testNodes) node(name, subnet, endpoint, keyOf string) *api.Node {
	tn.n++
	return &api.Node{Metadata: api.ObjectMeta{Name: name, CreatedAt: tn.t0.Add(time.Duration(tn.n) * time.Minute)},
		Spec: api.NodeSpec{Subnet: subnet},
		Status: api.NodeStatus{Ready: true, InternalIP: strings.Split(endpoint, ":")[0],
			Overlay: &api.NodeOverlay{PublicKey: tn.key(keyOf).String(), Endpoint: endpoint}}}
}

func nowhere(netip.Addr) bool { return false }

// allowed is, per peer key, its allowed IPs.
func allowed(peers []overlay.Peer) map[overlay.Key]string {
	out := map[overlay.Key]string{}
	for _, p := range peers {
		out[p.PublicKey] = fmt.Sprint(p.AllowedIPs)
	}
	return out
}

func routed(rs []route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.subnet.String())
	}
	return out
}

// TestPeersScreened: a peer whose subnet is outside the cluster range or
// overlaps another node's, or that publishes another node's key, gets no
// route and no allowed IPs; the node that had it first keeps its own.
func TestPeersScreened(t *testing.T) {
	tn := newTestNodes()
	nodes := []*api.Node{
		tn.node("a", "10.244.0.0/24", "192.168.50.1:51820", "a"), // itself
		tn.node("b", "10.244.1.0/24", "192.168.50.2:51820", "b"),
		tn.node("google", "8.8.8.0/30", "192.168.50.3:51820", "google"),
		tn.node("half", "10.244.1.128/25", "192.168.50.4:51820", "half"),
		tn.node("wide", "10.244.0.0/16", "192.168.50.5:51820", "wide"),
		tn.node("copycat", "10.244.6.0/24", "192.168.50.6:51820", "b"),
		tn.node("mirror", "10.244.7.0/24", "192.168.50.7:51820", "a"),
		tn.node("c", "10.244.2.0/24", "192.168.50.8:51820", "c"),
	}
	// Older than a, but a's own subnet is never another's.
	under := tn.node("under", "10.244.0.128/25", "192.168.50.9:51820", "under")
	under.Metadata.CreatedAt = tn.t0
	nodes = append(nodes, under)
	cluster := netip.MustParsePrefix("10.244.0.0/16")

	peers, routes, notes := plannedOverlay("a", nodes, cluster, nowhere, true, "wg0", netip.MustParseAddr("10.244.0.1"))
	got := allowed(peers)
	want := map[overlay.Key]string{tn.key("b"): "[10.244.1.0/24]", tn.key("c"): "[10.244.2.0/24]"}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(peers) != 2 {
		t.Errorf("peers' allowed IPs %v, want only b's and c's own: %v", got, want)
	}
	if r := routed(routes); !slices.Equal(r, []string{"10.244.1.0/24", "10.244.2.0/24"}) {
		t.Errorf("overlay routes %v, want b's and c's only", r)
	}
	for _, w := range []string{
		"node google: subnet 8.8.8.0/30 is outside the cluster range 10.244.0.0/16",
		"node half: subnet 10.244.1.128/25 overlaps node b's 10.244.1.0/24",
		"node wide: subnet 10.244.0.0/16 overlaps node a's 10.244.0.0/24",
		"node under: subnet 10.244.0.128/25 overlaps node a's 10.244.0.0/24",
		"node copycat: publishes node b's WireGuard key",
		"node mirror: publishes node a's WireGuard key",
	} {
		if !slices.Contains(notes, w) {
			t.Errorf("notes %q lack %q", notes, w)
		}
	}

	// host-gw routes by subnet alone: the same nodes are left out.
	rs, _ := plannedRoutes("a", nodes, cluster, nowhere)
	if r := routed(rs); !slices.Equal(r, []string{"10.244.1.0/24", "10.244.2.0/24", "10.244.6.0/24", "10.244.7.0/24"}) {
		t.Errorf("host-gw routes %v, want b's, c's, copycat's and mirror's (their subnets are theirs)", r)
	}

	// Without a cluster range, overlaps are still refused.
	peers, _, _ = plannedOverlay("a", nodes, netip.Prefix{}, nowhere, true, "wg0", netip.MustParseAddr("10.244.0.1"))
	if got := allowed(peers); got[tn.key("google")] != "[8.8.8.0/30]" || got[tn.key("half")] != "" || got[tn.key("b")] != "[10.244.1.0/24]" {
		t.Errorf("without a cluster range: allowed IPs %v", got)
	}
}

// TestRelayIsMarked: nodes behind NAT reach each other only through a
// node a cluster-admin marked as relay, never through one that merely
// sorts first.
func TestRelayIsMarked(t *testing.T) {
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	for _, tc := range []struct {
		name     string
		marked   []string // nodes with spec.relay
		notReady []string
		relay    string // whose allowed IPs carry n2's subnet; "" none
	}{
		{"nothing marked", nil, nil, ""},
		{"0relay is not marked", []string{"pub"}, nil, "pub"},
		{"0relay is marked", []string{"0relay", "pub"}, nil, "0relay"},
		{"the marked one is not ready", []string{"pub"}, []string{"pub"}, ""},
		{"a node behind NAT cannot relay", []string{"n2"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNodes()
			nodes := []*api.Node{
				tn.node("n1", "10.244.1.0/24", "", "n1"), // itself, behind NAT
				tn.node("n2", "10.244.2.0/24", "", "n2"), // behind NAT too
				tn.node("0relay", "10.244.3.0/24", "192.168.50.3:51820", "0relay"),
				tn.node("pub", "10.244.4.0/24", "192.168.50.4:51820", "pub"),
			}
			for _, n := range nodes {
				n.Spec.Relay = slices.Contains(tc.marked, n.Metadata.Name)
				n.Status.Ready = !slices.Contains(tc.notReady, n.Metadata.Name)
			}
			peers, routes, notes := plannedOverlay("n1", nodes, cluster, nowhere, false, "wg0", netip.MustParseAddr("10.244.1.1"))
			got := allowed(peers)
			for _, via := range []string{"0relay", "pub"} {
				carries := strings.Contains(got[tn.key(via)], "10.244.2.0/24")
				if carries != (via == tc.relay) {
					t.Errorf("%s's allowed IPs %s: carries n2's subnet %v, want %v", via, got[tn.key(via)], carries, via == tc.relay)
				}
			}
			if r := routed(routes); slices.Contains(r, "10.244.2.0/24") != (tc.relay != "") {
				t.Errorf("routes %v: a route to n2 only through a relay (%q)", r, tc.relay)
			}
			why := "node n2: behind NAT like this node, and no ready node with an endpoint is marked as a relay"
			if hasNote := slices.ContainsFunc(notes, func(s string) bool { return strings.HasPrefix(s, why) }); hasNote != (tc.relay == "") {
				t.Errorf("notes %q: want %q only without a relay", notes, why)
			}
		})
	}
}
