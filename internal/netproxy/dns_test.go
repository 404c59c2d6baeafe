package netproxy

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/shoal-dev/shoal/internal/api"
)

// fakeUpstream answers every A query with 192.0.2.7 over UDP; names
// starting with "big." get a truncated UDP answer and the full one (with
// 192.0.2.8) over TCP on the same port.
type fakeUpstream struct {
	addr    string
	mu      sync.Mutex
	queries []string
}

// udpAndTCP listens on one loopback port for both UDP and TCP, trying
// other ports while the TCP side of a free UDP port is taken.
func udpAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP after 20 tries")
	return nil, nil
}

func startUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	pc, l := udpAndTCP(t)
	u := &fakeUpstream{addr: pc.LocalAddr().String()}
	t.Cleanup(func() { pc.Close(); l.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := u.respond(buf[:n], false); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var lb [2]byte
				if _, err := io.ReadFull(c, lb[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(lb[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				resp := u.respond(msg, true)
				_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...))
			}()
		}
	}()
	return u
}

func (u *fakeUpstream) respond(msg []byte, tcp bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil || len(m.Questions) != 1 {
		return nil
	}
	q := m.Questions[0]
	u.mu.Lock()
	u.queries = append(u.queries, q.Name.String())
	u.mu.Unlock()
	m.Header.Response = true
	m.Header.RecursionAvailable = true
	ip := [4]byte{192, 0, 2, 7}
	if strings.HasPrefix(q.Name.String(), "big.") {
		if !tcp {
			m.Header.Truncated = true
			out, _ := m.Pack()
			return out
		}
		ip = [4]byte{192, 0, 2, 8}
	}
	m.Answers = []dnsmessage.Resource{{
		Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
		Body:   &dnsmessage.AResource{A: ip},
	}}
	out, _ := m.Pack()
	return out
}

func (u *fakeUpstream) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.queries...)
}

// startDNS serves p's DNS on 127.0.0.1:<random> (UDP and TCP, one port).
func startDNS(t *testing.T, p *Proxy) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pc, l := udpAndTCP(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.dns.serveUDP(ctx, pc) }()
	go func() { defer wg.Done(); p.dns.serveTCP(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		pc.Close()
		l.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// ask sends one query over network ("udp" or "tcp") and returns the answer.
func ask(t *testing.T, network, server, name string, typ dnsmessage.Type) dnsmessage.Message {
	t.Helper()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 0x5a5a, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	msg, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout(network, server, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var resp []byte
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
			t.Fatal(err)
		}
		var lb [2]byte
		if _, err := io.ReadFull(c, lb[:]); err != nil {
			t.Fatalf("%s %s over tcp: %v", name, typ, err)
		}
		resp = make([]byte, binary.BigEndian.Uint16(lb[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s %s over udp: %v", name, typ, err)
		}
		resp = buf[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("%s %s: unpack answer: %v", name, typ, err)
	}
	if m.Header.ID != 0x5a5a || !m.Header.Response {
		t.Fatalf("%s %s: answer has id %#x response=%v, want id 0x5a5a response=true", name, typ, m.Header.ID, m.Header.Response)
	}
	return m
}

// addrs lists the A records of an answer.
func addrs(m dnsmessage.Message) []string {
	var out []string
	for _, r := range m.Answers {
		if a, ok := r.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(a.A).String())
			if r.Header.TTL != answerTTL && strings.HasSuffix(r.Header.Name.String(), "shoal.") {
				return []string{"bad ttl"}
			}
		}
	}
	return out
}

func newDNSProxy(t *testing.T, upstream ...string) *Proxy {
	t.Helper()
	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", Upstream: upstream, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDNS(t *testing.T) {
	up := startUpstream(t)
	p := newDNSProxy(t, up.addr)
	p.apply(nil, []*api.App{
		testApp("default", "web", "10.96.0.10", 80, 0),
		testApp("team", "api", "10.96.0.20", 8080, 0),
		testApp("team", "web", "10.96.0.21", 80, 0),
		testApp("default", "pending", "", 80, 0), // no serviceIP yet
	}, nil)
	server := startDNS(t, p)

	tests := []struct {
		name    string
		typ     dnsmessage.Type
		network string
		rcode   dnsmessage.RCode
		want    []string
	}{
		{"web.default.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"10.96.0.10"}},
		{"WEB.Default.Shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"10.96.0.10"}},
		{"web.default.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"10.96.0.10"}},
		// The asker (127.0.0.1) is no instance: bare names are in "default".
		{"web.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"10.96.0.10"}},
		{"api.team.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"10.96.0.20"}},
		{"web.team.", dnsmessage.TypeA, "tcp", dnsmessage.RCodeSuccess, []string{"10.96.0.21"}},
		{"web.default.shoal.", dnsmessage.TypeAAAA, "udp", dnsmessage.RCodeSuccess, nil},
		{"web.", dnsmessage.TypeAAAA, "udp", dnsmessage.RCodeSuccess, nil},
		{"pending.default.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, nil},
		{"team.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, nil},
		{"shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, nil},
		{"nope.default.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeNameError, nil},
		{"nope.default.shoal.", dnsmessage.TypeA, "tcp", dnsmessage.RCodeNameError, nil},
		{"web.nons.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeNameError, nil},
		{"nons.shoal.", dnsmessage.TypeAAAA, "udp", dnsmessage.RCodeNameError, nil},
		{"a.web.default.shoal.", dnsmessage.TypeA, "udp", dnsmessage.RCodeNameError, nil},
		// Not ours: forwarded.
		{"example.com.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"192.0.2.7"}},
		{"api.default.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"192.0.2.7"}},
		{"api.", dnsmessage.TypeA, "udp", dnsmessage.RCodeSuccess, []string{"192.0.2.7"}},
		{"example.com.", dnsmessage.TypeA, "tcp", dnsmessage.RCodeSuccess, []string{"192.0.2.7"}},
		// Truncated over UDP upstream: a TCP client gets the full answer.
		{"big.example.com.", dnsmessage.TypeA, "tcp", dnsmessage.RCodeSuccess, []string{"192.0.2.8"}},
	}
	for _, tt := range tests {
		m := ask(t, tt.network, server, tt.name, tt.typ)
		got := addrs(m)
		if m.Header.RCode != tt.rcode || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s %s over %s: got %s %v, want %s %v", tt.name, tt.typ, tt.network, m.Header.RCode, got, tt.rcode, tt.want)
		}
		if len(m.Questions) != 1 || m.Questions[0].Name.String() != tt.name {
			t.Errorf("%s %s: answer's question is %v, want the query's", tt.name, tt.typ, m.Questions)
		}
		if strings.HasSuffix(strings.ToLower(tt.name), "shoal.") && !m.Header.Authoritative {
			t.Errorf("%s %s: answer not authoritative", tt.name, tt.typ)
		}
	}
	for _, q := range up.asked() {
		if strings.HasSuffix(strings.ToLower(q), "shoal.") {
			t.Errorf("upstream was asked %s, a name under .shoal", q)
		}
	}
}

// A bare name is looked up in the namespace of the instance asking.
func TestDNSBareNameUsesAskersNamespace(t *testing.T) {
	p := newDNSProxy(t)
	asker := testInstance("team", "client", "client-1", "127.0.0.1:1")
	p.apply(loopbackNodes, []*api.App{
		testApp("default", "web", "10.96.0.10", 80, 0),
		testApp("team", "web", "10.96.0.21", 80, 0),
	}, []*api.Instance{asker})
	server := startDNS(t, p)
	if got := addrs(ask(t, "udp", server, "web.", dnsmessage.TypeA)); len(got) != 1 || got[0] != "10.96.0.21" {
		t.Errorf("web. asked from an instance in team: got %v, want [10.96.0.21]", got)
	}
	if got := addrs(ask(t, "udp", server, "web.default.", dnsmessage.TypeA)); len(got) != 1 || got[0] != "10.96.0.10" {
		t.Errorf("web.default. asked from team: got %v, want [10.96.0.10]", got)
	}
}

func TestDNSUpstreamSilentIsServfail(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	p := newDNSProxy(t, silent.LocalAddr().String())
	p.dns.timeout = 200 * time.Millisecond
	p.apply(nil, nil, nil)
	server := startDNS(t, p)
	start := time.Now()
	m := ask(t, "udp", server, "example.com.", dnsmessage.TypeA)
	if m.Header.RCode != dnsmessage.RCodeServerFailure {
		t.Errorf("example.com. with a silent upstream: got %s, want SERVFAIL", m.Header.RCode)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("SERVFAIL took %v, want about the upstream timeout (200ms)", d)
	}
}

// Until Apps and Instances were listed once, the server does not claim a
// name does not exist: clients retry a SERVFAIL.
func TestDNSBeforeFirstListIsServfail(t *testing.T) {
	p := newDNSProxy(t)
	server := startDNS(t, p)
	if m := ask(t, "udp", server, "web.default.shoal.", dnsmessage.TypeA); m.Header.RCode != dnsmessage.RCodeServerFailure {
		t.Errorf("before the first list: got %s, want SERVFAIL", m.Header.RCode)
	}
}

func TestResolveWithoutTrailingDot(t *testing.T) {
	tbl := &dnsTable{synced: true, apps: map[string]map[string]netip.Addr{"default": {"web": netip.MustParseAddr("10.96.0.10")}}}
	for _, name := range []string{"web", "web.default", "web.default.shoal", "web.default.shoal."} {
		if r := tbl.resolve(name, netip.Addr{}); r.vip.String() != "10.96.0.10" {
			t.Errorf("resolve(%q) = %+v, want 10.96.0.10", name, r)
		}
	}
	if r := tbl.resolve("", netip.Addr{}); r != notOurs {
		t.Errorf("resolve(root) = %+v, want not ours", r)
	}
}

func TestParseResolvConf(t *testing.T) {
	ups, loop := parseResolvConf(strings.NewReader("# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 2001:db8::1\nnameserver bogus\n"))
	if strings.Join(ups, " ") != "10.0.0.2:53 [2001:db8::1]:53" {
		t.Errorf("upstreams = %v, want [10.0.0.2:53 [2001:db8::1]:53]", ups)
	}
	if strings.Join(loop, " ") != "127.0.0.53:53 [::1]:53" {
		t.Errorf("loopback = %v, want [127.0.0.53:53 [::1]:53]", loop)
	}
}
