package netproxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// forward asks each upstream in turn over UDP and returns the first
// answer, or SERVFAIL. A truncated answer to a TCP client is asked again
// over TCP, which is what that client wanted.
func (s *dnsServer) forward(ctx context.Context, msg []byte, overTCP bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	for _, up := range s.upstream {
		resp, err := s.exchangeUDP(ctx, up, msg, h.ID)
		if err == nil && overTCP && truncated(resp) {
			if full, err := s.exchangeTCP(ctx, up, msg); err == nil {
				resp = full
			}
		}
		if err != nil {
			s.log.Debug("dns: upstream did not answer", "upstream", up, "err", err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return resp
	}
	var q *dnsmessage.Question
	if qq, err := p.Question(); err == nil {
		q = &qq
	}
	return reply(h, q, dnsmessage.RCodeServerFailure, false, nil)
}

func (s *dnsServer) exchangeUDP(ctx context.Context, up string, msg []byte, id uint16) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", up)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		// The socket is connected, so only the upstream can answer; a
		// stale answer to an earlier query has another ID.
		if n >= 12 && binary.BigEndian.Uint16(buf) == id {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func (s *dnsServer) exchangeTCP(ctx context.Context, up string, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", up)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	out := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	if _, err := c.Write(append(out, msg...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func truncated(msg []byte) bool {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	return err == nil && h.Truncated
}

// upstreamsFromResolvConf returns the host's nameservers as "ip:53",
// loopback ones left out: containers never see them, and on this host they
// are usually a stub resolver forwarding to the real ones. Behind
// systemd-resolved's stub, its list of real servers is used. If loopback
// stubs are all there is, they are kept: this process runs on the host,
// where they answer.
func upstreamsFromResolvConf() ([]string, error) {
	ups, loop, err := readResolvConf("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	if len(ups) > 0 {
		return ups, nil
	}
	if resolved, _, err := readResolvConf("/run/systemd/resolve/resolv.conf"); err == nil && len(resolved) > 0 {
		return resolved, nil
	}
	if len(loop) > 0 {
		return loop, nil
	}
	return nil, errors.New("no nameserver in /etc/resolv.conf")
}

func readResolvConf(path string) (ups, loopback []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	ups, loopback = parseResolvConf(f)
	return ups, loopback, nil
}

func parseResolvConf(r io.Reader) (ups, loopback []string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		addr := net.JoinHostPort(ip.String(), "53")
		if ip.Unmap().IsLoopback() {
			loopback = append(loopback, addr)
		} else {
			ups = append(ups, addr)
		}
	}
	return ups, loopback
}
