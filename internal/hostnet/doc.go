// Package hostnet holds the node's host-network rules that are pure
// policy: what containers on the node's bridge may reach (the egress
// rules), and which namespaces' containers may reach each other (the
// isolation rules). It is a plan — a pure function from the node's network
// configuration to filter rules, with a model that says what the rules
// decide for a packet — and an applier that writes the plan into the
// host's filter table and removes it again.
//
// It owns, per bridge BR:
//
//	filter SHOAL-EGRESS-BR   jumped to from FORWARD -i BR: what containers
//	                         reach past the node (other containers, the
//	                         internet; not private or link-local ranges)
//	filter SHOAL-HOST-BR     jumped to from INPUT -i BR: what containers
//	                         reach of the node itself (DNS on the bridge
//	                         address, the service proxy, published ports)
//	filter SHOAL-ISO-BR      jumped to from FORWARD: packets between an
//	                         isolated namespace's containers and other
//	                         cluster addresses, rejected; it jumps per
//	                         container address to its namespace's chains
//	filter SHOAL-ISO-H-S/-D  (H: a hash of BR and the namespace) the
//	                         namespace's members, then the cluster range
//	                         rejected
//
// The isolation rules are written by the service proxy, which watches
// every Instance and Namespace; the egress rules by the runtime driver.
//
// Allowed packets RETURN to the built-in chain, so whatever the host's own
// firewall says after our jump still applies; refused ones are rejected
// (icmp admin-prohibited), so a client fails at once instead of waiting
// for a timeout.
//
// It does not make the bridge, addresses, routes or NAT rules: those
// belong to the runtime driver (bridge, masquerade), the service proxy
// (service and published-port DNAT) and the overlay.
package hostnet
