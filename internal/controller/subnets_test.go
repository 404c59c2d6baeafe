package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestNodeSubnets: the node controller assigns free /24s of the cluster
// range, claims declared subnets as ranges, and refuses a declared one that
// overlaps another node's or lies outside the range, with an event naming
// why, leaving the other node's subnet and claim as they were.
func TestNodeSubnets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &Nodes{Store: h.st, Log: slog.New(slog.DiscardHandler), LeaseTimeout: time.Hour, LostAfter: time.Hour,
		ClusterCIDR: "10.244.0.0/16", Events: &Recorder{Store: h.st, Log: slog.New(slog.DiscardHandler), Source: "test"}}
	// Written straight to the store, as by a path that checked nothing.
	add := func(name, subnet string) {
		t.Helper()
		n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
			Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: subnet}}
		if err := h.st.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := c.Reconcile(ctx, name); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	add("assigned", "")
	add("declared", "10.244.1.0/24")
	add("half", "10.244.1.128/25")
	add("wide", "10.244.0.0/16")
	add("google", "8.8.8.0/30")
	add("small", "10.244.2.0/25")
	add("next", "")

	for name, want := range map[string]string{
		"assigned": "10.244.0.0/24",
		"declared": "10.244.1.0/24",
		"half":     "10.244.1.128/25", // as declared, but refused
		"small":    "10.244.2.0/25",
		"next":     "10.244.3.0/24", // not the /24 that small has half of
	} {
		if got := h.getNode(name).Spec.Subnet; got != want {
			t.Errorf("node %s: subnet %q, want %q", name, got, want)
		}
	}
	claims, err := h.st.PrefixClaims(ctx, store.NodeSubnetClaims)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, owner := range claims {
		got = append(got, owner+"="+p.String())
	}
	want := []string{"assigned=10.244.0.0/24", "declared=10.244.1.0/24", "next=10.244.3.0/24", "small=10.244.2.0/25"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("claims %v, want %v", got, want)
	}
	for node, msg := range map[string]string{
		"half":   "spec.subnet 10.244.1.128/25 overlaps node declared's subnet 10.244.1.0/24",
		"wide":   "spec.subnet 10.244.0.0/16 overlaps node ",
		"google": "spec.subnet 8.8.8.0/30 is outside the cluster range 10.244.0.0/16",
	} {
		h.eventually(10*time.Second, "a SubnetRefused event on node "+node+": "+msg, func() (bool, string) {
			objs, _, err := h.st.List(ctx, api.MustKind(api.KindEvent), api.DefaultNamespace)
			if err != nil {
				return false, err.Error()
			}
			var seen []string
			for _, o := range objs {
				ev := o.(*api.Event)
				if ev.Object == "Node/"+node {
					if ev.Reason == "SubnetRefused" && ev.Type == "Warning" && strings.Contains(ev.Message, msg) {
						return true, ""
					}
					seen = append(seen, ev.Reason+": "+ev.Message)
				}
			}
			return false, fmt.Sprint(seen)
		})
	}

	// A node that goes releases its claims; the range (and its WireGuard
	// key) is free again.
	if ok, err := h.st.Claim(ctx, store.OverlayKeyClaims+"KEY", "declared"); err != nil || !ok {
		t.Fatalf("claim a key: %v %v", ok, err)
	}
	if err := h.st.Delete(ctx, nodeKind, "", "declared", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx, "declared"); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx, "half"); err != nil {
		t.Fatal(err)
	}
	if claims, _ := h.st.PrefixClaims(ctx, store.NodeSubnetClaims); claims[netip.MustParsePrefix("10.244.1.128/25")] != "half" {
		t.Errorf("after node declared left, half's subnet is not claimed for it: %v", claims)
	}
	if keys, _ := h.st.Claims(ctx, store.OverlayKeyClaims); len(keys) != 0 {
		t.Errorf("after node declared left, its key claims stay: %v", keys)
	}
}
