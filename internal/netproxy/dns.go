package netproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/shoal-dev/shoal/internal/api"
)

// DNS constants. Answers are short-lived so a changed serviceIP spreads
// quickly; upstreams get upstreamTimeout each.
const (
	zone            = "shoal"
	answerTTL       = 5
	upstreamTimeout = 2 * time.Second
	tcpIdleTimeout  = 10 * time.Second
	maxForwards     = 256 // UDP queries being forwarded at once; more are dropped (clients retry)
	maxTCPConns     = 256
)

// dnsTable is what the DNS server knows, replaced whole on every change.
type dnsTable struct {
	apps   map[string]map[string]netip.Addr // namespace → app → serviceIP (invalid: not assigned yet)
	nsOfIP map[netip.Addr]string            // instance IP → its namespace, for bare names
	synced bool                             // Apps and Instances were listed at least once
}

// dnsServer answers names under .shoal and forwards the rest.
type dnsServer struct {
	log      *slog.Logger
	table    *atomic.Pointer[dnsTable]
	upstream []string
	timeout  time.Duration
}

// serveUDP answers queries on pc until it is closed.
func (s *dnsServer) serveUDP(ctx context.Context, pc net.PacketConn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxForwards)
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		resp, fwd := s.answer(msg, addrOf(from))
		if !fwd {
			if resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.log.Debug("dns: too many queries in flight; dropping one", "from", from)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _ = pc.WriteTo(s.forward(ctx, msg, false), from)
		}()
	}
}

// serveTCP answers length-prefixed queries on l until it is closed.
func (s *dnsServer) serveTCP(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var open atomic.Int32
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if open.Add(1) > maxTCPConns {
			open.Add(-1)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Add(-1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *dnsServer) serveConn(ctx context.Context, c net.Conn) {
	from := addrOf(c.RemoteAddr())
	var lenBuf [2]byte
	for {
		_ = c.SetDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, fwd := s.answer(msg, from)
		if fwd {
			resp = s.forward(ctx, msg, true)
		}
		if resp == nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(tcpIdleTimeout))
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// answer returns the response to one query, or forward=true when the name
// is not ours. A message it cannot make sense of gets no answer.
func (s *dnsServer) answer(msg []byte, from netip.Addr) (resp []byte, forward bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError, false, nil), false
	}
	if h.OpCode != 0 {
		return reply(h, &q, dnsmessage.RCodeNotImplemented, false, nil), false
	}
	res := s.table.Load().resolve(strings.ToLower(q.Name.String()), from)
	switch {
	case res == notOurs:
		return nil, true
	case q.Class != dnsmessage.ClassINET:
		return reply(h, &q, dnsmessage.RCodeRefused, false, nil), false
	case res == notSynced:
		return reply(h, &q, dnsmessage.RCodeServerFailure, false, nil), false
	case res == noSuchName:
		return reply(h, &q, dnsmessage.RCodeNameError, true, nil), false
	}
	var a *netip.Addr
	if vip := res.vip; vip.IsValid() && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL) {
		a = &vip
	}
	return reply(h, &q, dnsmessage.RCodeSuccess, true, a), false
}

// resolution is what a name means to shoal.
type resolution struct {
	kind int
	vip  netip.Addr
}

var (
	notOurs    = resolution{kind: 0}
	notSynced  = resolution{kind: 1}
	noSuchName = resolution{kind: 2}
)

// exists makes the resolution of a name that exists, with an address or,
// for a namespace or an App without serviceIP, without one.
func exists(vip netip.Addr) resolution { return resolution{kind: 3, vip: vip} }

// resolve maps a lower-case, fully qualified name:
//
//	APP.NAMESPACE.shoal.  the App (the form the search path produces)
//	NAMESPACE.shoal.      exists, no address; so does shoal. itself
//	APP.NAMESPACE.        the App, if there is one; else not ours
//	APP.                  the App in the asker's namespace (default when
//	                      the asker is not an instance), if any; else not ours
//
// Anything else under shoal. does not exist.
func (t *dnsTable) resolve(name string, from netip.Addr) resolution {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	if labels[0] == "" {
		return notOurs
	}
	if labels[len(labels)-1] == zone {
		if !t.synced {
			return notSynced
		}
		switch rest := labels[:len(labels)-1]; len(rest) {
		case 0:
			return exists(netip.Addr{})
		case 1:
			if _, ok := t.apps[rest[0]]; ok {
				return exists(netip.Addr{})
			}
		case 2:
			if vip, ok := t.apps[rest[1]][rest[0]]; ok {
				return exists(vip)
			}
		}
		return noSuchName
	}
	switch len(labels) {
	case 2:
		if vip, ok := t.apps[labels[1]][labels[0]]; ok {
			return exists(vip)
		}
	case 1:
		ns, ok := t.nsOfIP[from]
		if !ok {
			ns = api.DefaultNamespace
		}
		if vip, ok := t.apps[ns][labels[0]]; ok {
			return exists(vip)
		}
	}
	return notOurs
}

// reply builds a response to h carrying q, with one A record if a is set.
func reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, authoritative bool, a *netip.Addr) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 128), dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		Authoritative:      authoritative,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
		RCode:              rcode,
	})
	b.EnableCompression()
	if q != nil {
		_ = b.StartQuestions()
		_ = b.Question(*q)
		if a != nil {
			_ = b.StartAnswers()
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: answerTTL}, dnsmessage.AResource{A: a.As4()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
