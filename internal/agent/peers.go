package agent

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/shoal-dev/shoal/internal/api"
)

// What another node publishes on its Node decides what this node sends it
// and accepts from it: its subnet becomes a route and the allowed IPs of
// its WireGuard peer, its key names that peer. The servers refuse a subnet
// outside the cluster range or overlapping another node's, and a key
// another node publishes; the agent does not take that on trust, since a
// route to 8.8.8.0/30, or to half of another node's /24, would send that
// traffic to the node that asked for it.

// screenNodes is nodes less what this node must not believe of them, and
// why. Of two nodes whose subnets overlap, or that publish one key, the one
// that joined first (then the first by name) keeps it; this node's own
// subnet and key are never another's. A node whose subnet is refused is
// left out; one whose key is refused is kept without its overlay. cluster,
// when valid, is the range every subnet must lie inside.
func screenNodes(self string, nodes []*api.Node, cluster netip.Prefix) (kept []*api.Node, refused []string) {
	order := slices.Clone(nodes)
	slices.SortStableFunc(order, func(a, b *api.Node) int {
		if sa, sb := a.Metadata.Name == self, b.Metadata.Name == self; sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Metadata.CreatedAt.Compare(b.Metadata.CreatedAt), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	subnets := map[netip.Prefix]string{} // accepted: subnet -> node
	keys := map[string]string{}          // accepted: key -> node
	for _, n := range order {
		name := n.Metadata.Name
		if n.Spec.Subnet != "" {
			sn, err := netip.ParsePrefix(n.Spec.Subnet)
			if err != nil || !sn.Addr().Is4() || sn.Masked() != sn {
				refused = append(refused, fmt.Sprintf("node %s: subnet %q is not an IPv4 network", name, n.Spec.Subnet))
				continue
			}
			if cluster.IsValid() && (sn.Bits() < cluster.Bits() || !cluster.Contains(sn.Addr())) {
				refused = append(refused, fmt.Sprintf("node %s: subnet %s is outside the cluster range %s", name, sn, cluster))
				continue
			}
			if other, held, ok := overlapping(sn, subnets); ok {
				refused = append(refused, fmt.Sprintf("node %s: subnet %s overlaps node %s's %s", name, sn, other, held))
				continue
			}
			subnets[sn] = name
		}
		if ov := n.Status.Overlay; ov != nil && ov.PublicKey != "" {
			if other, dup := keys[ov.PublicKey]; dup {
				refused = append(refused, fmt.Sprintf("node %s: publishes node %s's WireGuard key", name, other))
				c := *n
				c.Status.Overlay = nil
				n = &c
			} else {
				keys[ov.PublicKey] = name
			}
		}
		kept = append(kept, n)
	}
	return kept, refused
}

func overlapping(p netip.Prefix, held map[netip.Prefix]string) (node string, q netip.Prefix, ok bool) {
	for h, n := range held {
		if h.Overlaps(p) && (!ok || h.String() < q.String()) {
			node, q, ok = n, h, true
		}
	}
	return node, q, ok
}
