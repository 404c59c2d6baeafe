package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// DefaultClusterCIDR is where nodes' container subnets come from, a /24
// each, unless an agent declares its own with --subnet.
const DefaultClusterCIDR = "10.244.0.0/16"

// legacySubnetClaims is where claims compared subnets as strings, before
// prefix claims; only released now.
const legacySubnetClaims = "subnets/"

// ensureSubnet gives a node a container subnet that overlaps no other
// node's. A subnet the node declared must lie inside the cluster range and
// is claimed as a range (the server admitting the write claimed it
// already; this claims what came in before that, or by another way); one
// that cannot be is refused: a Warning event on the node says why, no
// claim is made, and agents route nothing to it. A node without a subnet
// gets the first free /24 of the cluster range.
func (c *Nodes) ensureSubnet(ctx context.Context, node *api.Node) error {
	name := node.Metadata.Name
	cluster, err := netip.ParsePrefix(c.clusterCIDR())
	if err != nil || !cluster.Addr().Is4() || cluster.Bits() > 24 {
		return fmt.Errorf("cluster CIDR %q: want an IPv4 range of /24 or larger", c.clusterCIDR())
	}
	cluster = cluster.Masked()
	used, err := c.Store.PrefixClaims(ctx, store.NodeSubnetClaims)
	if err != nil {
		return err
	}
	if sn := node.Spec.Subnet; sn != "" {
		// Claims of this node's other than its subnet were made by a write
		// that did not happen or an assignment that lost to it.
		for p, owner := range used {
			if owner == name && p.String() != sn {
				if err := c.Store.UnclaimPrefix(ctx, store.NodeSubnetClaims, p, name); err != nil {
					return err
				}
			}
		}
		if p, err := netip.ParsePrefix(sn); err == nil && used[p] == name {
			return nil // claimed already
		}
		why, err := c.claimDeclared(ctx, name, sn, cluster)
		if why != "" {
			c.Log.Warn("node subnet refused", "node", name, "subnet", sn, "reason", why)
			c.Events.Record(ctx, node, "Warning", "SubnetRefused", why)
		}
		return err
	}
	subnet := ""
	for p, owner := range used {
		if owner == name {
			subnet = p.String() // claimed before a crash, not yet recorded
		}
	}
	for p := netip.PrefixFrom(cluster.Addr(), 24); subnet == "" && cluster.Contains(p.Addr()); p = nextSlash24(p) {
		if overlapsAny(p, used) {
			continue
		}
		ok, err := c.Store.ClaimPrefix(ctx, store.NodeSubnetClaims, p, name)
		if errors.Is(err, store.ErrConflict) {
			continue // taken since the list
		}
		if err != nil {
			return err
		}
		if ok {
			subnet = p.String()
		}
	}
	if subnet == "" {
		return fmt.Errorf("cluster CIDR %s has no free /24 left for node %s", cluster, name)
	}
	written, err := c.Store.Mutate(ctx, nodeKind, "", name, func(o api.Object) error {
		n := o.(*api.Node)
		if n.Spec.Subnet != "" {
			return errStale
		}
		n.Spec.Subnet = subnet
		return nil
	})
	if errors.Is(err, errStale) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		readerOf(c.Cache, c.Store).wrote(api.KindNode, written.GetMeta().Revision)
		c.Log.Info("node subnet assigned", "node", name, "subnet", subnet)
	}
	return err
}

// claimDeclared claims the subnet a node declared, or says why it cannot
// be the node's ("" when it is).
func (c *Nodes) claimDeclared(ctx context.Context, name, declared string, cluster netip.Prefix) (string, error) {
	sn, err := netip.ParsePrefix(declared)
	if err != nil || !sn.Addr().Is4() || sn.Masked() != sn {
		return fmt.Sprintf("spec.subnet %q is not an IPv4 network such as 10.244.3.0/24", declared), nil
	}
	if sn.Bits() < cluster.Bits() || !cluster.Contains(sn.Addr()) {
		return fmt.Sprintf("spec.subnet %s is outside the cluster range %s: no node routes to it; remove the node and join it again with a subnet inside the range, or none", sn, cluster), nil
	}
	_, err = c.Store.ClaimPrefix(ctx, store.NodeSubnetClaims, sn, name)
	var clash *store.PrefixConflict
	if errors.As(err, &clash) {
		return fmt.Sprintf("spec.subnet %s overlaps node %s's subnet %s: no node routes to it; remove the node and join it again with a subnet of its own, or none", sn, clash.Owner, clash.Held), nil
	}
	return "", err
}

func overlapsAny(p netip.Prefix, used map[netip.Prefix]string) bool {
	for q := range used {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// releaseSubnet frees the subnets of a node that is gone, and its other
// claims.
func (c *Nodes) releaseSubnet(ctx context.Context, name string) error {
	used, err := c.Store.PrefixClaims(ctx, store.NodeSubnetClaims)
	if err != nil {
		return err
	}
	for p, owner := range used {
		if owner == name {
			if err := c.Store.UnclaimPrefix(ctx, store.NodeSubnetClaims, p, name); err != nil {
				return err
			}
		}
	}
	// And the WireGuard keys it published (see server.admitOverlayKey).
	for _, prefix := range []string{legacySubnetClaims, store.OverlayKeyClaims} {
		claims, err := c.Store.Claims(ctx, prefix)
		if err != nil {
			return err
		}
		for k, owner := range claims {
			if owner == name {
				if err := c.Store.Unclaim(ctx, prefix+k, owner); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func nextSlash24(p netip.Prefix) netip.Prefix {
	b := p.Addr().As4()
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8) + 256
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

func (c *Nodes) clusterCIDR() string {
	if c.ClusterCIDR != "" {
		return c.ClusterCIDR
	}
	return DefaultClusterCIDR
}
