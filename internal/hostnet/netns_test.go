package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/internal/testutil"
)

// TestEgressInNetworkNamespaces applies the plan to a node of network
// namespaces the test makes (none of them named, so nothing shows on the
// host, and all go with their processes):
//
//	container c1 (10.244.1.2) ─┐
//	container c2 (10.244.1.3) ─┴─ br0 (10.244.1.1) node lan0 (192.168.77.1) ── lan1 (192.168.77.2) "lan"
//	                                                                             + 169.254.169.254, 203.0.113.5
//	                                                                             + 10.244.2.5 (another node's container)
//
// and dials from c1: before the rules everything answers, with them what
// the plan's model says and nothing else, and after Reset everything again.
func TestEgressInNetworkNamespaces(t *testing.T) {
	testutil.RequireRoot(t, "makes network namespaces and writes their iptables rules")
	for _, tool := range []string{"unshare", "nsenter", "ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	node, c1, c2, lan := newNetns(t), newNetns(t), newNetns(t), newNetns(t)
	node.run(t, "ip link add br0 type bridge")
	node.run(t, "ip addr add 10.244.1.1/24 dev br0")
	node.run(t, "ip link set br0 up")
	for i, c := range []*netns{c1, c2} {
		node.run(t, fmt.Sprintf("ip link add v%d type veth peer name eth0 netns %d", i, c.pid))
		node.run(t, fmt.Sprintf("ip link set v%d master br0 up", i))
		c.run(t, fmt.Sprintf("ip addr add 10.244.1.%d/24 dev eth0", i+2))
		c.run(t, "ip link set eth0 up")
		c.run(t, "ip route add default via 10.244.1.1")
	}
	node.run(t, fmt.Sprintf("ip link add lan0 type veth peer name lan1 netns %d", lan.pid))
	node.run(t, "ip addr add 192.168.77.1/24 dev lan0")
	node.run(t, "ip link set lan0 up")
	node.run(t, "ip route add default via 192.168.77.2")
	node.run(t, "sysctl -qw net.ipv4.ip_forward=1")
	lan.run(t, "ip addr add 192.168.77.2/24 dev lan1")
	for _, a := range []string{"169.254.169.254/32", "203.0.113.5/32", "10.244.2.5/32"} {
		lan.run(t, "ip addr add "+a+" dev lo")
	}
	lan.run(t, "ip link set lan1 up")
	lan.run(t, "ip route add 10.244.1.0/24 via 192.168.77.1")

	// A hostPort (or kernel-forwarded published port) of the node, led to
	// c2 as the portmap plugin does.
	node.run(t, "iptables -w -t nat -A PREROUTING -p tcp --dport 30090 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.244.1.3:8080")
	// A service address without a ready endpoint, led to the service
	// proxy's own listener on the bridge address, as the proxy does.
	node.run(t, "iptables -w -t nat -A PREROUTING -i br0 -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.244.1.1:41234")

	type target struct {
		name  string
		where *netns // listens at pkt.Dst:pkt.Port; nil: someone else does
		pkt   Packet // as the filter rules see it, after DNAT
		via   string // where c1 dials, if not pkt.Dst:pkt.Port
		allow bool
	}
	targets := []target{
		{"another container of the node", c2, out("10.244.1.3", "tcp", 8080), "", true},
		{"a container of another node", lan, out("10.244.2.5", "tcp", 8080), "", true},
		{"the internet", lan, out("203.0.113.5", "tcp", 80), "", true},
		{"cloud metadata", lan, out("169.254.169.254", "tcp", 80), "", false},
		{"a machine of the node's LAN", lan, out("192.168.77.2", "tcp", 8080), "", false},
		{"DNS on the bridge address (tcp)", node, toNode("10.244.1.1", "tcp", 53), "", true},
		{"DNS on the bridge address (udp)", node, toNode("10.244.1.1", "udp", 53), "", true},
		{"a service of the node on the bridge address", node, toNode("10.244.1.1", "tcp", 8080), "", false},
		{"a service of the node on its LAN address", node, toNode("192.168.77.1", "tcp", 2222), "", false},
		{"a published port of the node", node, toNode("192.168.77.1", "tcp", 30080), "", true},
		{"a hostPort of the node, DNATed to a container", nil, out("10.244.1.3", "tcp", 8080), "192.168.77.1:30090", true},
		{"a service address led to the proxy's listener", node, Packet{ToNode: true, Dst: addr("10.244.1.1"), Proto: "tcp", Port: 41234, State: DNATed}, "10.96.0.10:80", true},
		{"the proxy's listener without a service address", nil, toNode("10.244.1.1", "tcp", 41234), "", false},
	}
	for _, tg := range targets {
		if tg.where != nil {
			tg.where.listen(t, tg.pkt.Proto, netip.AddrPortFrom(tg.pkt.Dst, tg.pkt.Port))
		}
	}
	c1.listen(t, "tcp", netip.MustParseAddrPort("10.244.1.2:8080"))
	check := func(phase string, want func(target) bool) {
		t.Helper()
		for _, tg := range targets {
			dst := netip.AddrPortFrom(tg.pkt.Dst, tg.pkt.Port)
			if tg.via != "" {
				dst = netip.MustParseAddrPort(tg.via)
			}
			err := c1.dial(tg.pkt.Proto, dst)
			switch {
			case want(tg) && err != nil:
				t.Errorf("%s: %s (%s %s:%d) unreachable from a container: %v", phase, tg.name, tg.pkt.Proto, tg.pkt.Dst, tg.pkt.Port, err)
			case !want(tg) && err == nil:
				t.Errorf("%s: %s (%s %s:%d) reachable from a container", phase, tg.name, tg.pkt.Proto, tg.pkt.Dst, tg.pkt.Port)
			case !want(tg) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ECONNREFUSED):
				t.Errorf("%s: %s: %v, want it refused at once (host unreachable: admin-prohibited)", phase, tg.name, err)
			}
		}
		// Connections to a container from elsewhere, and their replies.
		if err := node.dial("tcp", netip.MustParseAddrPort("10.244.1.2:8080")); err != nil {
			t.Errorf("%s: the node (a probe) reaching a container: %v", phase, err)
		}
		if err := lan.dial("tcp", netip.MustParseAddrPort("192.168.77.1:30090")); err != nil {
			t.Errorf("%s: a LAN client reaching a container's hostPort: %v", phase, err)
		}
	}
	all := func(target) bool { return true }
	check("without rules", all)

	cfg := EgressConfig{Bridge: "br0", Subnet: netip.MustParsePrefix("10.244.1.0/24"), Cluster: netip.MustParsePrefix("10.244.0.0/16"), NodePorts: PortRange{30000, 32767}}
	plan, err := EgressPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tables := Tables{Prefix: node.prefix()}
	ctx := context.Background()
	for range 2 { // the second Apply changes nothing
		if err := tables.Apply(ctx, plan); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range targets {
		if got := plan.Allows(tg.pkt); got != tg.allow {
			t.Errorf("the model allows %s: %v, want %v", tg.name, got, tg.allow)
		}
	}
	check("with the rules", func(tg target) bool { return tg.allow })

	rules := node.output(t, "iptables -w -S")
	for _, l := range plan.Lines() {
		if n := strings.Count(rules, l+"\n"); n != 1 {
			t.Errorf("%d copies of %q in the node's rules:\n%s", n, l, rules)
		}
	}
	for _, j := range jumps("br0") {
		if n := strings.Count(rules, "-A "+joinArgs(j)+"\n"); n != 1 {
			t.Errorf("%d copies of jump %q in the node's rules:\n%s", n, j, rules)
		}
	}

	for range 2 { // safe to run again
		if err := tables.Reset(ctx, "br0"); err != nil {
			t.Fatal(err)
		}
	}
	if rules := node.output(t, "iptables -w -S"); strings.Contains(rules, "br0") {
		t.Errorf("rules left after Reset:\n%s", rules)
	}
	check("after Reset", all)
}

// netns is a network namespace held by a process of the test's.
type netns struct{ pid int }

func newNetns(t *testing.T) *netns {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	n := &netns{pid: cmd.Process.Pid}
	// unshare execs sleep once the namespace is made.
	deadline := time.Now().Add(5 * time.Second)
	for {
		self, _ := os.Readlink("/proc/self/ns/net")
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.pid))
		if err == nil && its != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d has no network namespace of its own", n.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.run(t, "ip link set lo up")
	return n
}

func (n *netns) prefix() []string { return []string{"nsenter", "-t", fmt.Sprint(n.pid), "-n"} }

func (n *netns) output(t *testing.T, command string) string {
	t.Helper()
	args := append(n.prefix(), strings.Fields(command)...)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *netns) run(t *testing.T, command string) { t.Helper(); n.output(t, command) }

// in runs f on a thread in the namespace; sockets f opens stay there.
func (n *netns) in(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine instead of
		// going back to the pool in another namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// listen answers on proto at a: TCP connections are accepted and closed,
// UDP datagrams echoed.
func (n *netns) listen(t *testing.T, proto string, a netip.AddrPort) {
	t.Helper()
	err := n.in(func() error {
		if proto == "udp" {
			c, err := net.ListenPacket("udp", a.String())
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				buf := make([]byte, 512)
				for {
					k, from, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = c.WriteTo(buf[:k], from)
				}
			}()
			return nil
		}
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("listen on %s %s: %v", proto, a, err)
	}
}

// dial says whether a connection (tcp) or an echoed datagram (udp) to a
// gets through from the namespace.
func (n *netns) dial(proto string, a netip.AddrPort) error {
	return n.in(func() error {
		c, err := net.DialTimeout(proto, a.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if proto != "udp" {
			return nil
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 8)
		if _, err := c.Read(buf); err != nil {
			return err
		}
		if !slices.Equal(buf[:4], []byte("ping")) {
			return fmt.Errorf("echo %q", buf)
		}
		return nil
	})
}
