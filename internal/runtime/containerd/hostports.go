package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Host ports. The portmap plugin publishes a port with DNAT rules, which
// bind nothing: a process on the node could bind the port later and never
// see the local traffic the rules divert to the container. So the driver
// holds a listening socket on every published host port for as long as the
// container exists, as kubelet's hostport manager does. NAT (PREROUTING,
// OUTPUT) happens before the socket lookup, so the traffic the rules match,
// to 127.0.0.1 or any other node address, still reaches the container.
//
// The sockets are the driver's process's: an agent restart drops them and
// New takes them again. Go opens them close-on-exec, so neither the
// processes the driver runs (CNI plugins, iptables) nor theirs inherit them.

// portHolds are the host-port sockets, by container.
type portHolds struct {
	mu   sync.Mutex
	byID map[string]map[string]io.Closer // container id -> "18080/tcp" -> socket
}

// hold takes a socket on each published port in ports that id does not
// hold yet. On error it closes the ones this call took.
func (h *portHolds) hold(id string, ports []runtime.PortMapping) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID == nil {
		h.byID = map[string]map[string]io.Closer{}
	}
	held := h.byID[id]
	if held == nil {
		held = map[string]io.Closer{}
	}
	var taken []string
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		key := hostPortKey(p)
		if held[key] != nil {
			continue
		}
		s, err := listenHostPort(p)
		if err != nil {
			for _, k := range taken {
				held[k].Close()
				delete(held, k)
			}
			return err
		}
		held[key] = s
		taken = append(taken, key)
	}
	if len(held) > 0 {
		h.byID[id] = held
	}
	return nil
}

// release closes id's sockets.
func (h *portHolds) release(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.byID[id] {
		s.Close()
	}
	delete(h.byID, id)
}

// releaseAll closes every socket.
func (h *portHolds) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, held := range h.byID {
		for _, s := range held {
			s.Close()
		}
	}
	h.byID = nil
}

// listenHostPort binds the port on every address, IPv4 and IPv6.
func listenHostPort(p runtime.PortMapping) (io.Closer, error) {
	addr := ":" + strconv.Itoa(int(p.HostPort))
	switch protocol(p) {
	case "tcp":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, hostPortError(p, err)
		}
		go refuse(l)
		return l, nil
	case "udp":
		// Datagrams the rules miss (IPv6) queue unread until the
		// socket buffer is full, then drop.
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, hostPortError(p, err)
		}
		return c, nil
	default:
		return nil, fmt.Errorf("port %d: protocol %q: want tcp or udp", p.HostPort, p.Protocol)
	}
}

func hostPortError(p runtime.PortMapping, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("host port %s is already in use on this node (another program listens on it); choose another hostPort", hostPortKey(p))
	}
	return fmt.Errorf("host port %s: %w", hostPortKey(p), err)
}

// refuse closes every connection the hold accepts until l is closed. Only
// what the DNAT rules miss gets here (IPv6, or a connection before the
// rules exist); closing it at once fails the client fast instead of leaving
// it in the backlog.
func refuse(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		c.Close()
	}
}

func hostPortKey(p runtime.PortMapping) string {
	return fmt.Sprintf("%d/%s", p.HostPort, protocol(p))
}

// holdPorts takes the host ports of a container being created. It fails
// when another container of this driver publishes one of them (named in
// the error) or anything else on the node has it bound.
func (d *Driver) holdPorts(ctx context.Context, id string, ports []runtime.PortMapping) error {
	want := map[string]bool{}
	for _, p := range ports {
		if p.HostPort != 0 {
			want[hostPortKey(p)] = true
		}
	}
	// Holds of an id without a container are stale: it was deleted
	// behind the driver's back.
	d.ports.release(id)
	if len(want) == 0 {
		return nil
	}
	cs, err := d.client.ContainerService().List(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		for _, hp := range parseHostPorts(c.Labels[labelPorts]) {
			if want[hp] {
				return fmt.Errorf("host port %s is already in use (by container %q)", hp, c.ID)
			}
		}
	}
	return d.ports.hold(id, ports)
}

// adoptExisting takes over the containers that exist at New, made by an
// earlier driver (the agent before its restart): it applies their CPU
// limits again (see cpuLimit) and holds their host ports. A port some
// other process bound in between cannot be taken: that process is already
// losing the port's local traffic to the container, which is worth a
// warning but not worth stopping the driver for.
func (d *Driver) adoptExisting(ctx context.Context) error {
	cs, err := d.client.ContainerService().List(d.ctx(ctx))
	if err != nil {
		return fmt.Errorf("list existing containers: %w", err)
	}
	for _, c := range cs {
		if c.Labels[labelCPUQuota] != "" {
			// A run started by an agent that died before it applied the
			// CPU limit gets it now (see cpuLimit).
			if cc, err := d.client.LoadContainer(d.ctx(ctx), c.ID); err == nil {
				if t, err := cc.Task(d.ctx(ctx), nil); err == nil {
					if err := d.cpuLimit(d.ctx(ctx), t, c.Labels); err != nil {
						d.cfg.Logger.Warn("cannot apply the CPU limit of an existing container", "container", c.ID, "err", err)
					}
				}
			}
		}
		for _, p := range parsePorts(c.Labels[labelPorts]) {
			if err := d.ports.hold(c.ID, []runtime.PortMapping{p}); err != nil {
				d.cfg.Logger.Warn("cannot hold host port of existing container",
					"container", c.ID, "port", hostPortKey(p), "err", err)
			}
		}
	}
	return nil
}
