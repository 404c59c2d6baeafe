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

// ApplyIsolation writes p in one iptables-restore: its chains are created
// or emptied and refilled, and the namespace chains the kernel's copy of
// the first chain jumped to that p no longer has are removed, all in one
// transaction, so a membership change never lets a packet see a half-made
// chain. Then FORWARD jumps to the first chain, first in FORWARD, if it
// does not yet.
func (t Tables) ApplyIsolation(ctx context.Context, p IsolationPlan) error {
	if len(p.Chains) == 0 {
		return fmt.Errorf("isolation rules for %s: empty plan", p.Bridge)
	}
	_, old, err := t.isolationTargets(ctx, p.Chains[0].Name)
	if err != nil {
		return fmt.Errorf("isolation rules for %s: %w", p.Bridge, err)
	}
	keep := map[string]bool{}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, c := range p.Chains {
		keep[c.Name] = true
		fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
	}
	var stale []string
	for _, c := range old {
		if !keep[c] {
			stale = append(stale, c)
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
	}
	for _, l := range p.Lines() {
		if strings.HasPrefix(l, "-A ") {
			b.WriteString(l + "\n")
		}
	}
	for _, c := range stale {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	cmd := t.command(ctx, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("isolation rules for %s: iptables-restore: %w: %s", p.Bridge, err, bytes.TrimSpace(out))
	}
	j := isolationJump(p.Bridge)
	if _, err := t.iptables(ctx, append([]string{"-C"}, j...)...); err == nil {
		return nil
	}
	if _, err := t.iptables(ctx, append([]string{"-I", j[0], "1"}, j[1:]...)...); err != nil {
		return fmt.Errorf("isolation rules for %s: %w", p.Bridge, err)
	}
	return nil
}

// isolationTargets reads the filter table and says whether chain exists
// and which chains its rules jump to. (The whole table is read: iptables
// has no error for a missing chain that all its backends print alike.)
func (t Tables) isolationTargets(ctx context.Context, chain string) (exists bool, targets []string, err error) {
	out, err := t.iptables(ctx, "-S")
	if err != nil {
		return false, nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		args := ipt.SplitRule(line)
		if len(args) == 2 && args[0] == "-N" && args[1] == chain {
			exists = true
		}
		if len(args) < 4 || args[0] != "-A" || args[1] != chain || args[len(args)-2] != "-j" {
			continue
		}
		if c := args[len(args)-1]; strings.HasPrefix(c, "SHOAL-ISO-") && !slices.Contains(targets, c) {
			targets = append(targets, c)
		}
	}
	return exists, targets, nil
}

// ResetIsolation removes what ApplyIsolation made for bridge: FORWARD's
// jumps to its chain, the chain and the namespace chains it jumps to. It
// is safe to run again, and on a host without iptables.
func (t Tables) ResetIsolation(ctx context.Context, bridge string) error {
	if len(t.Prefix) == 0 {
		if _, err := exec.LookPath("iptables"); err != nil {
			return nil // no iptables: no rules
		}
	}
	main := IsolationChain(bridge)
	out, err := t.iptables(ctx, "-S", "FORWARD")
	if err != nil {
		return fmt.Errorf("isolation rules for %s: %w", bridge, err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		args := ipt.SplitRule(line)
		if len(args) < 4 || args[0] != "-A" || args[len(args)-2] != "-j" || args[len(args)-1] != main {
			continue
		}
		if _, err := t.iptables(ctx, append([]string{"-D"}, args[1:]...)...); err != nil {
			errs = append(errs, err)
		}
	}
	exists, targets, err := t.isolationTargets(ctx, main)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolation rules for %s: %w", bridge, errors.Join(errs...))
	}
	if !exists {
		return nil
	}
	for _, c := range append([]string{main}, targets...) {
		_, _ = t.iptables(ctx, "-F", c)
	}
	for _, c := range append([]string{main}, targets...) {
		if _, err := t.iptables(ctx, "-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolation rules for %s: %w", bridge, errors.Join(errs...))
	}
	return nil
}
