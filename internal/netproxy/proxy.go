package netproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/hostnet"
)

// Config wires a Proxy.
type Config struct {
	// Client lists and watches Apps and Instances in all namespaces.
	Client *client.Client
	Log    *slog.Logger
	// BridgeIP is the node's container bridge gateway ("10.213.0.1"); the
	// DNS server and the service listeners bind it. It may not be on the
	// bridge yet (the runtime creates the bridge with its first
	// container): the sockets are bound with IP_FREEBIND.
	BridgeIP string
	// Bridge is the bridge interface, for the PREROUTING -i match.
	Bridge string
	// Upstream are the DNS servers ("ip:53") for names outside .shoal;
	// default: the nameservers of /etc/resolv.conf that are not loopback.
	Upstream []string
	// DNSPort is the DNS server's port (default 53).
	DNSPort int
	// PublishAddress is where published ports listen (default "0.0.0.0").
	// The kernel forwards published ports on every local address except
	// loopback ones (or on PublishAddress alone, when it is one address
	// and not loopback); what it leaves, the proxy's listener serves.
	PublishAddress string
	// ChainName is this node's iptables nat chain (default
	// "SHOAL-SVC-"+Bridge); distinct agents on one machine need distinct
	// chains.
	ChainName string
	// NodeName is the node's, for the events that say why a published
	// port was not opened.
	NodeName string
	// ClusterCIDR is the servers' --cluster-cidr: an isolated namespace's
	// containers neither reach nor are reached from an address in it that
	// is not theirs. Zero: every known node's subnet.
	ClusterCIDR netip.Prefix
	// PortRange is the ports this node opens as published ports (its
	// owner's --port-range; default api.DefaultPortRange). A port outside
	// it, or one another program on the node listens on, is not opened.
	PortRange api.PortRange
}

// Proxy is one node's DNS server, service proxy and published ports.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	bridgeIP netip.Addr
	dialer   net.Dialer
	dns      *dnsServer
	rules    ruleWriter      // nil: no iptables (tests without root)
	iso      isolationWriter // nil: no isolation rules (tests without root)

	mu       sync.Mutex
	apps     map[string]*api.App      // by namespace/name; the last view from the server
	insts    map[string]*api.Instance // by namespace/name
	subnets  map[string]netip.Prefix  // node name -> its spec.subnet
	badIPs   map[string]string        // instance key -> the IP outside its node's subnet, logged once
	listed   map[api.Kind]bool        // kinds listed at least once
	isolated map[string]bool          // namespaces with policy.isolation: namespace
	services map[svcKey]service
	pools    map[svcKey]*pool

	table   atomic.Pointer[dnsTable]
	kick    chan struct{}
	isoKick chan struct{} // the isolation rules' view changed
	conns   connSet
	traffic traffic
	// record sends an Event (nil: none are sent).
	record func(*api.Event)
}

// ruleWriter keeps the node's nat rules; the iptables implementation is
// the only real one.
type ruleWriter interface {
	// write replaces the chain's rules (creating the chain) in one step.
	write(ctx context.Context, rules []natRule) error
	// ensureJumps makes PREROUTING and OUTPUT jump to the chain.
	ensureJumps(ctx context.Context) error
	// cleanup removes the jumps and the chain.
	cleanup(ctx context.Context) error
}

var _ interface {
	counts(context.Context) (map[string]uint64, error)
} = (*iptables)(nil)

// svcKey names one TCP port of one App.
type svcKey struct {
	ns, app string
	port    int32 // the App's containerPort
}

func (k svcKey) String() string {
	return k.ns + "/" + k.app + ":" + strconv.Itoa(int(k.port))
}

// service is what the node serves for one App port.
type service struct {
	name    string     // the port's name, to find it on instances of other revisions
	vip     netip.Addr // invalid: no serviceIP yet
	publish int32
	mode    api.PublishMode // of the published port; "" is kernel
}

// kernelPublished says whether the kernel forwards the service's published
// port (the proxy's listener then only answers what the rules leave to it).
func (s service) kernelPublished() bool {
	return s.publish > 0 && s.mode != api.PublishProxy
}

// New checks cfg and returns a Proxy; call Run.
func New(cfg Config) (*Proxy, error) {
	if cfg.Client == nil {
		return nil, errors.New("netproxy: Config.Client is required")
	}
	if cfg.Bridge == "" {
		return nil, errors.New("netproxy: Config.Bridge is required")
	}
	if cfg.ChainName == "" {
		cfg.ChainName = DefaultChainName(cfg.Bridge)
	}
	// iptables refuses chain names of 29 characters or more.
	if len(cfg.ChainName) > 26 {
		return nil, fmt.Errorf("netproxy: chain name %q is longer than 26 characters (iptables allows 28, and a suffix is added)", cfg.ChainName)
	}
	p, err := newProxy(cfg)
	if err != nil {
		return nil, err
	}
	if len(p.cfg.Upstream) == 0 {
		ups, err := upstreamsFromResolvConf()
		if err != nil {
			p.log.Warn("no upstream DNS: names outside .shoal will fail", "err", err)
		}
		p.cfg.Upstream, p.dns.upstream = ups, ups
	}
	p.rules = &iptables{chain: cfg.ChainName, bridge: cfg.Bridge, publish: p.cfg.PublishAddress, log: p.log}
	p.iso = hostnet.Tables{}
	if cfg.NodeName != "" {
		p.record = func(ev *api.Event) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := cfg.Client.Create(ctx, ev); err != nil {
				p.log.Debug("record event", "reason", ev.Reason, "err", err)
			}
		}
	}
	return p, nil
}

// newProxy builds a Proxy without iptables or API client (tests add what
// they need).
func newProxy(cfg Config) (*Proxy, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DNSPort == 0 {
		cfg.DNSPort = 53
	}
	if cfg.PublishAddress == "" {
		cfg.PublishAddress = "0.0.0.0"
	}
	if cfg.PortRange.IsZero() {
		cfg.PortRange = api.DefaultPortRange
	}
	ip, err := netip.ParseAddr(cfg.BridgeIP)
	if err != nil || !ip.Is4() {
		return nil, fmt.Errorf("netproxy: bridge IP %q is not an IPv4 address", cfg.BridgeIP)
	}
	log := cfg.Log.With("component", "netproxy")
	p := &Proxy{
		cfg:      cfg,
		log:      log,
		bridgeIP: ip,
		dialer:   net.Dialer{Timeout: dialTimeout},
		apps:     map[string]*api.App{},
		insts:    map[string]*api.Instance{},
		subnets:  map[string]netip.Prefix{},
		badIPs:   map[string]string{},
		listed:   map[api.Kind]bool{},
		isolated: map[string]bool{},
		services: map[svcKey]service{},
		pools:    map[svcKey]*pool{},
		kick:     make(chan struct{}, 1),
		isoKick:  make(chan struct{}, 1),
	}
	p.dns = &dnsServer{log: log, table: &p.table, upstream: cfg.Upstream, timeout: upstreamTimeout}
	p.table.Store(&dnsTable{})
	return p, nil
}

// Run serves DNS, the service proxy and published ports, following the
// API, until ctx ends. On return its listeners, proxied connections and
// iptables rules are gone.
func (p *Proxy) Run(ctx context.Context) error {
	dnsAddr := net.JoinHostPort(p.cfg.BridgeIP, strconv.Itoa(p.cfg.DNSPort))
	if !p.bridgeIsLocal() {
		p.log.Warn("bridge IP is not on any interface yet; listening anyway", "ip", p.cfg.BridgeIP)
	}
	udp, err := listenPacket(ctx, dnsAddr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	tcp, err := listen(ctx, dnsAddr)
	if err != nil {
		udp.Close()
		return fmt.Errorf("dns: %w", err)
	}
	r := newReconciler(p)
	if p.rules != nil {
		// An empty chain first: it also clears what a killed predecessor
		// left behind.
		err := p.rules.write(ctx, nil)
		if err == nil {
			err = p.rules.ensureJumps(ctx)
		}
		if err != nil {
			udp.Close()
			tcp.Close()
			return fmt.Errorf("service rules: %w", err)
		}
		r.rulesAt = time.Now()
	}
	p.log.Info("service proxy running", "dns", dnsAddr, "chain", p.cfg.ChainName, "upstream", p.cfg.Upstream)

	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	run(func() { p.dns.serveUDP(ctx, udp) })
	run(func() { p.dns.serveTCP(ctx, tcp) })
	run(func() { p.trafficLoop(ctx) })
	if p.cfg.Client != nil {
		run(func() { p.watchLoop(ctx, appKind) })
		run(func() { p.watchLoop(ctx, instanceKind) })
		run(func() { p.watchLoop(ctx, nodeKind) })
		run(func() { p.watchLoop(ctx, nsKind) })
	}
	if p.iso != nil {
		run(func() { p.isolationLoop(ctx) })
	}
	r.loop(ctx)

	// Tear down: rules first, so no new connection is DNATed to a closed
	// port, then listeners and the connections they carry.
	if p.rules != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := p.rules.cleanup(cctx); err != nil {
			p.log.Error("remove service rules", "err", err)
		}
		cancel()
	}
	r.closeAll()
	udp.Close()
	tcp.Close()
	p.conns.closeAll()
	wg.Wait()
	p.conns.wait()
	return nil
}

func (p *Proxy) bridgeIsLocal() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == p.bridgeIP {
				return true
			}
		}
	}
	return false
}

// Endpoints returns the ready "ip:port" endpoints of every port of an App,
// sorted.
func (p *Proxy) Endpoints(ns, app string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k, pl := range p.pools {
		if k.ns == ns && k.app == app {
			out = append(out, pl.addrs()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// apply replaces the whole view of Nodes, Apps and Instances, as lists do.
func (p *Proxy) apply(nodes []*api.Node, apps []*api.App, insts []*api.Instance) {
	p.mu.Lock()
	p.subnets = map[string]netip.Prefix{}
	for _, n := range nodes {
		p.setNodeLocked(n)
	}
	p.apps = map[string]*api.App{}
	for _, a := range apps {
		p.apps[objKey(&a.Metadata)] = a
	}
	p.insts = map[string]*api.Instance{}
	for _, in := range insts {
		p.insts[objKey(&in.Metadata)] = in
	}
	p.listed[api.KindApp], p.listed[api.KindInstance], p.listed[api.KindNode] = true, true, true
	p.recomputeLocked()
	p.mu.Unlock()
	p.poke()
}

func objKey(m *api.ObjectMeta) string { return m.Namespace + "/" + m.Name }

// setNodeLocked records a node's subnet, which its instances' addresses
// must be in.
func (p *Proxy) setNodeLocked(n *api.Node) {
	sn, err := netip.ParsePrefix(n.Spec.Subnet)
	if err != nil || !sn.Addr().Is4() {
		delete(p.subnets, n.Metadata.Name)
		return
	}
	p.subnets[n.Metadata.Name] = sn.Masked()
}

// instanceIPLocked returns the instance's address if it is inside the
// subnet of the node that runs it. A node writes its instances' status, so
// without this a node (or a status forged some other way) could have
// every node's proxy send an App's connections, or its DNS answers'
// namespace, to any address: a database's, 169.254.169.254.
func (p *Proxy) instanceIPLocked(in *api.Instance) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(in.Status.IP)
	if err != nil {
		return netip.Addr{}, false
	}
	sn, ok := p.subnets[in.Spec.Node]
	if !ok || !sn.Contains(ip.Unmap()) {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func (p *Proxy) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// recomputeLocked derives services, endpoints and the DNS table from the
// current view. Pools get their endpoints here, before the caller returns,
// so a readiness change is in effect for the very next connection.
func (p *Proxy) recomputeLocked() {
	services := map[svcKey]service{}
	tbl := &dnsTable{
		apps:   map[string]map[string]netip.Addr{},
		nsOfIP: map[netip.Addr]string{},
		synced: p.listed[api.KindApp] && p.listed[api.KindInstance] && p.listed[api.KindNode],
	}
	for _, a := range p.apps {
		ns := a.Metadata.Namespace
		vip, _ := netip.ParseAddr(a.Status.ServiceIP)
		if !vip.Is4() {
			vip = netip.Addr{}
		}
		if tbl.apps[ns] == nil {
			tbl.apps[ns] = map[string]netip.Addr{}
		}
		tbl.apps[ns][a.Metadata.Name] = vip
		for _, port := range a.Spec.Ports {
			if !isTCP(port.Protocol) || port.ContainerPort <= 0 {
				continue
			}
			services[svcKey{ns, a.Metadata.Name, port.ContainerPort}] = service{name: port.Name, vip: vip, publish: port.Publish, mode: port.PublishMode}
		}
	}

	byApp := map[[2]string][]*api.Instance{}
	badIPs := map[string]string{}
	for key, in := range p.insts {
		ip, ok := p.instanceIPLocked(in)
		if !ok {
			if in.Status.IP != "" && in.Metadata.DeletedAt.IsZero() {
				badIPs[key] = in.Status.IP
				if p.badIPs[key] != in.Status.IP {
					p.log.Warn("instance address outside its node's subnet: not an endpoint", "instance", key, "ip", in.Status.IP,
						"node", in.Spec.Node, "subnet", p.subnets[in.Spec.Node])
				}
			}
			continue
		}
		if in.Metadata.DeletedAt.IsZero() && !in.Status.Phase.Terminal() {
			tbl.nsOfIP[ip] = in.Metadata.Namespace
		}
		if !serving(in) {
			continue
		}
		k := [2]string{in.Metadata.Namespace, in.Spec.App}
		byApp[k] = append(byApp[k], in)
	}
	for k, svc := range services {
		var addrs []string
		for _, in := range byApp[[2]string{k.ns, k.app}] {
			if port, ok := instancePort(in, k.port, svc.name); ok {
				addrs = append(addrs, net.JoinHostPort(in.Status.IP, strconv.Itoa(int(port))))
			}
		}
		slices.Sort(addrs)
		addrs = slices.Compact(addrs)
		pl := p.pools[k]
		if pl == nil {
			pl = &pool{}
			p.pools[k] = pl
		}
		pl.set(addrs)
	}
	// A pool that leaves lives on in the connections that hold its endpoints.
	for k := range p.pools {
		if _, ok := services[k]; !ok {
			delete(p.pools, k)
		}
	}
	p.badIPs = badIPs
	p.services = services
	p.table.Store(tbl)
}

// serving reports whether an instance may receive new connections.
func serving(in *api.Instance) bool {
	return in.Status.Ready && in.Metadata.DeletedAt.IsZero() && in.Status.IP != ""
}

// instancePort finds the App port on one instance: by name when the App's
// port has one (an instance of another revision may use another number),
// else by number.
func instancePort(in *api.Instance, port int32, name string) (int32, bool) {
	ports := in.Spec.Template.Ports
	if name != "" {
		for _, pt := range ports {
			if pt.Name == name && isTCP(pt.Protocol) {
				return pt.ContainerPort, true
			}
		}
	}
	for _, pt := range ports {
		if pt.ContainerPort == port && isTCP(pt.Protocol) {
			return port, true
		}
	}
	return 0, false
}

func isTCP(p api.Protocol) bool { return p == "" || p == api.ProtocolTCP }

// isHTTP says whether an App port carries HTTP (by its name).
func (p *Proxy) isHTTP(k svcKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return httpPort(p.services[k].name)
}

// pool returns the pool of an App port, or nil.
func (p *Proxy) pool(k svcKey) *pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pools[k]
}

// snapshot returns the services to serve.
func (p *Proxy) snapshot() map[svcKey]service {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.services
}
