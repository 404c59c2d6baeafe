package netproxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
)

// natRule sends vip:port (TCP) straight to the ready endpoints, spread
// evenly by the kernel; with none ready, to the local proxy listener (which
// refuses the connection cleanly).
type natRule struct {
	vip     netip.Addr
	port    int32
	eps     []netip.AddrPort
	to      netip.AddrPort
	comment string
}

func (r natRule) equal(o natRule) bool {
	return r.vip == o.vip && r.port == o.port && r.to == o.to && r.comment == o.comment && slices.Equal(r.eps, o.eps)
}

// hairpinMark marks connections whose client is also the chosen endpoint;
// they are masqueraded, or the endpoint would answer itself directly and
// the client would not recognise the reply.
const hairpinMark = "0x10000/0x10000"

// iptables keeps the node's service rules in one nat chain of its own,
// jumped to from PREROUTING (packets from containers on the bridge) and
// OUTPUT (the host's own connections). Everything else in the nat table
// belongs to someone else and is left alone.
type iptables struct {
	chain  string
	bridge string
	log    *slog.Logger
}

// postChain masquerades hairpin connections.
func (t *iptables) postChain() string { return t.chain + "-P" }

// jumps are the rules, in PREROUTING, OUTPUT and POSTROUTING, that lead to
// the chains.
func (t *iptables) jumps() [][]string {
	comment := []string{"-m", "comment", "--comment", "shoal service proxy"}
	return [][]string{
		append(append([]string{"PREROUTING", "-i", t.bridge}, comment...), "-j", t.chain),
		append(append([]string{"OUTPUT"}, comment...), "-j", t.chain),
		append(append([]string{"POSTROUTING"}, comment...), "-j", t.postChain()),
	}
}

// write replaces the chain's rules in one iptables-restore: declaring the
// chain with --noflush creates it or empties it, and the whole input is
// one transaction, so no packet sees a half-written chain.
func (t *iptables) write(ctx context.Context, rules []natRule) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n:%s - [0:0]\n", t.chain, t.postChain())
	fmt.Fprintf(&b, "-A %s -m mark --mark %s -j MASQUERADE\n", t.postChain(), hairpinMark)
	for _, r := range rules {
		match := fmt.Sprintf("-A %s -d %s/32 -p tcp -m tcp --dport %d -m comment --comment %q", t.chain, r.vip, r.port, safeComment(r.comment))
		if len(r.eps) == 0 {
			fmt.Fprintf(&b, "%s -j DNAT --to-destination %s\n", match, r.to)
			continue
		}
		for _, ep := range r.eps {
			fmt.Fprintf(&b, "%s -s %s/32 -j MARK --set-xmark %s\n", match, ep.Addr(), hairpinMark)
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

// ensureJumps inserts the jumps that are missing, first in their chains.
func (t *iptables) ensureJumps(ctx context.Context) error {
	for _, j := range t.jumps() {
		if t.run(ctx, append([]string{"-C"}, j...)...) == nil {
			continue
		}
		args := append([]string{"-I", j[0], "1"}, j[1:]...)
		if err := t.run(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// cleanup removes the jumps (every copy) and the chain.
func (t *iptables) cleanup(ctx context.Context) error {
	for _, j := range t.jumps() {
		for range 10 {
			if t.run(ctx, append([]string{"-C"}, j...)...) != nil {
				break
			}
			if err := t.run(ctx, append([]string{"-D"}, j...)...); err != nil {
				return err
			}
		}
	}
	for _, c := range []string{t.chain, t.postChain()} {
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
// empty: the default name), as `shoal node reset` does after the agent has
// stopped. It is safe to run again.
func Reset(ctx context.Context, bridge, chain string) error {
	if chain == "" {
		chain = DefaultChainName(bridge)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil // no iptables: no rules
	}
	t := &iptables{chain: chain, bridge: bridge, log: slog.New(slog.DiscardHandler)}
	return t.cleanup(ctx)
}

// DefaultChainName is the nat chain of the proxy for bridge.
func DefaultChainName(bridge string) string { return "SHOAL-SVC-" + bridge }
