package hostnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	ipt "github.com/shoal-dev/shoal/internal/iptables"
)

// Tables runs iptables and iptables-restore on the host. Prefix, when
// set, is run with them as its arguments: the tests use `nsenter -t PID
// -n` to write the rules of a network namespace of their own.
type Tables struct{ Prefix []string }

func (t Tables) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if len(t.Prefix) == 0 {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, t.Prefix[0], append(append(slices.Clone(t.Prefix[1:]), name), args...)...)
}

func (t Tables) iptables(ctx context.Context, args ...string) ([]byte, error) {
	out, err := t.command(ctx, "iptables", append([]string{"-w", "-t", "filter"}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Apply writes p: both chains in one iptables-restore (declaring a chain
// with --noflush creates or empties it, and the input is one transaction,
// so no packet sees half a chain), then the jumps from FORWARD and INPUT,
// first in their chains, where they are missing. Running it again with
// the same plan changes nothing; with another, it replaces the rules.
func (t Tables) Apply(ctx context.Context, p Plan) error {
	var b strings.Builder
	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ForwardChain(p.Bridge), HostChain(p.Bridge))
	for _, l := range p.Lines() {
		if strings.HasPrefix(l, "-A ") {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	cmd := t.command(ctx, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("egress rules for %s: iptables-restore: %w: %s", p.Bridge, err, bytes.TrimSpace(out))
	}
	for _, j := range jumps(p.Bridge) {
		if _, err := t.iptables(ctx, append([]string{"-C"}, j...)...); err == nil {
			continue
		}
		if _, err := t.iptables(ctx, append([]string{"-I", j[0], "1"}, j[1:]...)...); err != nil {
			return fmt.Errorf("egress rules for %s: %w", p.Bridge, err)
		}
	}
	return nil
}

// Reset removes what Apply made for bridge: every jump from INPUT and
// FORWARD to its chains, then the chains. It is safe to run again, and on
// a host where iptables is not installed.
func (t Tables) Reset(ctx context.Context, bridge string) error {
	if len(t.Prefix) == 0 {
		if _, err := exec.LookPath("iptables"); err != nil {
			return nil // no iptables: no rules
		}
	}
	ours := []string{ForwardChain(bridge), HostChain(bridge)}
	var errs []error
	for _, builtin := range []string{"FORWARD", "INPUT"} {
		out, err := t.iptables(ctx, "-S", builtin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			args := ipt.SplitRule(line)
			if len(args) < 4 || args[0] != "-A" || args[len(args)-2] != "-j" || !slices.Contains(ours, args[len(args)-1]) {
				continue
			}
			if _, err := t.iptables(ctx, append([]string{"-D"}, args[1:]...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("egress rules for %s: %w", bridge, errors.Join(errs...))
	}
	for _, c := range ours {
		if _, err := t.iptables(ctx, "-S", c); err != nil {
			continue // not there
		}
		_, _ = t.iptables(ctx, "-F", c)
		if _, err := t.iptables(ctx, "-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("egress rules for %s: %w", bridge, errors.Join(errs...))
	}
	return nil
}
