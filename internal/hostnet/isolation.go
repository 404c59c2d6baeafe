package hostnet

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// IsolationConfig is what the isolation plan depends on: the node's view
// of the cluster's container addresses.
type IsolationConfig struct {
	// Bridge names the chains (several agents on one machine keep
	// distinct ones); the plan does not match on it.
	Bridge string
	// Cluster are the ranges that hold the cluster's containers (the
	// servers' --cluster-cidr, or every node's subnet): an isolated
	// namespace neither reaches nor is reached from an address in them
	// that is not its own.
	Cluster []netip.Prefix
	// Nodes are the nodes' own addresses inside the cluster range (each
	// subnet's first address, the source of what a node sends through the
	// overlay: its service proxy, published ports, probes). Packets from
	// them pass, unless they come in on the bridge (where only containers
	// are, and a container could forge one).
	Nodes []netip.Addr
	// Isolated maps each namespace that asked for isolation to its
	// containers' addresses, cluster-wide.
	Isolated map[string][]netip.Addr
}

// Chain is one filter chain of a plan.
type Chain struct {
	Name  string
	Rules []Rule
}

// IsolationPlan is the isolation rules of one node: the first chain is
// jumped to from FORWARD (every interface: a container's packets to
// another node, and another node's to a container here, with
// br_netfilter also those between two containers of the bridge), the
// others are per-namespace chains it jumps to.
type IsolationPlan struct {
	Bridge string
	Chains []Chain
}

// IsolationChain is the filter chain FORWARD jumps to for bridge.
func IsolationChain(bridge string) string { return "SHOAL-ISO-" + bridge }

// memberChain names a namespace's chain ("S": packets from its
// containers, "D": to them), unique per bridge and at most 22 bytes.
func memberChain(bridge, ns, dir string) string {
	h := sha256.Sum256([]byte(bridge + "\x00" + ns))
	return "SHOAL-ISO-" + hex.EncodeToString(h[:5]) + "-" + dir
}

// PlanIsolation is the plan for cfg. For each isolated namespace X:
//
//   - a packet from an address of X to a cluster address not of X is
//     rejected;
//   - a packet to an address of X from a cluster address not of X is
//     rejected, the nodes' own addresses excepted;
//   - replies of allowed connections pass (RELATED,ESTABLISHED first).
//
// Everything else returns to FORWARD, where the egress rules and the
// host's firewall decide as before: X still reaches the internet, DNS on
// its bridge (INPUT, not forwarded) and other containers of X. Service
// addresses and published ports are DNATed in PREROUTING, before FORWARD,
// so their endpoints are judged as containers. A client from outside the
// cluster range (a published port's) is not judged at all.
func PlanIsolation(cfg IsolationConfig) (IsolationPlan, error) {
	if cfg.Bridge == "" || len(cfg.Bridge) > 15 {
		return IsolationPlan{}, fmt.Errorf("isolation rules: bridge %q: want a Linux interface name of 1 to 15 bytes", cfg.Bridge)
	}
	cluster := make([]netip.Prefix, 0, len(cfg.Cluster))
	for _, c := range cfg.Cluster {
		if !c.IsValid() || !c.Addr().Is4() {
			return IsolationPlan{}, fmt.Errorf("isolation rules: cluster range %v: want an IPv4 CIDR", c)
		}
		cluster = append(cluster, c.Masked())
	}
	slices.SortFunc(cluster, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits())
	})
	cluster = slices.Compact(cluster)
	if len(cfg.Isolated) > 0 && len(cluster) == 0 {
		return IsolationPlan{}, fmt.Errorf("isolation rules: namespaces %v ask for isolation, but no cluster range is known", slices.Sorted(maps.Keys(cfg.Isolated)))
	}

	main := Chain{Name: IsolationChain(cfg.Bridge), Rules: []Rule{{State: Reply}}}
	if len(cfg.Isolated) == 0 {
		return IsolationPlan{Bridge: cfg.Bridge, Chains: []Chain{main}}, nil
	}
	for _, n := range sortedAddrs(cfg.Nodes) {
		main.Rules = append(main.Rules, Rule{Src: host(n), NotIn: cfg.Bridge})
	}
	var members []Chain
	// An address in two namespaces' lists (a stale status) belongs to the
	// first by name: one jump per address and direction.
	seen := map[netip.Addr]bool{}
	for _, ns := range slices.Sorted(maps.Keys(cfg.Isolated)) {
		ips := sortedAddrs(cfg.Isolated[ns])
		src := Chain{Name: memberChain(cfg.Bridge, ns, "S")}
		dst := Chain{Name: memberChain(cfg.Bridge, ns, "D")}
		for _, ip := range ips {
			if !ip.Is4() {
				continue
			}
			src.Rules = append(src.Rules, Rule{Dst: host(ip)})
			dst.Rules = append(dst.Rules, Rule{Src: host(ip)})
			if !seen[ip] {
				seen[ip] = true
				main.Rules = append(main.Rules, Rule{Src: host(ip), Jump: src.Name}, Rule{Dst: host(ip), Jump: dst.Name})
			}
		}
		for _, c := range cluster {
			src.Rules = append(src.Rules, Rule{Dst: c, Reject: true})
			dst.Rules = append(dst.Rules, Rule{Src: c, Reject: true})
		}
		members = append(members, src, dst)
	}
	return IsolationPlan{Bridge: cfg.Bridge, Chains: append([]Chain{main}, members...)}, nil
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a.Unmap(), 32) }

func sortedAddrs(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if a.IsValid() {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Allows says whether the plan lets a forwarded packet through, as the
// kernel decides: the first matching rule of a chain decides, a jump
// continues after itself when the chain it leads to returns, and a packet
// that falls off the first chain returns to FORWARD (allowed).
func (p IsolationPlan) Allows(pkt Packet) bool {
	chains := map[string][]Rule{}
	for _, c := range p.Chains {
		chains[c.Name] = c.Rules
	}
	var walk func(name string, depth int) (verdict, decided bool)
	walk = func(name string, depth int) (bool, bool) {
		if depth > 8 {
			panic("isolation plan: chains loop")
		}
		for _, r := range chains[name] {
			if !r.matches(pkt) {
				continue
			}
			if r.Jump != "" {
				if v, ok := walk(r.Jump, depth+1); ok {
					return v, true
				}
				continue
			}
			if r.Reject {
				return false, true
			}
			return true, false // RETURN
		}
		return true, false
	}
	if len(p.Chains) == 0 {
		return true
	}
	v, _ := walk(p.Chains[0].Name, 0)
	return v
}

// Lines is the plan as `iptables -S` prints the chains' rules: per chain,
// a "-N" line, then its rules in order.
func (p IsolationPlan) Lines() []string {
	var out []string
	for _, c := range p.Chains {
		out = append(out, "-N "+c.Name)
		for _, r := range c.Rules {
			out = append(out, "-A "+c.Name+" "+joinArgs(r.args()))
		}
	}
	return out
}

// isolationJump is FORWARD's rule that leads to the plan's first chain.
func isolationJump(bridge string) jump {
	return jump{"FORWARD", "-m", "comment", "--comment", "shoal isolation " + bridge, "-j", IsolationChain(bridge)}
}
