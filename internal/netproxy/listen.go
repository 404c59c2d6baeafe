package netproxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/internal/api"
)

// Reconcile timing: retryEvery retries listeners that could not be bound;
// resyncEvery rewrites the nat chain and its jumps even when nothing
// changed, which repairs a firewall reload.
const (
	retryEvery  = 5 * time.Second
	resyncEvery = time.Minute
)

// listener is one accepting socket and the App port it serves.
type listener struct {
	l    net.Listener
	port int
	key  atomic.Pointer[svcKey]
	done chan struct{}
}

func (l *listener) close() {
	l.l.Close()
	<-l.done
}

// reconciler makes the listeners and the nat chain match the services. Only
// its goroutine touches its fields.
type reconciler struct {
	p       *Proxy
	svc     map[svcKey]*listener // service proxies on BridgeIP:<ephemeral>
	pub     map[int32]*listener  // published ports
	rules   []natRule            // last written
	rulesAt time.Time
	failing map[string]string // what → last error logged, so a retry does not log again
	refused map[int32]string  // published ports not opened → why, said once
}

func newReconciler(p *Proxy) *reconciler {
	return &reconciler{p: p, svc: map[svcKey]*listener{}, pub: map[int32]*listener{}, failing: map[string]string{}, refused: map[int32]string{}}
}

func (r *reconciler) loop(ctx context.Context) {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		r.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.p.kick:
		case <-t.C:
		}
	}
}

func (r *reconciler) reconcile(ctx context.Context) {
	p := r.p
	want := p.snapshot()

	// Listeners before the rules that point at them.
	for k, s := range want {
		if !s.vip.IsValid() || r.svc[k] != nil {
			continue
		}
		l, err := listen(ctx, net.JoinHostPort(p.cfg.BridgeIP, "0"))
		if r.report("service "+k.String(), err) {
			continue
		}
		r.svc[k] = p.serve(ctx, l, k)
	}

	// Published ports next: a port is forwarded only while the proxy's
	// own listener holds it, so a port another program of the node
	// listens on (sshd, the API server) is never taken over, and none
	// outside the owner's range is opened at all.
	wantPub := map[int32]svcKey{}
	for k, s := range want {
		// The API refuses two Apps on one port; while a watch catches up,
		// prefer a stable choice.
		if old, ok := wantPub[s.publish]; s.publish > 0 && (!ok || k.String() < old.String()) {
			wantPub[s.publish] = k
		}
	}
	for port, k := range wantPub {
		if l := r.pub[port]; l != nil {
			l.key.Store(&k)
			continue
		}
		if !p.cfg.PortRange.Contains(port) {
			r.refuse(port, k, fmt.Sprintf("it is outside this node's publish range %s (set by its owner with --port-range)", p.cfg.PortRange))
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(p.cfg.PublishAddress, strconv.Itoa(int(port))))
		if errors.Is(err, syscall.EADDRINUSE) {
			r.refuse(port, k, "the port is in use on this node (another program listens on it)")
			continue
		}
		if r.report("published port "+strconv.Itoa(int(port)), err) {
			continue
		}
		delete(r.refused, port)
		p.log.Info("published port open", "port", port, "app", k.String())
		r.pub[port] = p.serve(ctx, l, k)
	}
	for port := range r.refused {
		if _, ok := wantPub[port]; !ok {
			delete(r.refused, port)
		}
	}

	// Service addresses are DNATed by the kernel straight to the ready
	// endpoints (measured: about twice the throughput of proxying in user
	// space), and so are published ports in kernel mode; published ports
	// in proxy mode stay with the proxy, which can retry.
	rules := make([]natRule, 0, len(r.svc))
	for k, s := range want {
		l := r.svc[k]
		published := s.kernelPublished() && wantPub[s.publish] == k && r.pub[s.publish] != nil
		if l == nil && !published {
			continue
		}
		eps := p.readyEndpoints(k)
		if l != nil && s.vip.IsValid() {
			rules = append(rules, natRule{vip: s.vip, port: k.port, eps: eps, to: netip.AddrPortFrom(p.bridgeIP, uint16(l.port)), comment: k.String()})
		}
		if published {
			rules = append(rules, natRule{port: s.publish, published: true, eps: eps, comment: k.String()})
		}
	}
	slices.SortFunc(rules, func(a, b natRule) int {
		return cmp.Or(cmp.Compare(a.comment, b.comment), cmp.Compare(a.port, b.port), compareBool(a.published, b.published))
	})
	if p.rules != nil && (!slices.EqualFunc(rules, r.rules, natRule.equal) || time.Since(r.rulesAt) > resyncEvery) {
		err := p.rules.write(ctx, rules)
		if err == nil && time.Since(r.rulesAt) > resyncEvery {
			err = p.rules.ensureJumps(ctx)
		}
		if !r.report("service rules", err) {
			r.rules, r.rulesAt = rules, time.Now()
		}
	}

	// Listeners after the rules that pointed at them are gone.
	for k, l := range r.svc {
		if s, ok := want[k]; !ok || !s.vip.IsValid() {
			l.close()
			delete(r.svc, k)
		}
	}
	for port, l := range r.pub {
		if _, ok := wantPub[port]; !ok {
			l.close()
			delete(r.pub, port)
		}
	}
}

// refuse leaves a published port closed on this node and says so once per
// reason: in the log, and in an Event on the Node.
func (r *reconciler) refuse(port int32, k svcKey, why string) {
	if r.refused[port] == why {
		return
	}
	r.refused[port] = why
	p := r.p
	p.log.Warn("published port not opened", "port", port, "app", k.ns+"/"+k.app, "why", why)
	if p.record == nil {
		return
	}
	msg := fmt.Sprintf("published port %d of App %s/%s not opened on node %s: %s", port, k.ns, k.app, p.cfg.NodeName, why)
	node := &api.Node{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode}, Metadata: api.ObjectMeta{Name: p.cfg.NodeName}}
	go p.record(api.NewEvent(node, "Warning", "PortNotOpened", msg, "netproxy/"+p.cfg.NodeName))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// readyEndpoints returns the App port's ready IPv4 endpoints, sorted.
func (p *Proxy) readyEndpoints(k svcKey) []netip.AddrPort {
	pl := p.pool(k)
	if pl == nil {
		return nil
	}
	var eps []netip.AddrPort
	for _, a := range pl.addrs() {
		if ap, err := netip.ParseAddrPort(a); err == nil && ap.Addr().Is4() {
			eps = append(eps, ap)
		}
	}
	slices.SortFunc(eps, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return eps
}

// report logs err once per failure streak of what, and whether it failed.
func (r *reconciler) report(what string, err error) bool {
	if err == nil {
		if _, ok := r.failing[what]; ok {
			r.p.log.Info("recovered", "what", what)
			delete(r.failing, what)
		}
		return false
	}
	if r.failing[what] != err.Error() {
		r.p.log.Error("cannot serve; retrying", "what", what, "err", err, "every", retryEvery)
		r.failing[what] = err.Error()
	}
	return true
}

func (r *reconciler) closeAll() {
	for k, l := range r.svc {
		l.close()
		delete(r.svc, k)
	}
	for port, l := range r.pub {
		l.close()
		delete(r.pub, port)
	}
}

// serve accepts on l for the App port k until l is closed.
func (p *Proxy) serve(ctx context.Context, l net.Listener, k svcKey) *listener {
	ln := &listener{l: l, port: l.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	ln.key.Store(&k)
	go func() {
		defer close(ln.done)
		for {
			c, err := l.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
					return
				}
				// Out of descriptors, most likely: let connections end.
				p.log.Warn("accept", "addr", l.Addr(), "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			p.handle(ctx, c.(*net.TCPConn), *ln.key.Load())
		}
	}()
	return ln
}

// handle proxies one accepted connection in its own goroutine.
func (p *Proxy) handle(ctx context.Context, c *net.TCPConn, k svcKey) {
	if !p.conns.add(c) {
		abort(c)
		return
	}
	go func() {
		defer p.conns.done(c)
		if from := addrOf(c.RemoteAddr()); p.isolatedFrom(from, k.ns) {
			p.log.Debug("connection across a namespace isolation refused", "service", k, "from", c.RemoteAddr())
			abort(c)
			return
		}
		pl := p.pool(k)
		if pl == nil {
			p.log.Debug("connection for a gone service", "service", k, "from", c.RemoteAddr())
			abort(c)
			return
		}
		p.traffic.counter(appKey(k)).Add(1)
		if !pl.ready() && p.scalesToZero(k) && !p.activate(ctx, k) {
			p.log.Info("no instance started in time for a connection to an app at zero", "service", k, "from", c.RemoteAddr())
		}
		b, e, err := pl.dial(ctx, &p.dialer)
		if err != nil {
			p.log.Debug("connection refused", "service", k, "from", c.RemoteAddr(), "err", err)
			abort(c)
			return
		}
		if !p.conns.add(b) {
			pl.release(e)
			abort(b)
			abort(c)
			return
		}
		defer func() {
			if b != nil {
				p.conns.done(b)
			}
		}()
		if p.isHTTP(k) {
			nb, ne, ok := p.firstExchange(ctx, c, b, e, pl)
			if !ok {
				return
			}
			if nb != b {
				p.conns.done(b)
				if !p.conns.add(nb) {
					pl.release(ne)
					abort(nb)
					abort(c)
					b = nil // done already
					return
				}
				b = nb
			}
			e = ne
		}
		defer pl.release(e)
		p.log.Debug("connection", "service", k, "from", c.RemoteAddr(), "to", e.addr)
		splice(c, b)
	}()
}

// connSet holds every proxied connection, so Run can cut them on return.
type connSet struct {
	mu     sync.Mutex
	m      map[*net.TCPConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (s *connSet) add(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = map[*net.TCPConn]struct{}{}
	}
	s.m[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *connSet) done(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c := range s.m {
		abort(c)
	}
	s.mu.Unlock()
}

func (s *connSet) wait() { s.wg.Wait() }

// listen binds a TCP address that may not be on an interface yet.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: freebind}
	return lc.Listen(ctx, "tcp4", addr)
}

// listenPacket binds a UDP address that may not be on an interface yet.
func listenPacket(ctx context.Context, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: freebind}
	return lc.ListenPacket(ctx, "udp4", addr)
}

func freebind(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
