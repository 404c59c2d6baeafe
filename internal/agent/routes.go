package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// routeProto tags the routes the agent installs (see `ip route ... proto`),
// so it can tell them from everyone else's.
const routeProto = "198"

// route sends a node's container subnet to that node.
type route struct {
	subnet netip.Prefix
	via    netip.Addr
}

// plannedRoutes are the routes this node needs: every other node's subnet
// via its internal IP. Nodes without either, nodes reached through one of
// this machine's own addresses (several agents on one machine), and the
// node's own subnet are left out.
func plannedRoutes(self string, nodes []*api.Node, local func(netip.Addr) bool) []route {
	var out []route
	for _, n := range nodes {
		if n.Metadata.Name == self {
			continue
		}
		sn, err1 := netip.ParsePrefix(n.Spec.Subnet)
		via, err2 := netip.ParseAddr(n.Status.InternalIP)
		if err1 != nil || err2 != nil || local(via) {
			continue
		}
		out = append(out, route{sn, via})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].subnet.String() < out[j].subnet.String() })
	return out
}

// routeLoop keeps the node's routes to the other nodes' subnets in step
// with the cluster: a flat, routed network (like flannel's host-gw) for
// nodes that share a link. It never removes routes because the server is
// unreachable.
func (a *Agent) routeLoop(ctx context.Context) {
	installed := map[netip.Prefix]netip.Addr{}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		objs, _, err := a.cfg.Client.List(ctx, nodeKind, "", client.ListOptions{})
		if err == nil {
			nodes := make([]*api.Node, len(objs))
			for i, o := range objs {
				nodes[i] = o.(*api.Node)
			}
			want := plannedRoutes(a.cfg.NodeName, nodes, isLocalAddr)
			a.syncRoutes(ctx, installed, want)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) syncRoutes(ctx context.Context, installed map[netip.Prefix]netip.Addr, want []route) {
	keep := map[netip.Prefix]bool{}
	for _, r := range want {
		keep[r.subnet] = true
		if installed[r.subnet] == r.via {
			continue
		}
		if err := ipRoute(ctx, "replace", r.subnet.String(), "via", r.via.String(), "proto", routeProto); err != nil {
			a.log.Warn("route to a node's subnet", "subnet", r.subnet, "via", r.via, "err", err)
			continue
		}
		a.log.Info("route to a node's subnet", "subnet", r.subnet, "via", r.via)
		installed[r.subnet] = r.via
	}
	for sn := range installed {
		if !keep[sn] {
			_ = ipRoute(ctx, "del", sn.String(), "proto", routeProto)
			delete(installed, sn)
		}
	}
}

// ipCommand runs iproute2; tests point it into a network namespace.
var ipCommand = []string{"ip"}

func ipRoute(ctx context.Context, args ...string) error {
	argv := append(append(append([]string{}, ipCommand...), "route"), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip route %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isLocalAddr says whether a is one of this machine's addresses.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr() == a {
			return true
		}
	}
	return a.IsLoopback()
}

// detectInternalIP is the address this machine would use to reach others:
// the source address of its default route. Nothing is sent.
func detectInternalIP() string {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: only a routing lookup
	if err != nil {
		return ""
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// ResetRoutes removes every route an agent installed on this host (those
// tagged routeProto), for `shoal node reset`.
func ResetRoutes(ctx context.Context) error {
	argv := append(append([]string{}, ipCommand...), "-4", "route", "show", "proto", routeProto)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if err := ipRoute(ctx, "del", f[0], "proto", routeProto); err != nil {
				return err
			}
		}
	}
	return nil
}
