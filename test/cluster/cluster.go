// Package cluster simulates several machines on one: each Host is a
// network namespace with its own address on a switch (a bridge in a
// namespace of its own) that the harness creates, and runs its own shoal
// processes. Tests can kill -9 a process, stop and start one, and cut a
// host off the switch and heal it. All traffic stays inside these
// namespaces; everything made is removed when the test ends, also when it
// failed.
//
// Hosts share the machine's containerd (its socket is a file); each agent
// needs its own runtime namespace.
package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Net is one simulated network: a switch and the hosts on it.
type Net struct {
	t      testing.TB
	id     int32
	prefix string // "10.97.<id>."
	sw     string // the switch's namespace
	mu     sync.Mutex
	hosts  []*Host
}

var nets atomic.Int32

// New makes a switch for t's hosts. It needs root, iproute2 and nsenter.
func New(t testing.TB) *Net {
	t.Helper()
	id := (int32(os.Getpid())%40)*6 + nets.Add(1)%6
	n := &Net{t: t, id: id, prefix: fmt.Sprintf("10.97.%d.", id), sw: fmt.Sprintf("shsw%d", id)}
	t.Cleanup(n.cleanup)
	n.ip("netns", "add", n.sw)
	n.ip("-n", n.sw, "link", "set", "lo", "up")
	n.ip("-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.sw, "link", "set", "br0", "up")
	return n
}

// ip runs iproute2 and fails the test when it fails.
func (n *Net) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Host is one simulated machine.
type Host struct {
	Name string
	// IP is the host's address on the switch.
	IP    string
	net   *Net
	ns    string
	veth  string // its cable's end on the switch
	mu    sync.Mutex
	procs []*Proc
	after []func()
}

// AfterStop runs f when the test ends, after the host's processes have
// stopped and before its namespace goes: to undo, from inside, what they
// made (`shoal node reset`).
func (h *Host) AfterStop(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.after = append(h.after, f)
}

// AddHost plugs a new host into the switch: its namespace, a cable (veth)
// to the switch, an address, loopback, and forwarding on (a node routes
// its containers' traffic).
func (n *Net) AddHost(name string) *Host {
	n.t.Helper()
	n.mu.Lock()
	idx := len(n.hosts) + 1
	h := &Host{Name: name, IP: fmt.Sprintf("%s%d", n.prefix, idx), net: n,
		ns: fmt.Sprintf("sh%d-%s", n.id, name), veth: fmt.Sprintf("shv%dh%d", n.id, idx)}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	n.ip("netns", "add", h.ns)
	n.ip("-n", h.ns, "link", "set", "lo", "up")
	n.ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	n.ip("link", "set", h.veth, "netns", n.sw)
	n.ip("-n", n.sw, "link", "set", h.veth, "master", "br0", "up")
	n.ip("-n", h.ns, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip("-n", h.ns, "link", "set", "eth0", "up")
	// A default route, as every real machine has: a connection to an
	// address the service proxy rewrites must first find a route.
	n.ip("-n", h.ns, "route", "add", "default", "dev", "eth0")
	if out, err := h.Command("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		n.t.Fatalf("forwarding on %s: %v\n%s", name, err, out)
	}
	return h
}

// AddHostBehindNAT plugs a new host into the switch through a router of
// its own (a host named NAME-r) that masquerades, like a home or office
// network: the host reaches every host on the switch, and none of them
// can open a connection to it. Its IP is private (172.30.N.2), and Cut
// unplugs its router.
func (n *Net) AddHostBehindNAT(name string) *Host {
	n.t.Helper()
	r := n.AddHost(name + "-r")
	n.mu.Lock()
	idx := len(n.hosts) + 1
	h := &Host{Name: name, IP: fmt.Sprintf("172.30.%d.2", idx), net: n,
		ns: fmt.Sprintf("sh%d-%s", n.id, name), veth: r.veth}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	lan := fmt.Sprintf("shl%dh%d", n.id, idx)
	n.ip("netns", "add", h.ns)
	n.ip("-n", h.ns, "link", "set", "lo", "up")
	n.ip("link", "add", lan, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	n.ip("link", "set", lan, "netns", r.ns)
	n.ip("-n", r.ns, "addr", "add", fmt.Sprintf("172.30.%d.1/24", idx), "dev", lan)
	n.ip("-n", r.ns, "link", "set", lan, "up")
	n.ip("-n", h.ns, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip("-n", h.ns, "link", "set", "eth0", "up")
	n.ip("-n", h.ns, "route", "add", "default", "via", fmt.Sprintf("172.30.%d.1", idx))
	nat := r.Command("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", fmt.Sprintf("172.30.%d.0/24", idx), "-o", "eth0", "-j", "MASQUERADE")
	if out, err := nat.CombinedOutput(); err != nil {
		n.t.Fatalf("NAT on %s: %v\n%s", r.Name, err, out)
	}
	if out, err := h.Command("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		n.t.Fatalf("forwarding on %s: %v\n%s", name, err, out)
	}
	return h
}

// Namespace is the host's network namespace name (for `ip netns exec`).
func (h *Host) Namespace() string { return h.ns }

// Cut unplugs the host from the switch: nothing goes in or out, and its
// processes keep running.
func (h *Host) Cut() { h.net.ip("-n", h.net.sw, "link", "set", h.veth, "down") }

// Heal plugs it back in.
func (h *Host) Heal() { h.net.ip("-n", h.net.sw, "link", "set", h.veth, "up") }

// Command is a command that runs on the host: in its network namespace
// only. (Not `ip netns exec`, which also gives the process a mount
// namespace of its own: the network namespaces an agent mounts for its
// containers would be invisible to containerd.)
func (h *Host) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.ns, "--", bin}, args...)...)
}

// Proc is a process running on a host.
type Proc struct {
	host *Host
	bin  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Start runs bin on the host until the test ends (or Kill9/Stop).
func (h *Host) Start(bin string, args ...string) *Proc {
	h.net.t.Helper()
	p := &Proc{host: h, bin: bin, args: args, out: &bytes.Buffer{}}
	p.Start()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p
}

// Start runs the process (again).
func (p *Proc) Start() {
	p.host.net.t.Helper()
	cmd := p.host.Command(p.bin, p.args...)
	w := &lockedWriter{p: p}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.host.net.t.Fatalf("start %s on %s: %v", p.bin, p.host.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Output is what the process printed so far, across its runs.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Running says whether the process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill9 kills the process (nsenter has become it) as a crash would.
func (p *Proc) Kill9() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Stop ends the process with SIGTERM, and SIGKILL after 20 s.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.Kill9()
	}
}

// Procs are the host's processes, in the order they were started.
func (h *Host) Procs() []*Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Proc(nil), h.procs...)
}

// cleanup stops every process (the last started first), then removes the
// hosts' and the switch's namespaces, which takes their links along.
func (n *Net) cleanup() {
	n.mu.Lock()
	hosts := append([]*Host(nil), n.hosts...)
	n.mu.Unlock()
	for i := len(hosts) - 1; i >= 0; i-- {
		procs := hosts[i].Procs()
		for j := len(procs) - 1; j >= 0; j-- {
			procs[j].Stop()
		}
	}
	for _, h := range hosts {
		h.mu.Lock()
		after := h.after
		h.mu.Unlock()
		for _, f := range after {
			f()
		}
	}
	for _, h := range hosts {
		if out, err := exec.Command("ip", "netns", "del", h.ns).CombinedOutput(); err != nil {
			n.t.Errorf("remove host %s: %v\n%s", h.Name, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.sw).CombinedOutput(); err != nil {
		n.t.Errorf("remove the switch: %v\n%s", err, out)
	}
}
