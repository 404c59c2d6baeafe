package netproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Balancer tuning. A dial that fails puts its endpoint at the back of the
// queue for failCooldown, so the connections that follow do not pay for the
// same dead instance while its readiness is being withdrawn.
const (
	dialTimeout  = time.Second
	failCooldown = 2 * time.Second
)

// ErrNoEndpoint means no ready endpoint accepted the connection.
var ErrNoEndpoint = errors.New("no ready endpoint")

// endpoint is one backend "ip:port". A connection keeps a pointer to it,
// so its count stays right after the endpoint leaves the pool.
type endpoint struct {
	addr        string
	active      int       // open or opening connections; guarded by pool.mu
	failedUntil time.Time // guarded by pool.mu
}

// pool balances the connections of one App port over its ready endpoints.
type pool struct {
	mu   sync.Mutex
	eps  []*endpoint
	next int // where the round-robin tie-break starts
}

// set replaces the endpoints, keeping the counters of those that stay.
func (p *pool) set(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := make(map[string]*endpoint, len(p.eps))
	for _, e := range p.eps {
		old[e.addr] = e
	}
	eps := make([]*endpoint, 0, len(addrs))
	for _, a := range addrs {
		e := old[a]
		if e == nil {
			e = &endpoint{addr: a}
		}
		eps = append(eps, e)
	}
	p.eps = eps
	if p.next >= len(eps) {
		p.next = 0
	}
}

// addrs returns the current endpoints.
func (p *pool) addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.eps))
	for i, e := range p.eps {
		out[i] = e.addr
	}
	return out
}

// pick chooses the endpoint with the fewest connections among those not in
// tried, preferring those that have not failed recently; ties go round
// robin. It counts the new connection; call release when it ends.
func (p *pool) pick(tried map[*endpoint]bool, now time.Time) *endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.eps)
	best, bestIdx := (*endpoint)(nil), -1
	for i := range n {
		idx := (p.next + i) % n
		e := p.eps[idx]
		if tried[e] {
			continue
		}
		if best == nil || better(e, best, now) {
			best, bestIdx = e, idx
		}
	}
	if best == nil {
		return nil
	}
	best.active++
	p.next = (bestIdx + 1) % n
	return best
}

// better reports whether a should be preferred over b: healthy before
// cooling down, then fewer connections. Equal candidates keep the earlier
// one in round-robin order.
func better(a, b *endpoint, now time.Time) bool {
	ac, bc := now.Before(a.failedUntil), now.Before(b.failedUntil)
	if ac != bc {
		return bc
	}
	return a.active < b.active
}

func (p *pool) release(e *endpoint) {
	p.mu.Lock()
	e.active--
	p.mu.Unlock()
}

func (p *pool) failed(e *endpoint, now time.Time) {
	p.mu.Lock()
	e.failedUntil = now.Add(failCooldown)
	p.mu.Unlock()
}

func (p *pool) succeeded(e *endpoint) {
	p.mu.Lock()
	e.failedUntil = time.Time{}
	p.mu.Unlock()
}

// dial connects to an endpoint, trying every endpoint once before giving
// up. The caller must release the returned endpoint when the connection
// ends.
func (p *pool) dial(ctx context.Context, d *net.Dialer) (*net.TCPConn, *endpoint, error) {
	return p.dialExcept(ctx, d, map[*endpoint]bool{})
}

// dialExcept is dial skipping the endpoints in tried (which it extends).
func (p *pool) dialExcept(ctx context.Context, d *net.Dialer, tried map[*endpoint]bool) (*net.TCPConn, *endpoint, error) {
	var errs []error
	for {
		e := p.pick(tried, time.Now())
		if e == nil {
			if len(errs) == 0 {
				return nil, nil, ErrNoEndpoint
			}
			return nil, nil, fmt.Errorf("%w: %w", ErrNoEndpoint, errors.Join(errs...))
		}
		tried[e] = true
		c, err := d.DialContext(ctx, "tcp", e.addr)
		if err == nil {
			p.succeeded(e)
			return c.(*net.TCPConn), e, nil
		}
		p.release(e)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		p.failed(e, time.Now())
		errs = append(errs, err)
	}
}

// splice copies both ways until both sides are done. A clean end of one
// direction is passed on as a half-close; an error aborts both sides, with
// a reset, so neither peer mistakes a broken stream for a complete one.
func splice(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipe(b, a)
	}()
	pipe(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}

// pipe copies src to dst through a buffer. (io.Copy between two TCP
// sockets would splice through a kernel pipe; for the small messages a
// service carries that costs more than it saves.)
func pipe(dst, src *net.TCPConn) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf); err != nil {
		abort(dst)
		abort(src)
		return
	}
	_ = dst.CloseWrite()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// abort closes c with a reset instead of a FIN.
func abort(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// ready says whether the pool has an endpoint.
func (p *pool) ready() bool { return len(p.addrs()) > 0 }
