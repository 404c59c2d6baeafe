package overlay

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	hosts "github.com/shoal-dev/shoal/test/cluster"
)

// TestOverlayFigures (make bench, SHOAL_BENCH_OVERLAY=1): two hosts of the
// harness, each with a device opened as its agent would; one TCP stream's
// throughput and the p99 of small request/answer round trips, through
// the overlay and over the same hosts' plain link, measured in turns.
func TestOverlayFigures(t *testing.T) {
	if os.Getenv("SHOAL_BENCH_OVERLAY") == "" {
		t.Skip("a benchmark: make bench runs it (SHOAL_BENCH_OVERLAY=1)")
	}
	net := hosts.New(t)
	ha, hb := net.AddHost("a"), net.AddHost("b")
	a, b := (&netns{t, ha.Namespace()}).open("10.201.1.1"), (&netns{t, hb.Namespace()}).open("10.201.2.1")
	a.call("peers", []Peer{{PublicKey: b.key.Public(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr(hb.IP), uint16(b.port)),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.2.0/24")}, Keepalive: Keepalive}})
	b.call("peers", []Peer{{PublicKey: a.key.Public(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr(ha.IP), uint16(a.port)),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.1.0/24")}, Keepalive: Keepalive}})
	run(t, "ip", "-n", ha.Namespace(), "route", "add", "10.201.2.0/24", "dev", "shwg", "src", "10.201.1.1")
	run(t, "ip", "-n", hb.Namespace(), "route", "add", "10.201.1.0/24", "dev", "shwg", "src", "10.201.2.1")
	b.call("sink", ":9000")

	rounds := func(to string) figures {
		var rs []figures
		for range 3 {
			var f figures
			if err := json.Unmarshal([]byte(a.call("measure", measureArgs{To: to, Seconds: 2, Pings: 2000})), &f); err != nil {
				t.Fatal(err)
			}
			rs = append(rs, f)
		}
		return median(rs)
	}
	report := func(link string) {
		plain, over := rounds(hb.IP+":9000"), rounds("10.201.2.1:9000")
		fmt.Printf("overlay: %s: plain %.0f MB/s, p99 %.0f µs; WireGuard overlay %.0f MB/s (%.0f%% of plain), p99 %.0f µs (%+.0f µs)\n",
			link, plain.MBps, plain.P99us, over.MBps, 100*over.MBps/plain.MBps, over.P99us, over.P99us-plain.P99us)
	}
	report("veth link (memory speed)")
	// A link as fast as a good real one: 1 Gbit/s each way.
	for _, h := range []*hosts.Host{ha, hb} {
		run(t, "tc", "-n", h.Namespace(), "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1gbit", "burst", "256kb", "latency", "20ms")
	}
	report("link shaped to 1 Gbit/s")
}

type measureArgs struct {
	To      string
	Seconds float64
	Pings   int
}

type figures struct {
	MBps  float64
	P99us float64
}

func median(fs []figures) figures {
	m := func(get func(figures) float64) float64 {
		v := make([]float64, len(fs))
		for i, f := range fs {
			v[i] = get(f)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return figures{MBps: m(func(f figures) float64 { return f.MBps }), P99us: m(func(f figures) float64 { return f.P99us })}
}

// sink serves the measurements: a connection's first byte says what it
// wants: 'T' sends bytes to be thrown away, 'L' sends 64-byte requests
// to be answered with as many bytes.
func sink(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				mode := make([]byte, 1)
				if _, err := io.ReadFull(c, mode); err != nil {
					return
				}
				if mode[0] == 'T' {
					_, _ = io.Copy(io.Discard, c)
					return
				}
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}

// measure sends to a sink for m.Seconds, then times m.Pings round trips
// (bounded in count and time).
func measure(m measureArgs) (figures, error) {
	var f figures
	c, err := net.DialTimeout("tcp", m.To, 3*time.Second)
	if err != nil {
		return f, err
	}
	buf := make([]byte, 128<<10)
	buf[0] = 'T'
	start := time.Now()
	end := start.Add(time.Duration(m.Seconds * float64(time.Second)))
	var sent int64
	_ = c.SetWriteDeadline(end.Add(5 * time.Second))
	for time.Now().Before(end) {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			c.Close()
			return f, err
		}
		buf[0] = 0
	}
	f.MBps = float64(sent) / time.Since(start).Seconds() / 1e6
	c.Close()

	c, err = net.DialTimeout("tcp", m.To, 3*time.Second)
	if err != nil {
		return f, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte{'L'}); err != nil {
		return f, err
	}
	msg := make([]byte, 64)
	rtts := make([]time.Duration, 0, m.Pings)
	for range m.Pings {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return f, err
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			return f, err
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	f.P99us = float64(rtts[len(rtts)*99/100].Microseconds())
	return f, nil
}
