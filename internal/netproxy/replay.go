package netproxy

import (
	"bytes"
	"context"
	"net"
	"strings"
	"time"
)

// For ports named "http" or "http-…", the proxy sees the start of each
// connection: when the request is an idempotent HTTP method (GET, HEAD,
// OPTIONS) and the instance closes the connection without answering a
// single byte — it died, or was killed, while the request was in flight —
// the same request bytes are sent to another ready instance. The client
// never notices. Anything else (other methods, other ports, a response
// already under way) is never replayed: the proxy cannot know what a
// half-done request did.
const (
	replayMax   = 16 << 10         // requests larger than this are not replayed
	replayTries = 3                // instances tried for one request
	firstByte   = 30 * time.Second // longest wait for the first client bytes
)

// httpPort says whether a port's name marks it as HTTP.
func httpPort(name string) bool {
	return name == "http" || strings.HasPrefix(name, "http-")
}

var idempotent = [][]byte{[]byte("GET "), []byte("HEAD "), []byte("OPTIONS ")}

func replayable(req []byte) bool {
	for _, m := range idempotent {
		if bytes.HasPrefix(req, m) {
			return true
		}
	}
	return false
}

// firstExchange forwards the client's first bytes to b and waits for the
// first bytes of the answer, moving to another endpoint when b closes
// without answering an idempotent request. It returns the backend and
// endpoint to splice with (b and e, or their replacements), or ok=false
// when the connection is over: then every connection is aborted and every
// endpoint released.
func (p *Proxy) firstExchange(ctx context.Context, c, b *net.TCPConn, e *endpoint, pl *pool) (*net.TCPConn, *endpoint, bool) {
	buf := make([]byte, replayMax)
	_ = c.SetReadDeadline(time.Now().Add(firstByte))
	n, err := c.Read(buf)
	_ = c.SetReadDeadline(time.Time{})
	if n == 0 {
		if err != nil {
			pl.release(e)
			abort(b)
			abort(c)
			return nil, nil, false
		}
		return b, e, true
	}
	req := buf[:n]
	retry := n < replayMax && replayable(req)
	tried := map[*endpoint]bool{}
	resp := make([]byte, 32<<10)
	for attempt := 0; ; attempt++ {
		tried[e] = true
		if _, err := b.Write(req); err == nil {
			m, rerr := b.Read(resp)
			if m > 0 {
				if _, err := c.Write(resp[:m]); err != nil {
					pl.release(e)
					abort(b)
					abort(c)
					return nil, nil, false
				}
				return b, e, true
			}
			if rerr == nil {
				continue
			}
		}
		// The instance closed without a byte of answer.
		abort(b)
		pl.release(e)
		pl.failed(e, time.Now())
		if !retry || attempt+1 >= replayTries || ctx.Err() != nil {
			abort(c)
			return nil, nil, false
		}
		nb, ne, err := pl.dialExcept(ctx, &p.dialer, tried)
		if err != nil {
			abort(c)
			return nil, nil, false
		}
		p.log.Debug("replayed an idempotent request on another instance", "from", e.addr, "to", ne.addr)
		b, e = nb, ne
	}
}
