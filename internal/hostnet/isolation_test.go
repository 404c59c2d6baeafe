package hostnet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// isoConfig: namespaces "a" and "b" isolated, "c" not; containers on two
// nodes (10.244.1.0/24 and 10.244.2.0/24).
var isoConfig = IsolationConfig{
	Bridge:  "shoal0",
	Cluster: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
	Nodes:   []netip.Addr{addr("10.244.1.1"), addr("10.244.2.1")},
	Isolated: map[string][]netip.Addr{
		"a": {addr("10.244.1.2"), addr("10.244.2.2")},
		"b": {addr("10.244.1.3")},
	},
}

const (
	a1, a2 = "10.244.1.2", "10.244.2.2" // namespace a, on two nodes
	b1     = "10.244.1.3"               // namespace b
	c1     = "10.244.1.4"               // namespace c (not isolated)
	c2     = "10.244.2.4"
)

// TestIsolationPlan: what the rules decide for a forwarded packet, by
// source and destination namespace.
func TestIsolationPlan(t *testing.T) {
	none := isoConfig
	none.Isolated = nil
	for _, tc := range []struct {
		name  string
		cfg   IsolationConfig
		pkt   Packet
		allow bool
	}{
		{"a to a, same node", isoConfig, flow(a1, a2), true},
		{"a to a, from the other node", isoConfig, Packet{Src: addr(a2), Dst: addr(a1), In: "wg0"}, true},
		{"a to b", isoConfig, flow(a1, b1), false},
		{"b to a", isoConfig, flow(b1, a1), false},
		{"a to c", isoConfig, flow(a1, c1), false},
		{"c to a", isoConfig, flow(c1, a2), false},
		{"c to a, from another node", isoConfig, Packet{Src: addr(c2), Dst: addr(a1), In: "wg0"}, false},
		{"c to c", isoConfig, flow(c1, c2), true},
		{"a to the internet", isoConfig, flow(a1, "1.1.1.1"), true},
		{"a to a LAN address (the egress rules decide)", isoConfig, flow(a1, "192.168.1.5"), true},
		{"the internet to a (a published port)", isoConfig, Packet{Src: addr("203.0.113.9"), Dst: addr(a1), In: "eth0"}, true},
		{"a LAN client to a (a published port)", isoConfig, Packet{Src: addr("192.168.1.50"), Dst: addr(a1), In: "eth0"}, true},
		{"another node to a (its proxy, a masqueraded published port)", isoConfig, Packet{Src: addr("10.244.2.1"), Dst: addr(a1), In: "wg0"}, true},
		{"a node address forged on the bridge", isoConfig, Packet{Src: addr("10.244.2.1"), Dst: addr(a1), In: "shoal0"}, false},
		{"a to a container of a node not yet known", isoConfig, flow(a1, "10.244.9.9"), false},
		{"a to another node's own address", isoConfig, flow(a1, "10.244.2.1"), false},
		{"a reply from b", isoConfig, Packet{Src: addr(b1), Dst: addr(a1), State: Reply}, true},
		{"a reply to c", isoConfig, Packet{Src: addr(a1), Dst: addr(c1), State: Reply}, true},
		{"nothing isolated: a to b", none, flow(a1, b1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanIsolation(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allows(tc.pkt); got != tc.allow {
				t.Errorf("Allows(%+v) = %v, want %v; rules:\n%s", tc.pkt, got, tc.allow, strings.Join(p.Lines(), "\n"))
			}
		})
	}
}

// TestIsolationRules: the plan as iptables -S prints it.
func TestIsolationRules(t *testing.T) {
	p, err := PlanIsolation(IsolationConfig{
		Bridge:   "shoal0",
		Cluster:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		Nodes:    []netip.Addr{addr("10.244.2.1")},
		Isolated: map[string][]netip.Addr{"a": {addr(a2), addr(a1), addr(a1)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, d := memberChain("shoal0", "a", "S"), memberChain("shoal0", "a", "D")
	want := []string{
		"-N SHOAL-ISO-shoal0",
		"-A SHOAL-ISO-shoal0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
		"-A SHOAL-ISO-shoal0 -s 10.244.2.1/32 ! -i shoal0 -j RETURN",
		"-A SHOAL-ISO-shoal0 -s 10.244.1.2/32 -j " + s,
		"-A SHOAL-ISO-shoal0 -d 10.244.1.2/32 -j " + d,
		"-A SHOAL-ISO-shoal0 -s 10.244.2.2/32 -j " + s,
		"-A SHOAL-ISO-shoal0 -d 10.244.2.2/32 -j " + d,
		"-N " + s,
		"-A " + s + " -d 10.244.1.2/32 -j RETURN",
		"-A " + s + " -d 10.244.2.2/32 -j RETURN",
		"-A " + s + " -d 10.244.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
		"-N " + d,
		"-A " + d + " -s 10.244.1.2/32 -j RETURN",
		"-A " + d + " -s 10.244.2.2/32 -j RETURN",
		"-A " + d + " -s 10.244.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
	}
	if got := p.Lines(); !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range p.Chains {
		if len(c.Name) > 28 {
			t.Errorf("chain %s: longer than iptables allows", c.Name)
		}
	}
	if memberChain("shoal1", "a", "S") == s || memberChain("shoal0", "b", "S") == s {
		t.Error("namespace chains of another bridge or namespace share a name")
	}
}

func TestIsolationPlanRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  IsolationConfig
		want string
	}{
		{"no bridge", IsolationConfig{}, `bridge ""`},
		{"IPv6 cluster", IsolationConfig{Bridge: "shoal0", Cluster: []netip.Prefix{netip.MustParsePrefix("fd00::/64")}}, "cluster range fd00::/64"},
		{"isolation without a cluster range", IsolationConfig{Bridge: "shoal0", Isolated: map[string][]netip.Addr{"a": nil}}, "namespaces [a] ask for isolation, but no cluster range is known"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanIsolation(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PlanIsolation(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
			}
		})
	}
}

// flow is a new connection from a container on the bridge.
func flow(src, dst string) Packet {
	return Packet{Src: addr(src), Dst: addr(dst), In: "shoal0", Proto: "tcp", Port: 80}
}
