package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
)

// Start runs an embedded etcd under a temp dir for the test's lifetime.
func Start(t testing.TB) (*store.Store, *store.Embedded) {
	t.Helper()
	var e *store.Embedded
	var err error
	// The ports etcd picks free can be taken by another test before etcd
	// binds them: pick again.
	for attempt := 0; attempt < 5; attempt++ {
		e, err = store.StartEmbedded(context.Background(), store.EmbeddedConfig{Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Store(), e
}
