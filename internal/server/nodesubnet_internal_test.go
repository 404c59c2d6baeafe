package server

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestAdmitNodeSubnet: what every Node write may do to spec.subnet.
func TestAdmitNodeSubnet(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Start(t)
	s := New(Config{Store: st, Log: slog.New(slog.DiscardHandler), ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")})
	ctx := context.Background()
	node := func(name, subnet string) *api.Node {
		return &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: subnet}}
	}
	if _, err := s.admitNodeSubnet(ctx, nil, node("a", "10.244.1.0/24")); err != nil {
		t.Fatal(err)
	}
	stored := node("a", "10.244.1.0/24")
	for _, tc := range []struct {
		name      string
		cur, next *api.Node
		want      string // in the error; "" for none
		subnet    string // next's subnet after the check
	}{
		{"create with one's own claim again", nil, node("a", "10.244.1.0/24"), "", "10.244.1.0/24"},
		{"update keeps the subnet", stored, node("a", "10.244.1.0/24"), "", "10.244.1.0/24"},
		{"update without a subnet keeps it", stored, node("a", ""), "", "10.244.1.0/24"},
		{"update to another subnet", stored, node("a", "10.244.9.0/24"), `spec.subnet: "10.244.9.0/24": node a has subnet 10.244.1.0/24; a node's subnet never changes once set`, ""},
		{"update to a wider one", stored, node("a", "10.244.0.0/16"), "never changes once set", ""},
		{"create overlapping a", nil, node("b", "10.244.1.64/26"), `Node "b": spec.subnet: 10.244.1.64/26 overlaps node a's subnet 10.244.1.0/24`, ""},
		{"set on a node without one, overlapping a", node("b", ""), node("b", "10.244.0.0/23"), "overlaps node a's subnet 10.244.1.0/24", ""},
		{"create outside the cluster", nil, node("b", "192.168.1.0/24"), "spec.subnet: 192.168.1.0/24 is outside the cluster range 10.244.0.0/16", ""},
		{"create around the cluster", nil, node("b", "10.0.0.0/8"), "is outside the cluster range", ""},
		{"create next to a", nil, node("c", "10.244.2.0/24"), "", "10.244.2.0/24"},
		{"create without a subnet", nil, node("d", ""), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.admitNodeSubnet(ctx, tc.cur, tc.next)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			case tc.want == "" && tc.next.Spec.Subnet != tc.subnet:
				t.Fatalf("subnet %q after the check, want %q", tc.next.Spec.Subnet, tc.subnet)
			}
		})
	}
	claims, err := st.PrefixClaims(ctx, store.NodeSubnetClaims)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 || claims[netip.MustParsePrefix("10.244.1.0/24")] != "a" || claims[netip.MustParsePrefix("10.244.2.0/24")] != "c" {
		t.Errorf("claims %v, want a's 10.244.1.0/24 and c's 10.244.2.0/24", claims)
	}
	// release undoes the claim of a write that did not happen.
	release, err := s.admitNodeSubnet(ctx, nil, node("e", "10.244.5.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	if _, err := s.admitNodeSubnet(ctx, nil, node("f", "10.244.5.0/25")); err != nil {
		t.Errorf("after release, another node's claim inside it: %v", err)
	}
}
