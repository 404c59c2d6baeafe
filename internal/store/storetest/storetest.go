package storetest

import (
	"context"
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
)

// Start runs an embedded etcd under a temp dir for the test's lifetime.
func Start(t testing.TB) (*store.Store, *store.Embedded) {
	t.Helper()
	e, err := store.StartEmbedded(context.Background(), store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Store(), e
}
