package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// TestNoSpaceIsSurfacedAndReclaimed: an embedded etcd past its backend
// quota refuses writes with ErrNoSpace and Space says so; after deletes,
// Reclaim lifts the alarm and writes go on.
func TestNoSpaceIsSurfacedAndReclaimed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: t.TempDir(), QuotaBackendBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := e.Store()
	if sp, err := st.Space(ctx); err != nil || sp.NoSpace {
		t.Fatalf("Space of a new store = %+v, %v; want no alarm", sp, err)
	}
	value := strings.Repeat("x", 256<<10)
	var full error
	var written []string
	for i := range 64 {
		key := fmt.Sprintf("/shoal/filler/%d", i)
		if _, err := e.Client().Put(ctx, key, value); err != nil {
			full = err
			break
		}
		written = append(written, key)
	}
	if !errors.Is(full, store.ErrNoSpace) {
		t.Fatalf("16 MiB into a 2 MiB store: the last write's error is %v; want ErrNoSpace", full)
	}
	if sp, err := st.Space(ctx); err != nil || !sp.NoSpace {
		t.Fatalf("Space of the full store = %+v, %v; want NoSpace", sp, err)
	}
	for _, k := range written {
		if _, err := e.Client().Delete(ctx, k); err != nil {
			t.Fatalf("delete %s while the alarm is raised: %v", k, err)
		}
	}
	if err := st.Reclaim(ctx); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	if sp, err := st.Space(ctx); err != nil || sp.NoSpace {
		t.Fatalf("Space after Reclaim = %+v, %v; want no alarm", sp, err)
	}
	if _, err := e.Client().Put(ctx, "/shoal/filler/after", "ok"); err != nil {
		t.Errorf("a write after Reclaim: %v", err)
	}
}
