package hostnet

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// EgressConfig is what the egress plan depends on: the node's container
// network and the ports its service proxy and runtime open.
type EgressConfig struct {
	// Bridge is the containers' Linux bridge (at most 15 bytes).
	Bridge string
	// Subnet is this node's container subnet; its first address is the
	// bridge's (the gateway, where DNS and the service proxy listen).
	Subnet netip.Prefix
	// Cluster holds every node's container subnet (the servers'
	// --cluster-cidr). Zero: containers reach only this node's subnet
	// among the private ranges.
	Cluster netip.Prefix
	// NodePorts is the node owner's publish range: the ports published
	// ports and hostPorts are opened on. Zero: none.
	NodePorts PortRange
}

// PortRange is an inclusive range of ports; zero is none.
type PortRange struct{ First, Last uint16 }

func (r PortRange) empty() bool { return r.First == 0 || r.Last < r.First }

// Refused are the ranges containers do not reach past the node (their
// own subnet and the cluster range excepted): RFC 1918 private networks,
// CGNAT shared space (RFC 6598) and link-local, which holds cloud
// metadata services (169.254.169.254).
var Refused = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
}

// Rule is one rule of an egress chain: its matches (zero values match
// anything) and whether it returns (allow) or rejects.
type Rule struct {
	// State matches the connection's conntrack state: Reply (a packet of
	// a connection that something other than the container opened, or
	// related to one) or DNATed (a connection whose destination a nat
	// rule of the node rewrote).
	State State
	Src   netip.Prefix
	Dst   netip.Prefix
	// NotIn matches packets that did not come in on this interface.
	NotIn string
	Proto string // "tcp" or "udp"
	Ports PortRange
	// Reject refuses the packet; otherwise it returns to the built-in
	// chain, where the host's own rules decide as before.
	Reject bool
	// Jump, when set, sends the packet to that chain: a RETURN there (or
	// its end) comes back to the next rule here.
	Jump string
}

// State is a conntrack state a rule matches.
type State int

const (
	AnyState State = iota
	Reply          // RELATED,ESTABLISHED
	DNATed         // DNAT
)

// Plan is the egress rules for one bridge: the chain for packets the node
// forwards from containers, and the one for packets from containers to
// the node itself.
type Plan struct {
	Bridge  string
	Forward []Rule // chain ForwardChain(Bridge), from FORWARD -i Bridge
	Host    []Rule // chain HostChain(Bridge), from INPUT -i Bridge
}

// ForwardChain is the filter chain of what containers on bridge reach past
// the node; HostChain is the one of what they reach of the node itself.
func ForwardChain(bridge string) string { return "SHOAL-EGRESS-" + bridge }
func HostChain(bridge string) string    { return "SHOAL-HOST-" + bridge }

// EgressPlan is the plan for cfg. By default containers reach:
//
//   - past the node: other containers (this node's subnet, the cluster
//     range) and every address outside the Refused ranges; replies of
//     connections opened from elsewhere (a client of a published port, a
//     probe of the node) always;
//   - the node itself (any of its addresses): DNS on the bridge address,
//     the service proxy's listeners that a service address was DNATed
//     to, and the publish range (published ports the proxy answers
//     itself); nothing else, so no service of the host is reachable.
//
// Service addresses and published ports that the kernel forwards are
// DNATed before these chains see the packet (PREROUTING), so the chains
// judge the endpoint they lead to, a container. An address in the
// service range that no rule translated is not a service, and is judged
// like any other.
func EgressPlan(cfg EgressConfig) (Plan, error) {
	if cfg.Bridge == "" || len(cfg.Bridge) > 15 {
		return Plan{}, fmt.Errorf("egress rules: bridge %q: want a Linux interface name of 1 to 15 bytes", cfg.Bridge)
	}
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() {
		return Plan{}, fmt.Errorf("egress rules: subnet %v: want an IPv4 CIDR", cfg.Subnet)
	}
	if cfg.Cluster.IsValid() && !cfg.Cluster.Addr().Is4() {
		return Plan{}, fmt.Errorf("egress rules: cluster range %v: want an IPv4 CIDR", cfg.Cluster)
	}
	subnet := cfg.Subnet.Masked()
	gw := netip.PrefixFrom(subnet.Addr().Next(), 32)

	p := Plan{Bridge: cfg.Bridge}
	p.Forward = append(p.Forward, Rule{State: Reply}, Rule{Dst: subnet})
	if cfg.Cluster.IsValid() {
		p.Forward = append(p.Forward, Rule{Dst: cfg.Cluster.Masked()})
	}
	for _, r := range Refused {
		p.Forward = append(p.Forward, Rule{Dst: r, Reject: true})
	}

	p.Host = []Rule{
		{State: Reply},
		{State: DNATed, Dst: gw}, // a service address led to the proxy's own listener
		{Dst: gw, Proto: "udp", Ports: PortRange{53, 53}},
		{Dst: gw, Proto: "tcp", Ports: PortRange{53, 53}},
	}
	if !cfg.NodePorts.empty() {
		p.Host = append(p.Host, Rule{Proto: "tcp", Ports: cfg.NodePorts})
	}
	p.Host = append(p.Host, Rule{Reject: true})
	return p, nil
}

// Packet is what the model of the rules looks at: the first packet of a
// connection from a container, after the node's nat rules (Dst is where a
// DNAT sent it).
type Packet struct {
	// ToNode: Dst is one of the node's own addresses (the packet goes to
	// INPUT, not FORWARD).
	ToNode bool
	Src    netip.Addr // a container's; only the isolation rules look at it
	In     string     // the interface it came in on; only the isolation rules look at it
	Dst    netip.Addr
	Proto  string
	Port   uint16
	State  State // AnyState for a new connection of the container's own
}

// Allows says whether the plan lets p through, as the kernel would decide
// with the rules Apply writes: the first rule that matches decides, and a
// packet that none matches returns to the built-in chain (allowed).
func (p Plan) Allows(pkt Packet) bool {
	chain := p.Forward
	if pkt.ToNode {
		chain = p.Host
	}
	for _, r := range chain {
		if r.matches(pkt) {
			return !r.Reject
		}
	}
	return true
}

func (r Rule) matches(p Packet) bool {
	switch {
	case r.State != AnyState && r.State != p.State:
		return false
	case r.Src.IsValid() && !r.Src.Contains(p.Src):
		return false
	case r.NotIn != "" && r.NotIn == p.In:
		return false
	case r.Dst.IsValid() && !r.Dst.Contains(p.Dst):
		return false
	case r.Proto != "" && r.Proto != p.Proto:
		return false
	case !r.Ports.empty() && (p.Port < r.Ports.First || p.Port > r.Ports.Last):
		return false
	}
	return true
}

// args is the rule as `iptables -S CHAIN` prints it, after "-A CHAIN".
func (r Rule) args() []string {
	var a []string
	if r.Src.IsValid() {
		a = append(a, "-s", r.Src.String())
	}
	if r.Dst.IsValid() {
		a = append(a, "-d", r.Dst.String())
	}
	if r.NotIn != "" {
		a = append(a, "!", "-i", r.NotIn)
	}
	if r.Proto != "" {
		a = append(a, "-p", r.Proto)
		if !r.Ports.empty() {
			ports := strconv.Itoa(int(r.Ports.First))
			if r.Ports.Last != r.Ports.First {
				ports += ":" + strconv.Itoa(int(r.Ports.Last))
			}
			a = append(a, "-m", r.Proto, "--dport", ports)
		}
	}
	switch r.State {
	case Reply:
		a = append(a, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
	case DNATed:
		a = append(a, "-m", "conntrack", "--ctstate", "DNAT")
	}
	switch {
	case r.Jump != "":
		return append(a, "-j", r.Jump)
	case r.Reject:
		return append(a, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	}
	return append(a, "-j", "RETURN")
}

// jump is a rule of a built-in chain that leads to one of ours, as
// `iptables -S` prints it after "-A".
type jump []string

// jumps are the rules of INPUT and FORWARD that lead to the plan's chains.
func jumps(bridge string) []jump {
	comment := []string{"-m", "comment", "--comment", "shoal egress " + bridge}
	return []jump{
		append(append([]string{"FORWARD", "-i", bridge}, comment...), "-j", ForwardChain(bridge)),
		append(append([]string{"INPUT", "-i", bridge}, comment...), "-j", HostChain(bridge)),
	}
}

// Lines is the plan as `iptables -S` prints the chains' rules: one "-N"
// per chain, then its rules in order.
func (p Plan) Lines() []string {
	var out []string
	for _, c := range []struct {
		name  string
		rules []Rule
	}{{ForwardChain(p.Bridge), p.Forward}, {HostChain(p.Bridge), p.Host}} {
		out = append(out, "-N "+c.name)
		for _, r := range c.rules {
			out = append(out, "-A "+c.name+" "+joinArgs(r.args()))
		}
	}
	return out
}

// joinArgs joins arguments as iptables -S prints them: one with a space
// (a comment) in double quotes.
func joinArgs(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsRune(a, ' ') {
			a = strconv.Quote(a)
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
