package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestGuardedWrites: two writers that checked the same state cannot both
// write; the second is told to check again, writes nothing, and writes once
// it has read the guard anew. Every kind of write carries the guard.
func TestGuardedWrites(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	rev, err := s.GuardRevision(ctx, "quota/default")
	if err != nil || rev != 0 {
		t.Fatalf("a guard never moved: revision %d, %v", rev, err)
	}
	g := store.Guard{Name: "quota/default", Revision: rev}
	if err := s.Guarded(g).Create(ctx, newApp("a", 1)); err != nil {
		t.Fatalf("the first guarded write: %v", err)
	}
	// The second writer checked before the first wrote.
	if err := s.Guarded(g).Create(ctx, newApp("b", 1)); !errors.Is(err, store.ErrGuardMoved) {
		t.Fatalf("the second writer's create: %v, want ErrGuardMoved", err)
	}
	if _, err := s.Get(ctx, apps, "default", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused guarded create was stored: %v", err)
	}
	if _, err := s.Guarded(g).Apply(ctx, []api.Object{newApp("b", 1)}); !errors.Is(err, store.ErrGuardMoved) {
		t.Fatalf("the second writer's apply: %v, want ErrGuardMoved", err)
	}
	cur, _ := s.Get(ctx, apps, "default", "a")
	a := cur.(*api.App)
	two := int32(2)
	a.Spec.Replicas = &two
	if err := s.Guarded(g).Update(ctx, a); !errors.Is(err, store.ErrGuardMoved) {
		t.Fatalf("the second writer's update: %v, want ErrGuardMoved", err)
	}
	// Checked again: it writes, and moves the guard.
	if g.Revision, err = s.GuardRevision(ctx, "quota/default"); err != nil || g.Revision == 0 {
		t.Fatalf("the guard after a write: revision %d, %v", g.Revision, err)
	}
	if _, err := s.Guarded(g).Apply(ctx, []api.Object{newApp("b", 1)}); err != nil {
		t.Fatalf("apply after checking again: %v", err)
	}
	// A conflict on the object itself is still a conflict.
	g.Revision, _ = s.GuardRevision(ctx, "quota/default")
	stale := *a
	stale.Metadata.Revision = 1
	if err := s.Guarded(g).Update(ctx, &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale object under a current guard: %v, want ErrConflict", err)
	}
	// Unguarded writes neither check nor move it.
	if err := s.Create(ctx, newApp("c", 1)); err != nil {
		t.Fatal(err)
	}
	if now, _ := s.GuardRevision(ctx, "quota/default"); now != g.Revision {
		t.Errorf("an unguarded write moved the guard: %d -> %d", g.Revision, now)
	}
}
