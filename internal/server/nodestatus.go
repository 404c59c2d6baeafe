package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// Every node's agent names the other nodes' WireGuard peers by the public
// keys their Nodes publish. A node that published another node's key would
// take that node's place as a peer (one key, one peer): its traffic and its
// subnet's allowed IPs. So each key is claimed in the store by the first
// node that publishes it, and no other node may publish it.

// admitOverlayKey checks the overlay key of a Node status about to be
// written: cur is the stored Node, next the Node as it will be stored. A
// key another node has published is refused. It claims a new key for the node and releases the
// node's earlier ones. Each server remembers the keys it has seen claimed,
// so a heartbeat with the key as stored costs nothing.
//
// Every write of a Node's status must call it (updateStatus, both its fast
// path and its read-modify-write).
func (s *Server) admitOverlayKey(ctx context.Context, cur, next *api.Node) error {
	ov := next.Status.Overlay
	if ov == nil || ov.PublicKey == "" {
		return nil
	}
	node, key := next.Metadata.Name, ov.PublicKey
	// Only a key as stored, and seen claimed by this server, for this
	// node (by UID: one removed and joined again lost its claims), is
	// still the node's: another server may have let it rotate since.
	seen := node + "/" + cur.Metadata.UID
	if old := cur.Status.Overlay; old != nil && old.PublicKey == key && s.overlayKeys.confirmed(seen, key) {
		return nil
	}
	ok, err := s.store.Claim(ctx, store.OverlayKeyClaims+key, node)
	if err != nil {
		return err
	}
	if !ok {
		owner := "another node"
		if held, err := s.store.Claims(ctx, store.OverlayKeyClaims+key); err == nil && held[""] != "" {
			owner = "node " + held[""]
		}
		return &api.InvalidError{Kind: api.KindNode, Name: node, Errors: []api.FieldError{{Path: "status.overlay.publicKey",
			Message: fmt.Sprintf("%s already publishes WireGuard key %.12s…: every node publishes a key of its own (the agent makes one in DATA_DIR/pki/wireguard.key)", owner, key)}}}
	}
	// The node's earlier keys (rotated away) are free again.
	all, err := s.store.Claims(ctx, store.OverlayKeyClaims)
	if err != nil {
		return err
	}
	for k, owner := range all {
		if owner == node && k != key {
			if err := s.store.Unclaim(ctx, store.OverlayKeyClaims+k, node); err != nil {
				return err
			}
		}
	}
	s.overlayKeys.confirm(seen, key)
	return nil
}

// overlayKeyCache is, per node (name and UID), the key this server saw
// claimed for it.
type overlayKeyCache struct {
	mu   sync.Mutex
	keys map[string]string
}

func (c *overlayKeyCache) confirmed(node, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[node] == key
}

func (c *overlayKeyCache) confirm(node, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) > 100000 {
		c.keys = map[string]string{}
	}
	c.keys[node] = key
}
