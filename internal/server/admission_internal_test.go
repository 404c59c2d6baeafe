package server

import (
	"context"
	"testing"

	"github.com/shoal-dev/shoal/internal/pki"
)

// TestWrittenByServer: only a context marked as a server's own write, or
// authenticated as a server, is one; lacking an identity is not enough.
func TestWrittenByServer(t *testing.T) {
	as := func(id pki.Identity) context.Context { return context.WithValue(context.Background(), identityKey, id) }
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"no identity", context.Background(), false},
		{"marked (a controller's write)", asServer(context.Background()), true},
		{"a server's certificate", as(pki.Identity{Name: "server:s2", Groups: []string{pki.GroupServers}}), true},
		{"a node", as(pki.Identity{Name: "node:n1", Groups: []string{pki.GroupNodes}, Node: "n1"}), false},
		{"a user", as(pki.Identity{Name: "user:dee", Groups: []string{pki.GroupUsers}, User: "dee"}), false},
	} {
		if got := writtenByServer(tc.ctx); got != tc.want {
			t.Errorf("%s: writtenByServer %v, want %v", tc.name, got, tc.want)
		}
	}
}
