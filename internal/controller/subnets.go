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

const subnetClaims = "subnets/"

// ensureSubnet gives a node a container subnet no other node has. A subnet
// the agent declared is claimed as it is (a clash is a Warning event on the node);
// a node without one gets the first free /24 of the cluster range.
func (c *Nodes) ensureSubnet(ctx context.Context, node *api.Node) error {
	name := node.Metadata.Name
	if sn := node.Spec.Subnet; sn != "" {
		ok, err := c.Store.Claim(ctx, subnetClaims+sn, name)
		if err != nil || ok {
			return err
		}
		c.Log.Warn("node declares a subnet another node has", "node", name, "subnet", sn)
		if c.Events != nil {
			c.Events.Record(ctx, node, "Warning", "SubnetClash", fmt.Sprintf("subnet %s is another node's too: give this node's agent another --subnet", sn))
		}
		return nil
	}
	cluster, err := netip.ParsePrefix(c.clusterCIDR())
	if err != nil || !cluster.Addr().Is4() || cluster.Bits() > 24 {
		return fmt.Errorf("cluster CIDR %q: want an IPv4 range of /24 or larger", c.clusterCIDR())
	}
	used, err := c.Store.Claims(ctx, subnetClaims)
	if err != nil {
		return err
	}
	subnet := ""
	for sn, owner := range used {
		if owner == name {
			subnet = sn // claimed before a crash, not yet recorded
		}
	}
	for p := netip.PrefixFrom(cluster.Masked().Addr(), 24); subnet == "" && cluster.Contains(p.Addr()); p = nextSlash24(p) {
		if _, taken := used[p.String()]; taken {
			continue
		}
		ok, err := c.Store.Claim(ctx, subnetClaims+p.String(), name)
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
	_, err = c.Store.Mutate(ctx, nodeKind, "", name, func(o api.Object) error {
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
		c.Log.Info("node subnet assigned", "node", name, "subnet", subnet)
	}
	return err
}

// releaseSubnet frees the subnets of a node that is gone.
func (c *Nodes) releaseSubnet(ctx context.Context, name string) error {
	used, err := c.Store.Claims(ctx, subnetClaims)
	if err != nil {
		return err
	}
	for sn, owner := range used {
		if owner == name {
			if err := c.Store.Unclaim(ctx, subnetClaims+sn, owner); err != nil {
				return err
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
