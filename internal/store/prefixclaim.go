package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix claims hand out address ranges so that no two owners ever hold
// ranges that overlap, whatever their sizes: a /25 inside another's /24 is
// as much a clash as the same /24.
//
// A range is stored under the bits of its prefix, one character a bit
// ("10.0.0.0/8" is "00001010"), so the ranges a claim overlaps are exactly
// the keys on the path from the root to it (the ranges that contain it)
// and the keys below it (the ranges it contains). One transaction checks
// that all of them are free and writes the claim: of two overlapping
// claims made at once, one wins and the other sees the winner.

// PrefixConflict is the error of a prefix claim that overlaps another
// owner's range. It wraps ErrConflict.
type PrefixConflict struct {
	Prefix netip.Prefix // the range that was asked for
	Held   netip.Prefix // the range it overlaps
	Owner  string       // who holds Held
}

func (e *PrefixConflict) Error() string {
	return fmt.Sprintf("%s overlaps %s, held by %s", e.Prefix, e.Held, e.Owner)
}

func (e *PrefixConflict) Unwrap() error { return ErrConflict }

func prefixClaimKey(space string, bits string) string {
	return "/shoal-claims/" + space + "/" + bits
}

// prefixBits spells the network part of an IPv4 prefix as '0's and '1's.
func prefixBits(p netip.Prefix) (string, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return "", fmt.Errorf("prefix claim %s: want an IPv4 range", p)
	}
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	var sb strings.Builder
	for i := range p.Bits() {
		if v&(1<<(31-i)) != 0 {
			sb.WriteByte('1')
		} else {
			sb.WriteByte('0')
		}
	}
	return sb.String(), nil
}

func prefixFromBits(bits string) (netip.Prefix, error) {
	if len(bits) > 32 || strings.Trim(bits, "01") != "" {
		return netip.Prefix{}, fmt.Errorf("prefix claim key %q is not a bit string", bits)
	}
	var v uint32
	for i, c := range bits {
		if c == '1' {
			v |= 1 << (31 - i)
		}
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), len(bits)), nil
}

// ClaimPrefix claims the IPv4 range p in space for owner, unless a range
// that overlaps it (contains it, or lies inside it) is claimed already.
// It reports whether this call made the claim (false: owner held p
// already). A range another owner holds, or another range of owner's own,
// is a *PrefixConflict naming it.
func (s *Store) ClaimPrefix(ctx context.Context, space string, p netip.Prefix, owner string) (bool, error) {
	bits, err := prefixBits(p)
	if err != nil {
		return false, err
	}
	p = p.Masked()
	var cmps []clientv3.Cmp
	var gets []clientv3.Op
	for l := range len(bits) {
		k := prefixClaimKey(space, bits[:l])
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		gets = append(gets, clientv3.OpGet(k))
	}
	self := prefixClaimKey(space, bits)
	// Over a range of keys the compare holds when no key is in it.
	cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(self), "=", 0).WithPrefix())
	gets = append(gets, clientv3.OpGet(self, clientv3.WithPrefix(), clientv3.WithLimit(2)))
	resp, err := s.commit(ctx, cmps, []clientv3.Op{clientv3.OpPut(self, owner)}, gets)
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	var conflict *PrefixConflict
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			key, held := string(kv.Key), string(kv.Value)
			if key == self && held == owner {
				continue
			}
			hp, err := prefixFromBits(strings.TrimPrefix(key, prefixClaimKey(space, "")))
			if err != nil {
				return false, err
			}
			// Another owner's range is named before one of owner's own.
			if conflict == nil || conflict.Owner == owner && held != owner {
				conflict = &PrefixConflict{Prefix: p, Held: hp, Owner: held}
			}
		}
	}
	if conflict != nil {
		return false, conflict
	}
	return false, nil // owner held p already
}

// PrefixClaims lists the ranges claimed in space and their owners.
func (s *Store) PrefixClaims(ctx context.Context, space string) (map[netip.Prefix]string, error) {
	root := prefixClaimKey(space, "")
	resp, err := s.cli.Get(ctx, root, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Prefix]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		p, err := prefixFromBits(strings.TrimPrefix(string(kv.Key), root))
		if err != nil {
			return nil, err
		}
		out[p] = string(kv.Value)
	}
	return out, nil
}

// UnclaimPrefix releases p in space if owner holds it.
func (s *Store) UnclaimPrefix(ctx context.Context, space string, p netip.Prefix, owner string) error {
	bits, err := prefixBits(p)
	if err != nil {
		return err
	}
	k := prefixClaimKey(space, bits)
	_, err = s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", owner)}, []clientv3.Op{clientv3.OpDelete(k)}, nil)
	return err
}

// NodeSubnetClaims is the prefix-claim space of nodes' container subnets
// (owner: the node's name), shared by the servers that admit a declared
// subnet and the controller that assigns the others.
const NodeSubnetClaims = "node-subnets"

// OverlayKeyClaims is the claim prefix of the WireGuard public keys nodes
// publish (key: the base64 key; owner: the node's name), so that no two
// nodes publish one.
const OverlayKeyClaims = "overlay-keys/"
