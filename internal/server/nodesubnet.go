package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// A node's subnet is where its containers' addresses come from, and what
// every other node routes to it and accepts from it through the overlay.
// So a subnet must lie inside the cluster range and overlap no other
// node's, and it never changes once the node has one: a node that could
// declare 8.8.8.0/30, or half of another node's /24, would receive that
// traffic.

// admitNodeSubnet checks the subnet of a Node about to be written: cur is
// the stored Node (nil when it is created), next what will be stored. A
// subnet already set stays (an empty one in next keeps cur's); a new one
// must lie inside the cluster range and is claimed for the node in the
// store, so that no other node can be given an address of it, even by a
// write racing this one. release, never nil, undoes this call's claim:
// call it when the write does not happen.
//
// Every write path that stores a Node must call it: join, create, update
// and apply.
func (s *Server) admitNodeSubnet(ctx context.Context, cur, next *api.Node) (release func(), err error) {
	release = func() {}
	name := next.Metadata.Name
	want := next.Spec.Subnet
	if cur != nil && cur.Spec.Subnet != "" {
		switch want {
		case "":
			next.Spec.Subnet = cur.Spec.Subnet
			return release, nil
		case cur.Spec.Subnet:
			return release, nil
		}
		return release, subnetInvalid(name, "%s: node %s has subnet %s; a node's subnet never changes once set (its containers and every other node's routes use it): remove the node and join it again to give it another",
			quoteSubnet(want), name, cur.Spec.Subnet)
	}
	if want == "" {
		return release, nil // the controller assigns one
	}
	sn, err := netip.ParsePrefix(want)
	if err != nil || !sn.Addr().Is4() || sn.Masked() != sn {
		return release, subnetInvalid(name, "%s is not an IPv4 network such as 10.244.3.0/24", quoteSubnet(want))
	}
	if c := s.clusterCIDR; c.IsValid() && !(sn.Bits() >= c.Bits() && c.Contains(sn.Addr())) {
		return release, subnetInvalid(name, "%s is outside the cluster range %s (the servers' --cluster-cidr): declare a subnet inside it, or none to have one assigned", want, c)
	}
	claimed, err := s.store.ClaimPrefix(ctx, store.NodeSubnetClaims, sn, name)
	var clash *store.PrefixConflict
	switch {
	case errors.As(err, &clash):
		return release, subnetInvalid(name, "%s overlaps node %s's subnet %s: declare one that overlaps no other node's (or none to have one assigned)", want, clash.Owner, clash.Held)
	case err != nil:
		return release, err
	}
	if claimed {
		release = func() {
			if err := s.store.UnclaimPrefix(context.WithoutCancel(ctx), store.NodeSubnetClaims, sn, name); err != nil {
				s.log.Warn("release the subnet claim of a node that was not written", "node", name, "subnet", sn, "err", err)
			}
		}
	}
	return release, nil
}

func subnetInvalid(node, format string, args ...any) error {
	return &api.InvalidError{Kind: api.KindNode, Name: node, Errors: []api.FieldError{{Path: "spec.subnet", Message: fmt.Sprintf(format, args...)}}}
}

func quoteSubnet(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}
