package netproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/testutil"
)

func TestPickLeastConnectionsRoundRobinTies(t *testing.T) {
	var p pool
	p.set([]string{"a", "b", "c"})
	now := time.Now()
	pick := func() *endpoint {
		e := p.pick(nil, now)
		if e == nil {
			t.Fatal("pick returned nothing with three endpoints")
		}
		return e
	}
	var got []string
	held := map[string]*endpoint{}
	for range 4 {
		e := pick()
		got = append(got, e.addr)
		held[e.addr] = e
	}
	if s := strings.Join(got, ""); s != "abca" {
		t.Errorf("four picks from idle a, b, c went to %q, want round robin %q", s, "abca")
	}
	// a has 2, b and c 1: releasing b makes it the least loaded.
	p.release(held["b"])
	if e := pick(); e.addr != "b" {
		t.Errorf("after b's connection ended, pick = %s, want b (0 connections)", e.addr)
	}
	// Counts survive a change of the set.
	p.set([]string{"c", "a", "d"})
	if e := pick(); e.addr != "d" {
		t.Errorf("after adding d, pick = %s, want d (0 connections)", e.addr)
	}
}

func TestPickAvoidsRecentFailures(t *testing.T) {
	var p pool
	p.set([]string{"a", "b"})
	now := time.Now()
	b := p.pick(map[*endpoint]bool{p.eps[0]: true}, now)
	p.release(b)
	p.failed(p.eps[0], now) // a failed: b is preferred though busier
	b.active = 5
	if e := p.pick(nil, now); e.addr != "b" {
		t.Errorf("pick = %s, want b: a has fewer connections but has just failed", e.addr)
	}
	if e := p.pick(nil, now.Add(failCooldown+time.Millisecond)); e.addr != "a" {
		t.Errorf("pick after the cool-down = %s, want a (fewest connections)", e.addr)
	}
	if e := p.pick(map[*endpoint]bool{p.eps[0]: true, p.eps[1]: true}, now); e != nil {
		t.Errorf("pick with everything tried = %s, want nothing", e.addr)
	}
}

// echoServer answers each line with "name: line".
func echoServer(t *testing.T, name string) (addr string, accepted *atomic.Int32, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintf(c, "%s: %s\n", name, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), accepted, func() { l.Close() }
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}

func TestDialRetriesRefusedEndpoint(t *testing.T) {
	live, accepted, _ := echoServer(t, "live")
	dead := deadAddr(t)
	var p pool
	p.set([]string{dead, live})
	d := &net.Dialer{Timeout: time.Second}
	for i := range 10 {
		c, e, err := p.dial(context.Background(), d)
		if err != nil {
			t.Fatalf("dial %d: %v; want the live endpoint after the refused one", i, err)
		}
		if e.addr != live {
			t.Errorf("dial %d went to %s, want %s", i, e.addr, live)
		}
		c.Close()
		p.release(e)
	}
	// The server counts after its Accept returns, which may trail the dial.
	for deadline := time.Now().Add(2 * time.Second); accepted.Load() < 10 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := accepted.Load(); n != 10 {
		t.Errorf("live endpoint accepted %d connections, want 10", n)
	}

	p.set([]string{dead})
	if _, _, err := p.dial(context.Background(), d); err == nil {
		t.Error("dial with only a dead endpoint succeeded")
	}
	p.set(nil)
	if _, _, err := p.dial(context.Background(), d); err != ErrNoEndpoint {
		t.Errorf("dial with no endpoints: %v, want ErrNoEndpoint", err)
	}
}

// lineConn is a client connection that sends a line and reads the answer.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLine(t *testing.T, addr string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &lineConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *lineConn) roundTrip(t *testing.T, line string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c, line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("answer to %q: %v", line, err)
	}
	return strings.TrimSpace(s)
}

// An endpoint that leaves keeps its open connections; new ones go to the
// endpoints that remain, from the moment apply returns.
func TestRemovedEndpointDrains(t *testing.T) {
	a, _, _ := echoServer(t, "a")
	b, _, _ := echoServer(t, "b")
	pub := testutil.FreePort(t)
	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t), PublishAddress: "127.0.0.1", PortRange: anyPort, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	app := testApp("default", "echo", "", 7, int32(pub))
	instA, instB := testInstance("default", "echo", "echo-a", a), testInstance("default", "echo", "echo-b", b)
	p.apply(loopbackNodes, []*api.App{app}, []*api.Instance{instA})
	startProxy(t, p)
	addr := "127.0.0.1:" + strconv.Itoa(pub)
	waitDial(t, addr)

	old := dialLine(t, addr)
	if got := old.roundTrip(t, "1"); got != "a: 1" {
		t.Fatalf("first connection answered %q, want a: 1", got)
	}

	// a stops being ready, by a watch event.
	notReady := *instA
	notReady.Status.Ready = false
	p.update([]api.WatchEvent{{Type: api.WatchModified, Object: &notReady}, {Type: api.WatchAdded, Object: instB}})
	if got := p.Endpoints("default", "echo"); len(got) != 1 || got[0] != b {
		t.Fatalf("Endpoints after a left = %v, want [%s]", got, b)
	}
	for i := range 20 {
		c := dialLine(t, addr)
		if got := c.roundTrip(t, "new"); got != "b: new" {
			t.Fatalf("new connection %d answered %q, want b: new (a left the set)", i, got)
		}
		c.Close()
	}
	if got := old.roundTrip(t, "2"); got != "a: 2" {
		t.Errorf("open connection to a, after a left the set, answered %q, want a: 2", got)
	}

	// A half-close from the client reaches the backend, whose close comes back.
	if err := old.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(old.r); err != nil || len(rest) != 0 {
		t.Errorf("after the client's half-close: read %q, %v; want a clean EOF", rest, err)
	}

	// Deleting marks an instance as leaving: out at once, even if ready.
	leaving := *instB
	leaving.Metadata.DeletedAt = time.Now()
	p.update([]api.WatchEvent{{Type: api.WatchModified, Object: &leaving}})
	if got := p.Endpoints("default", "echo"); len(got) != 0 {
		t.Errorf("Endpoints with b deleting = %v, want none", got)
	}
}
