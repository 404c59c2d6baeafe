package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// CreateWith writes both objects or neither: a taken name or a changed
// update leaves the store as it was.
func TestCreateWithIsAllOrNothing(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	counter := newApp("counter", 1)
	if err := s.Create(ctx, counter); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newApp("taken", 1)); err != nil {
		t.Fatal(err)
	}
	stale := *counter
	two := int32(2)
	counter.Spec.Replicas = &two
	if err := s.CreateWith(ctx, newApp("taken", 1), counter); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a taken name: %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateWith(ctx, newApp("new", 1), counter); err != nil {
		t.Fatal(err)
	}
	three := int32(3)
	stale.Spec.Replicas = &three
	if err := s.CreateWith(ctx, newApp("newer", 1), &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale update: %v, want ErrConflict", err)
	}
	if _, err := s.Get(ctx, apps, "default", "newer"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed CreateWith created its object: %v", err)
	}
	got, err := s.Get(ctx, apps, "default", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if r := *got.(*api.App).Spec.Replicas; r != 2 {
		t.Fatalf("counter has %d replicas, want the 2 of the one CreateWith that succeeded", r)
	}
}
