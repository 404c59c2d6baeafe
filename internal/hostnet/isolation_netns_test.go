package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testutil"
)

// TestIsolationInNetworkNamespaces applies the isolation plan to a node
// of network namespaces the test makes (unnamed, gone with their
// processes):
//
//	x1 (10.244.1.2, namespace a) ─┐
//	x2 (10.244.1.3, namespace a) ─┼─ br0 (10.244.1.1) node lan0 (192.168.77.1) ── lan1 (192.168.77.2) "other node"
//	y  (10.244.1.4, namespace c) ─┘                                                 + 10.244.2.1 (its own address)
//	                                                                                + 10.244.2.2 (a container of a)
//	                                                                                + 10.244.2.5 (a container of c)
//
// Namespace a is isolated: its containers reach each other (on the bridge,
// and across nodes), y and the other node's c are refused both ways,
// directly and through a service address; a published port from outside
// the cluster and the other node's own address still reach x1. Lifting
// the isolation, and Reset, let everything through again.
func TestIsolationInNetworkNamespaces(t *testing.T) {
	testutil.RequireRoot(t, "makes network namespaces and writes their iptables rules")
	for _, tool := range []string{"unshare", "nsenter", "ip", "iptables", "iptables-restore", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	node, x1, x2, y, lan := newNetns(t), newNetns(t), newNetns(t), newNetns(t), newNetns(t)
	node.run(t, "ip link add br0 type bridge")
	node.run(t, "ip addr add 10.244.1.1/24 dev br0")
	node.run(t, "ip link set br0 up")
	// Packets between two ports of the bridge go through FORWARD only
	// with br_netfilter (per network namespace on current kernels).
	if out, err := exec.Command("nsenter", "-t", fmt.Sprint(node.pid), "-n", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1").CombinedOutput(); err != nil {
		t.Skipf("needs br_netfilter: %v: %s", err, out)
	}
	for i, c := range []*netns{x1, x2, y} {
		node.run(t, fmt.Sprintf("ip link add v%d type veth peer name eth0 netns %d", i, c.pid))
		node.run(t, fmt.Sprintf("ip link set v%d master br0 up", i))
		c.run(t, fmt.Sprintf("ip addr add 10.244.1.%d/24 dev eth0", i+2))
		c.run(t, "ip link set eth0 up")
		c.run(t, "ip route add default via 10.244.1.1")
		c.listen(t, "tcp", netip.AddrPortFrom(addr(fmt.Sprintf("10.244.1.%d", i+2)), 8080))
	}
	node.run(t, fmt.Sprintf("ip link add lan0 type veth peer name lan1 netns %d", lan.pid))
	node.run(t, "ip addr add 192.168.77.1/24 dev lan0")
	node.run(t, "ip link set lan0 up")
	node.run(t, "ip route add 10.244.2.0/24 via 192.168.77.2")
	node.run(t, "sysctl -qw net.ipv4.ip_forward=1")
	lan.run(t, "ip addr add 192.168.77.2/24 dev lan1")
	for _, a := range []string{"10.244.2.1/32", "10.244.2.2/32", "10.244.2.5/32"} {
		lan.run(t, "ip addr add "+a+" dev lo")
	}
	lan.run(t, "ip link set lan1 up")
	lan.run(t, "ip route add 10.244.1.0/24 via 192.168.77.1")
	lan.listen(t, "tcp", netip.MustParseAddrPort("10.244.2.2:8080"))
	lan.listen(t, "tcp", netip.MustParseAddrPort("10.244.2.5:8080"))
	// A published port of the node led to x1, and two service addresses
	// (of x1's App and of y's) as the service proxy writes them.
	node.run(t, "iptables -w -t nat -A PREROUTING -p tcp --dport 30090 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.244.1.2:8080")
	node.run(t, "iptables -w -t nat -A PREROUTING -i br0 -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.244.1.4:8080")
	node.run(t, "iptables -w -t nat -A PREROUTING -i br0 -d 10.96.0.11/32 -p tcp --dport 80 -j DNAT --to-destination 10.244.1.2:8080")

	type path struct {
		name     string
		from     *netns
		src, dst string // src: "" lets the kernel choose
		isolated bool   // refused while a is isolated
	}
	paths := []path{
		{"x1 to x2 (a, same node)", x1, "", "10.244.1.3:8080", false},
		{"x2 to x1", x2, "", "10.244.1.2:8080", false},
		{"x1 to a of the other node", x1, "", "10.244.2.2:8080", false},
		{"a of the other node to x1", lan, "10.244.2.2", "10.244.1.2:8080", false},
		{"x1 to y (c)", x1, "", "10.244.1.4:8080", true},
		{"y to x1", y, "", "10.244.1.2:8080", true},
		{"x1 to c of the other node", x1, "", "10.244.2.5:8080", true},
		{"c of the other node to x1", lan, "10.244.2.5", "10.244.1.2:8080", true},
		{"x1 to y's service address", x1, "", "10.96.0.10:80", true},
		{"y to x1's service address", y, "", "10.96.0.11:80", true},
		{"y to c of the other node", y, "", "10.244.2.5:8080", false},
		{"a client outside the cluster to x1's published port", lan, "192.168.77.2", "192.168.77.1:30090", false},
		{"the other node itself to x1", lan, "10.244.2.1", "10.244.1.2:8080", false},
	}
	check := func(phase string, isolated bool) {
		t.Helper()
		for _, p := range paths {
			err := p.from.dialFrom(p.src, netip.MustParseAddrPort(p.dst))
			switch refused := isolated && p.isolated; {
			case !refused && err != nil:
				t.Errorf("%s: %s (%s): %v", phase, p.name, p.dst, err)
			case refused && err == nil:
				t.Errorf("%s: %s (%s) got through", phase, p.name, p.dst)
			case refused && !errors.Is(err, syscall.EHOSTUNREACH):
				t.Errorf("%s: %s: %v, want it refused at once (host unreachable: admin-prohibited)", phase, p.name, err)
			}
		}
	}
	check("without rules", false)

	cfg := IsolationConfig{
		Bridge:   "br0",
		Cluster:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		Nodes:    []netip.Addr{addr("10.244.1.1"), addr("10.244.2.1")},
		Isolated: map[string][]netip.Addr{"a": {addr("10.244.1.2"), addr("10.244.1.3"), addr("10.244.2.2")}},
	}
	plan, err := PlanIsolation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tables := Tables{Prefix: node.prefix()}
	ctx := context.Background()
	for range 2 { // the second Apply changes nothing
		if err := tables.ApplyIsolation(ctx, plan); err != nil {
			t.Fatal(err)
		}
	}
	rules := node.output(t, "iptables -w -S")
	for _, l := range append(plan.Lines(), "-A "+joinArgs(isolationJump("br0"))) {
		if n := strings.Count(rules, l+"\n"); n != 1 {
			t.Errorf("%d copies of %q in the node's rules:\n%s", n, l, rules)
		}
	}
	check("a isolated", true)

	// The namespace lifts its isolation: its chains go in the same write.
	open, err := PlanIsolation(IsolationConfig{Bridge: "br0", Cluster: cfg.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	if err := tables.ApplyIsolation(ctx, open); err != nil {
		t.Fatal(err)
	}
	if rules := node.output(t, "iptables -w -S"); strings.Count(rules, "SHOAL-ISO-") != 3 { // -N, its RELATED rule, the jump
		t.Errorf("rules after lifting the isolation:\n%s", rules)
	}
	check("a no longer isolated", false)

	if err := tables.ApplyIsolation(ctx, plan); err != nil {
		t.Fatal(err)
	}
	check("a isolated again", true)
	for range 2 { // safe to run again
		if err := tables.ResetIsolation(ctx, "br0"); err != nil {
			t.Fatal(err)
		}
	}
	if rules := node.output(t, "iptables -w -S"); strings.Contains(rules, "SHOAL-ISO") {
		t.Errorf("rules left after Reset:\n%s", rules)
	}
	check("after Reset", false)
}

// dialFrom is dial over TCP from the local address src ("": any).
func (n *netns) dialFrom(src string, a netip.AddrPort) error {
	return n.in(func() error {
		d := net.Dialer{Timeout: 3 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("tcp", a.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}
