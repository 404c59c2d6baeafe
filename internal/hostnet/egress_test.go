package hostnet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var testConfig = EgressConfig{
	Bridge:    "shoal0",
	Subnet:    netip.MustParsePrefix("10.244.1.0/24"),
	Cluster:   netip.MustParsePrefix("10.244.0.0/16"),
	NodePorts: PortRange{30000, 32767},
}

// TestEgressPlan: what a container may reach, past the node and of the
// node itself, by destination.
func TestEgressPlan(t *testing.T) {
	noCluster := testConfig
	noCluster.Cluster = netip.Prefix{}
	noPorts := testConfig
	noPorts.NodePorts = PortRange{}
	const gw, lan = "10.244.1.1", "192.168.1.2" // the bridge's address, the node's LAN address
	for _, tc := range []struct {
		name  string
		cfg   EgressConfig
		pkt   Packet
		allow bool
	}{
		{"a container of this node", testConfig, out("10.244.1.7", "tcp", 8080), true},
		{"a container of another node", testConfig, out("10.244.2.5", "tcp", 8080), true},
		{"the internet", testConfig, out("1.1.1.1", "tcp", 443), true},
		{"a resolver on the internet", testConfig, out("8.8.8.8", "udp", 53), true},
		{"just outside 172.16/12", testConfig, out("172.32.0.1", "tcp", 80), true},
		{"cloud metadata", testConfig, out("169.254.169.254", "tcp", 80), false},
		{"link-local", testConfig, out("169.254.1.1", "udp", 123), false},
		{"the node's LAN", testConfig, out("192.168.1.10", "tcp", 22), false},
		{"10/8 outside the cluster", testConfig, out("10.0.0.5", "tcp", 5432), false},
		{"172.16/12", testConfig, out("172.20.3.4", "tcp", 6379), false},
		{"CGNAT", testConfig, out("100.64.0.1", "tcp", 80), false},
		{"a service address no rule translated", testConfig, out("10.96.0.10", "tcp", 81), false},
		{"a reply to a LAN client of a published port", testConfig, Packet{Dst: addr("192.168.1.50"), Proto: "tcp", Port: 51000, State: Reply}, true},
		{"without a cluster range: another node's container", noCluster, out("10.244.2.5", "tcp", 8080), false},
		{"without a cluster range: this node's container", noCluster, out("10.244.1.7", "tcp", 8080), true},

		{"DNS on the bridge address, udp", testConfig, toNode(gw, "udp", 53), true},
		{"DNS on the bridge address, tcp", testConfig, toNode(gw, "tcp", 53), true},
		{"DNS on the node's LAN address", testConfig, toNode(lan, "udp", 53), false},
		{"ssh on the bridge address", testConfig, toNode(gw, "tcp", 22), false},
		{"ssh on the node's LAN address", testConfig, toNode(lan, "tcp", 22), false},
		{"the API on the node", testConfig, toNode(lan, "tcp", 7070), false},
		{"a service led to the proxy's listener", testConfig, Packet{ToNode: true, Dst: addr(gw), Proto: "tcp", Port: 41234, State: DNATed}, true},
		{"another node address DNATed to", testConfig, Packet{ToNode: true, Dst: addr(lan), Proto: "tcp", Port: 8080, State: DNATed}, false},
		{"a published port the proxy answers", testConfig, toNode(lan, "tcp", 30080), true},
		{"the publish range, udp", testConfig, toNode(lan, "udp", 30080), false},
		{"below the publish range", testConfig, toNode(lan, "tcp", 29999), false},
		{"without a publish range", noPorts, toNode(lan, "tcp", 30080), false},
		{"a reply to the node's probe", testConfig, Packet{ToNode: true, Dst: addr(gw), Proto: "tcp", Port: 40000, State: Reply}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := EgressPlan(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allows(tc.pkt); got != tc.allow {
				t.Errorf("Allows(%+v) = %v, want %v; rules:\n%s", tc.pkt, got, tc.allow, strings.Join(p.Lines(), "\n"))
			}
		})
	}
}

// TestEgressRules: the plan as iptables -S prints it (the netns test
// checks the kernel's copy against the same lines).
func TestEgressRules(t *testing.T) {
	p, err := EgressPlan(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-N SHOAL-EGRESS-shoal0",
		"-A SHOAL-EGRESS-shoal0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
		"-A SHOAL-EGRESS-shoal0 -d 10.244.1.0/24 -j RETURN",
		"-A SHOAL-EGRESS-shoal0 -d 10.244.0.0/16 -j RETURN",
		"-A SHOAL-EGRESS-shoal0 -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited",
		"-A SHOAL-EGRESS-shoal0 -d 172.16.0.0/12 -j REJECT --reject-with icmp-admin-prohibited",
		"-A SHOAL-EGRESS-shoal0 -d 192.168.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
		"-A SHOAL-EGRESS-shoal0 -d 100.64.0.0/10 -j REJECT --reject-with icmp-admin-prohibited",
		"-A SHOAL-EGRESS-shoal0 -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
		"-N SHOAL-HOST-shoal0",
		"-A SHOAL-HOST-shoal0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
		"-A SHOAL-HOST-shoal0 -d 10.244.1.1/32 -m conntrack --ctstate DNAT -j RETURN",
		"-A SHOAL-HOST-shoal0 -d 10.244.1.1/32 -p udp -m udp --dport 53 -j RETURN",
		"-A SHOAL-HOST-shoal0 -d 10.244.1.1/32 -p tcp -m tcp --dport 53 -j RETURN",
		"-A SHOAL-HOST-shoal0 -p tcp -m tcp --dport 30000:32767 -j RETURN",
		"-A SHOAL-HOST-shoal0 -j REJECT --reject-with icmp-admin-prohibited",
	}
	if got := p.Lines(); !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEgressPlanRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  EgressConfig
		want string
	}{
		{"no bridge", EgressConfig{Subnet: testConfig.Subnet}, `bridge ""`},
		{"long bridge", EgressConfig{Bridge: "a-bridge-name-too-long", Subnet: testConfig.Subnet}, "1 to 15 bytes"},
		{"no subnet", EgressConfig{Bridge: "shoal0"}, "subnet invalid Prefix: want an IPv4 CIDR"},
		{"IPv6 cluster", EgressConfig{Bridge: "shoal0", Subnet: testConfig.Subnet, Cluster: netip.MustParsePrefix("fd00::/64")}, "cluster range fd00::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EgressPlan(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("EgressPlan(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// out is a container's new connection past the node.
func out(dst, proto string, port uint16) Packet {
	return Packet{Dst: addr(dst), Proto: proto, Port: port}
}

// toNode is a container's new connection to one of the node's addresses.
func toNode(dst, proto string, port uint16) Packet {
	return Packet{ToNode: true, Dst: addr(dst), Proto: proto, Port: port}
}
