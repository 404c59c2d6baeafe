package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/overlay"
)

// routeProto tags the routes the agent installs (see `ip route ... proto`),
// so it can tell them from everyone else's.
const routeProto = "198"

// Network modes: how a node reaches the other nodes' containers.
const (
	// NetworkWireGuard sends them through the encrypted overlay.
	NetworkWireGuard = "wireguard"
	// NetworkHostGW routes each node's subnet through its InternalIP, in
	// the clear: for nodes on one trusted link (flannel's host-gw).
	NetworkHostGW = "host-gw"
	// NetworkNone installs nothing (a single node, or routes made by
	// someone else).
	NetworkNone = "none"
)

// Overlay is the node's WireGuard device, as the agent uses it.
type Overlay interface {
	Name() string
	// Address is the device's own address, the node's gateway address:
	// the source of what the node itself sends to other nodes.
	Address() netip.Addr
	PublicKey() overlay.Key
	SetPeers([]overlay.Peer) error
}

// route sends a node's container subnet to that node: via its address
// (host-gw), or into the overlay device with the node's own source
// address.
type route struct {
	subnet netip.Prefix
	via    netip.Addr
	dev    string
	src    netip.Addr
}

func (r route) args() []string {
	if r.via.IsValid() {
		return []string{r.subnet.String(), "via", r.via.String()}
	}
	return []string{r.subnet.String(), "dev", r.dev, "src", r.src.String()}
}

// otherNodes are the nodes this node routes to: not itself, with a
// subnet, and not on this machine (several agents on one machine), as
// onThisMachine says.
func otherNodes(self string, nodes []*api.Node, onThisMachine func(*api.Node) bool) (out []*api.Node, subnets []netip.Prefix) {
	for _, n := range nodes {
		if n.Metadata.Name == self {
			continue
		}
		sn, err := netip.ParsePrefix(n.Spec.Subnet)
		if err != nil || onThisMachine(n) {
			continue
		}
		out, subnets = append(out, n), append(subnets, sn)
	}
	return out, subnets
}

// plannedRoutes are the host-gw routes this node needs: every other
// node's subnet via its internal IP, of the nodes screenNodes keeps
// (notes: the others, and why).
func plannedRoutes(self string, nodes []*api.Node, cluster netip.Prefix, local func(netip.Addr) bool) (out []route, notes []string) {
	nodes, notes = screenNodes(self, nodes, cluster)
	others, subnets := otherNodes(self, nodes, func(n *api.Node) bool {
		ip, err := netip.ParseAddr(n.Status.InternalIP)
		return err == nil && local(ip)
	})
	for i, n := range others {
		if via, err := netip.ParseAddr(n.Status.InternalIP); err == nil {
			out = append(out, route{subnet: subnets[i], via: via})
		}
	}
	sortRoutes(out)
	return out, notes
}

// plannedOverlay is the overlay this node needs: a WireGuard peer per
// other node that has published a key, and a route into the device for
// each node's subnet, of the nodes screenNodes keeps. A peer with an
// endpoint is dialled, with keepalives so that a NAT in front of this node
// keeps the path open; a peer without one (behind NAT) is waited for,
// unless this node is behind NAT too (reachable says whether it published
// an endpoint): then its subnet goes through the relay, which forwards
// between the two. The relay is the first ready node (by name) with an
// endpoint that a cluster-admin marked as one (spec.relay, `shoal node
// relay`): it decrypts what it forwards, so no node becomes one by its own
// say. Both ends pick the same relay, so each accepts the other's packets
// from it. notes say which nodes are left out, and why.
func plannedOverlay(self string, nodes []*api.Node, cluster netip.Prefix, local func(netip.Addr) bool, reachable bool, dev string, src netip.Addr) ([]overlay.Peer, []route, []string) {
	nodes, notes := screenNodes(self, nodes, cluster)
	// A node on this machine publishes one of its addresses as its
	// endpoint. (Its InternalIP does not tell: nodes behind different
	// NATs may well share a private address.)
	others, subnets := otherNodes(self, nodes, func(n *api.Node) bool {
		if n.Status.Overlay == nil {
			return false
		}
		ep, err := netip.ParseAddrPort(n.Status.Overlay.Endpoint)
		return err == nil && local(ep.Addr())
	})
	type peer struct {
		node *api.Node
		key  overlay.Key
		ep   netip.AddrPort
		sn   netip.Prefix
	}
	var ps []peer
	relay := -1
	for i, n := range others {
		ov := n.Status.Overlay
		if ov == nil {
			continue
		}
		k, err := overlay.ParseKey(ov.PublicKey)
		if err != nil {
			continue
		}
		p := peer{node: n, key: k, sn: subnets[i]}
		if ep, err := netip.ParseAddrPort(ov.Endpoint); err == nil {
			p.ep = ep
			if n.Spec.Relay && n.Status.Ready && (relay < 0 || n.Metadata.Name < ps[relay].node.Metadata.Name) {
				relay = len(ps)
			}
		}
		ps = append(ps, p)
	}
	var peers []overlay.Peer
	var routes []route
	var relayed []netip.Prefix
	for _, p := range ps {
		switch {
		case p.ep.IsValid():
			peers = append(peers, overlay.Peer{PublicKey: p.key, Endpoint: p.ep, AllowedIPs: []netip.Prefix{p.sn}, Keepalive: overlay.Keepalive})
		case reachable:
			peers = append(peers, overlay.Peer{PublicKey: p.key, AllowedIPs: []netip.Prefix{p.sn}})
		case relay >= 0:
			relayed = append(relayed, p.sn)
		default:
			// Neither end can be reached: no way there.
			notes = append(notes, fmt.Sprintf("node %s: behind NAT like this node, and no ready node with an endpoint is marked as a relay (shoal node relay NAME)", p.node.Metadata.Name))
			continue
		}
		routes = append(routes, route{subnet: p.sn, dev: dev, src: src})
	}
	if len(relayed) > 0 {
		for i := range peers {
			if peers[i].PublicKey == ps[relay].key {
				peers[i].AllowedIPs = append(peers[i].AllowedIPs, relayed...)
			}
		}
	}
	for i := range peers {
		slices.SortFunc(peers[i].AllowedIPs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	}
	slices.SortFunc(peers, func(a, b overlay.Peer) int { return strings.Compare(a.PublicKey.String(), b.PublicKey.String()) })
	sortRoutes(routes)
	return peers, routes, notes
}

func sortRoutes(rs []route) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].subnet.String() < rs[j].subnet.String() })
}

// routeLoop keeps the node's way to the other nodes' subnets in step with
// the cluster: host-gw routes, or the overlay's peers and the routes into
// it. It follows the Nodes through a watch, and plans again only when
// what routing reads of them changed (a heartbeat changes nothing of it),
// or every routeResync. It never removes anything because the server is
// unreachable: the last view stays.
func (a *Agent) routeLoop(ctx context.Context) {
	view := &routeView{nodes: map[string]*api.Node{}}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	l := &listwatch.Loop{
		Name:   "nodes, for routes",
		Source: a.cfg.Client.Source(nodeKind, "", client.ListOptions{}),
		Replace: func(objs []api.Object, _ int64) {
			view.replace(objs)
			poke() // a list is rare (the start, a lost watch): plan from it
		},
		Update: func(events []api.WatchEvent) {
			if view.update(events) {
				poke()
			}
		},
		Expired: client.Expired,
		Log:     a.log,
	}
	go l.Run(ctx)

	installed := map[netip.Prefix]route{}
	var lastNotes []string
	planned := false
	t := time.NewTicker(routeResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
			if !planned {
				continue // nothing listed yet: nothing to plan from
			}
		}
		notes := a.planRoutes(ctx, installed, view.list())
		planned = true
		if !slices.Equal(notes, lastNotes) {
			for _, n := range notes {
				a.log.Warn("no route to a node", "why", n)
			}
			lastNotes = notes
		}
	}
}

// routeView is the Nodes as route planning last saw them.
type routeView struct {
	mu    sync.Mutex
	nodes map[string]*api.Node
}

// set keeps n (nil: the node is gone) and says whether routing sees the
// node differently now.
func (v *routeView) set(name string, n *api.Node) bool {
	old, had := v.nodes[name]
	switch {
	case n == nil && !had:
		return false
	case n == nil:
		delete(v.nodes, name)
		return true
	}
	v.nodes[name] = n
	return !had || routingOf(old) != routingOf(n)
}

// replace installs a list.
func (v *routeView) replace(objs []api.Object) {
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := map[string]bool{}
	for _, o := range objs {
		n := o.(*api.Node)
		seen[n.Metadata.Name] = true
		v.set(n.Metadata.Name, n)
	}
	for name := range v.nodes {
		if !seen[name] {
			v.set(name, nil)
		}
	}
}

// update applies watch events and says whether routing must plan again.
func (v *routeView) update(events []api.WatchEvent) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	dirty := false
	for _, ev := range events {
		n := ev.Object.(*api.Node)
		name := n.Metadata.Name
		if ev.Type == api.WatchDeleted {
			n = nil
		}
		dirty = v.set(name, n) || dirty
	}
	return dirty
}

// list is the nodes by name.
func (v *routeView) list() []*api.Node {
	v.mu.Lock()
	out := make([]*api.Node, 0, len(v.nodes))
	for _, n := range v.nodes {
		out = append(out, n)
	}
	v.mu.Unlock()
	slices.SortFunc(out, func(x, y *api.Node) int { return strings.Compare(x.Metadata.Name, y.Metadata.Name) })
	return out
}

// planRoutes plans the node's routes (and the overlay's peers) from the
// nodes and installs them; it returns why some node cannot be reached.
func (a *Agent) planRoutes(ctx context.Context, installed map[netip.Prefix]route, nodes []*api.Node) []string {
	var notes []string
	if ov := a.cfg.Overlay; ov != nil {
		var peers []overlay.Peer
		var want []route
		peers, want, notes = plannedOverlay(a.cfg.NodeName, nodes, a.cfg.ClusterCIDR, isLocalAddr, a.cfg.OverlayEndpoint != "", ov.Name(), ov.Address())
		if err := ov.SetPeers(peers); err != nil {
			a.log.Warn("overlay peers", "err", err)
		}
		if a.cfg.ClusterCIDR.IsValid() {
			want = append(want, route{subnet: a.cfg.ClusterCIDR, dev: ov.Name(), src: ov.Address()})
		}
		a.syncRoutes(ctx, installed, want)
		return notes
	}
	var want []route
	want, notes = plannedRoutes(a.cfg.NodeName, nodes, a.cfg.ClusterCIDR, isLocalAddr)
	a.syncRoutes(ctx, installed, want)
	return notes
}

// routing is what route planning reads of a Node: a change in anything
// else (a heartbeat, figures, allocations) plans nothing again.
type routing struct {
	subnet, internalIP, key, endpoint string
	ready, relay                      bool
}

func routingOf(n *api.Node) routing {
	r := routing{subnet: n.Spec.Subnet, internalIP: n.Status.InternalIP, ready: n.Status.Ready, relay: n.Spec.Relay}
	if ov := n.Status.Overlay; ov != nil {
		r.key, r.endpoint = ov.PublicKey, ov.Endpoint
	}
	return r
}

// routeResync is how often the routes are planned again though no Node
// changed what routing reads (a repair, not the way changes arrive).
const routeResync = 30 * time.Second

func (a *Agent) syncRoutes(ctx context.Context, installed map[netip.Prefix]route, want []route) {
	keep := map[netip.Prefix]bool{}
	for _, r := range want {
		keep[r.subnet] = true
		if installed[r.subnet] == r {
			continue
		}
		if err := ipRoute(ctx, append(append([]string{"replace"}, r.args()...), "proto", routeProto)...); err != nil {
			a.log.Warn("route to a node's subnet", "route", strings.Join(r.args(), " "), "err", err)
			continue
		}
		a.log.Info("route to a node's subnet", "route", strings.Join(r.args(), " "))
		installed[r.subnet] = r
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

// DetectInternalIP is the address this machine would use to reach others:
// the source address of its default route. Nothing is sent.
func DetectInternalIP() string {
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
