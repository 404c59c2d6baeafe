package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestAdmitOverlayKey: a Node status that publishes a WireGuard key
// another node already publishes is refused, naming the field and the
// other node; a node's own key, unchanged or rotated, is fine, and a
// rotated-away key is free again.
func TestAdmitOverlayKey(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Start(t)
	ctx := context.Background()
	// Two servers: each claims in the store, whatever the other remembers.
	s1 := New(Config{Store: st, Log: slog.New(slog.DiscardHandler)})
	s2 := New(Config{Store: st, Log: slog.New(slog.DiscardHandler)})
	const k1, k2, k3 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=", "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA="
	node := func(name, uid, key string) *api.Node {
		n := &api.Node{Metadata: api.ObjectMeta{Name: name, UID: uid}}
		if key != "" {
			n.Status.Overlay = &api.NodeOverlay{PublicKey: key, Endpoint: "192.0.2.1:51820"}
		}
		return n
	}
	stored := map[string]*api.Node{"a": node("a", "ua", ""), "b": node("b", "ub", "")}
	for _, tc := range []struct {
		name string
		s    *Server
		next *api.Node
		want string // in the error; "" for none
	}{
		{"a publishes its key", s1, node("a", "ua", k1), ""},
		{"a again, unchanged", s1, node("a", "ua", k1), ""},
		{"a again, through another server", s2, node("a", "ua", k1), ""},
		{"b publishes a's key", s1, node("b", "ub", k1), `Node "b": status.overlay.publicKey: node a already publishes WireGuard key AAAAAAAAAAAA…`},
		{"b publishes a's key through another server", s2, node("b", "ub", k1), "node a already publishes"},
		{"b without an overlay", s1, node("b", "ub", ""), ""},
		{"b publishes its own key", s2, node("b", "ub", k2), ""},
		{"a rotates its key through s2", s2, node("a", "ua", k3), ""},
		{"b publishes a's old key", s1, node("b", "ub", k1), ""},
		{"a publishes b's key through s1, which saw it claimed for a once", s1, node("a", "ua", k1), "node b already publishes"},
		{"a again with its key through s1", s1, node("a", "ua", k3), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.admitOverlayKey(ctx, stored[tc.next.Metadata.Name], tc.next)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v; want an error containing %q", err, tc.want)
			}
			if err == nil {
				stored[tc.next.Metadata.Name] = tc.next
			}
		})
	}
	claims, err := st.Claims(ctx, store.OverlayKeyClaims)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 || claims[k1] != "b" || claims[k3] != "a" {
		t.Errorf("key claims %v, want b's %s and a's %s", claims, k1, k3)
	}
}
