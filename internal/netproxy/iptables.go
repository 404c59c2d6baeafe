package netproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/internal/hostnet"
	ipt "github.com/shoal-dev/shoal/internal/iptables"
)

// natRule sends one TCP port straight to the ready endpoints, spread evenly
// by the kernel. A service rule matches vip:port, and with no endpoint
// ready it sends the connection to the local proxy listener `to` (which
// refuses it cleanly). A published rule (published) matches port on the
// node's own addresses; with no endpoint ready it is left out, and the
// connection reaches the proxy's listener on that port.
type natRule struct {
	vip       netip.Addr
	port      int32
	published bool
	eps       []netip.AddrPort
	to        netip.AddrPort
	comment   string
}

func (r natRule) equal(o natRule) bool {
	return r.vip == o.vip && r.port == o.port && r.published == o.published && r.to == o.to && r.comment == o.comment && slices.Equal(r.eps, o.eps)
}

// masqMark marks connections that must be masqueraded: a service
// connection whose client is also the chosen endpoint (or the endpoint
// would answer itself directly and the client would not recognise the
// reply), and every published-port connection (its endpoint may be on
// another node, which must answer through this one).
const masqMark = "0x10000/0x10000"

// iptables keeps the node's rules in three nat chains of its own:
//
//   - chain: service addresses, jumped to from PREROUTING (packets from
//     containers on the bridge) and OUTPUT (the host's own connections);
//   - chain-E: published ports, jumped to from PREROUTING and OUTPUT for
//     packets to the node's own addresses, loopback ones excepted
//     (DNATing those would need route_localnet, which opens the host's
//     loopback services to every container; they stay with the proxy);
//   - chain-P: masquerades marked connections, from POSTROUTING.
//
// Everything else in the nat table belongs to someone else and is left
// alone.
type iptables struct {
	chain   string
	bridge  string
	publish string // the proxy's PublishAddress; "" or "0.0.0.0": every address
	log     *slog.Logger
}

func (t *iptables) postChain() string      { return t.chain + "-P" }
func (t *iptables) publishedChain() string { return t.chain + "-E" }
func (t *iptables) chains() []string {
	return []string{t.chain, t.publishedChain(), t.postChain()}
}

// jumps are the rules, in PREROUTING, OUTPUT and POSTROUTING, that lead to
// the chains, written as iptables -S prints them (ensureJumps compares
// them as text).
func (t *iptables) jumps() [][]string {
	comment := []string{"-m", "comment", "--comment", "shoal service proxy"}
	js := [][]string{
		append(append([]string{"PREROUTING", "-i", t.bridge}, comment...), "-j", t.chain),
		append(append([]string{"OUTPUT"}, comment...), "-j", t.chain),
		append(append([]string{"POSTROUTING"}, comment...), "-j", t.postChain()),
	}
	var local []string
	switch a, err := netip.ParseAddr(t.publish); {
	case t.publish == "" || err == nil && a.IsUnspecified():
		local = []string{"!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL"}
	case err == nil && a.Is4() && !a.IsLoopback():
		local = []string{"-d", a.String() + "/32"}
	default:
		return js // published ports on loopback only: all of them through the proxy
	}
	pub := []string{"-m", "comment", "--comment", "shoal published ports", "-j", t.publishedChain()}
	return append(js,
		append(append([]string{"PREROUTING"}, local...), pub...),
		append(append([]string{"OUTPUT"}, local...), pub...))
}

// write replaces the chains' rules in one iptables-restore: declaring a
// chain with --noflush creates it or empties it, and the whole input is
// one transaction, so no packet sees a half-written chain.
func (t *iptables) write(ctx context.Context, rules []natRule) error {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, c := range t.chains() {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	fmt.Fprintf(&b, "-A %s -m mark --mark %s -j MASQUERADE\n", t.postChain(), masqMark)
	for _, r := range rules {
		var match string
		if r.published {
			if len(r.eps) == 0 {
				continue
			}
			match = fmt.Sprintf("-A %s -p tcp -m tcp --dport %d -m comment --comment %q", t.publishedChain(), r.port, safeComment(r.comment))
			fmt.Fprintf(&b, "-A %s -p tcp -m tcp --dport %d -m comment --comment %q\n", t.publishedChain(), r.port, countComment(r.comment))
			fmt.Fprintf(&b, "%s -j MARK --set-xmark %s\n", match, masqMark)
		} else {
			match = fmt.Sprintf("-A %s -d %s/32 -p tcp -m tcp --dport %d -m comment --comment %q", t.chain, r.vip, r.port, safeComment(r.comment))
			if len(r.eps) == 0 {
				fmt.Fprintf(&b, "%s -j DNAT --to-destination %s\n", match, r.to)
				continue
			}
			// Counted here only when the kernel forwards it: otherwise the
			// proxy's listener takes (and counts) it.
			fmt.Fprintf(&b, "-A %s -d %s/32 -p tcp -m tcp --dport %d -m comment --comment %q\n", t.chain, r.vip, r.port, countComment(r.comment))
			for _, ep := range r.eps {
				fmt.Fprintf(&b, "%s -s %s/32 -j MARK --set-xmark %s\n", match, ep.Addr(), masqMark)
			}
		}
		// Endpoint i of n takes 1/(n-i) of what the ones before it left:
		// an even spread.
		for i, ep := range r.eps {
			if n := len(r.eps); i < n-1 {
				fmt.Fprintf(&b, "%s -m statistic --mode random --probability %.8f -j DNAT --to-destination %s\n", match, 1/float64(n-i), ep)
			} else {
				fmt.Fprintf(&b, "%s -j DNAT --to-destination %s\n", match, ep)
			}
		}
	}
	b.WriteString("COMMIT\n")
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore of chain %s: %w: %s", t.chain, err, bytes.TrimSpace(out))
	}
	t.log.Debug("service rules written", "chain", t.chain, "rules", len(rules))
	return nil
}

// countComment marks the rule that only counts a service's new
// connections (the nat table sees each connection's first packet only).
func countComment(service string) string { return "count " + safeComment(service) }

// counts reads the counting rules' packet counters: new connections per
// service (by svcKey.String()) since the chains were last written.
func (t *iptables) counts(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, c := range []string{t.chain, t.publishedChain()} {
		b, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-L", c, "-n", "-v", "-x").Output()
		if err != nil {
			return nil, fmt.Errorf("iptables -t nat -L %s: %w", c, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			i := strings.Index(line, "/* count ")
			if i < 0 {
				continue
			}
			svc, _, _ := strings.Cut(line[i+len("/* count "):], " */")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err == nil {
				out[svc] += n
			}
		}
	}
	return out, nil
}

// ensureJumps makes the built-in chains jump to ours exactly as jumps()
// says: missing jumps are inserted first in their chains, and jumps to our
// chains that it does not list (left by an agent started with other flags)
// are removed.
func (t *iptables) ensureJumps(ctx context.Context) error {
	want := map[string]bool{}
	for _, j := range t.jumps() {
		want[strings.Join(j, " ")] = true
	}
	have, err := t.existingJumps(ctx)
	if err != nil {
		return err
	}
	for _, j := range have {
		if !want[strings.Join(j, " ")] {
			if err := t.run(ctx, append([]string{"-D"}, j...)...); err != nil {
				return err
			}
		}
	}
	for _, j := range t.jumps() {
		if t.run(ctx, append([]string{"-C"}, j...)...) == nil {
			continue
		}
		if err := t.run(ctx, append([]string{"-I", j[0], "1"}, j[1:]...)...); err != nil {
			return err
		}
	}
	return nil
}

// existingJumps lists the rules of PREROUTING, OUTPUT and POSTROUTING that
// jump to one of our chains, as arguments after -A.
func (t *iptables) existingJumps(ctx context.Context) ([][]string, error) {
	ours := t.chains()
	var found [][]string
	for _, builtin := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
		out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-S", builtin).Output()
		if err != nil {
			return nil, fmt.Errorf("iptables -t nat -S %s: %w", builtin, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			args := ipt.SplitRule(line)
			if len(args) < 4 || args[0] != "-A" || args[len(args)-2] != "-j" || !slices.Contains(ours, args[len(args)-1]) {
				continue
			}
			found = append(found, args[1:])
		}
	}
	return found, nil
}

// cleanup removes every jump to our chains, then the chains.
func (t *iptables) cleanup(ctx context.Context) error {
	jumps, err := t.existingJumps(ctx)
	if err != nil {
		return err
	}
	for _, j := range jumps {
		if err := t.run(ctx, append([]string{"-D"}, j...)...); err != nil {
			return err
		}
	}
	for _, c := range t.chains() {
		_ = t.run(ctx, "-F", c)
		if err := t.run(ctx, "-X", c); err != nil && t.run(ctx, "-S", c) == nil {
			return err
		}
	}
	return nil
}

func (t *iptables) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", "nat"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// safeComment keeps what iptables-restore's quoting cannot misread.
func safeComment(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("./:-_", r):
			return r
		}
		return '_'
	}, s)
}

// Reset removes the nat chains and jumps a proxy for bridge made (chain
// empty: the default name), and its isolation rules, as `shoal node
// reset` does after the agent has stopped. It is safe to run again.
func Reset(ctx context.Context, bridge, chain string) error {
	if chain == "" {
		chain = DefaultChainName(bridge)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil // no iptables: no rules
	}
	t := &iptables{chain: chain, bridge: bridge, log: slog.New(slog.DiscardHandler)}
	return errors.Join(t.cleanup(ctx), hostnet.Tables{}.ResetIsolation(ctx, bridge))
}

// DefaultChainName is the nat chain of the proxy for bridge.
func DefaultChainName(bridge string) string { return "SHOAL-SVC-" + bridge }
