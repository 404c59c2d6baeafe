package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// FollowSecretKeys says there are none yet, then hands over every set
// stored after, and returns when its context ends.
func TestFollowSecretKeys(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := make(chan []byte, 8)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.FollowSecretKeys(fctx, func(sealed []byte) error { seen <- sealed; return nil })
	}()
	next := func() []byte {
		select {
		case b := <-seen:
			return b
		case <-ctx.Done():
			t.Fatal("FollowSecretKeys handed nothing over")
			return nil
		}
	}
	if b := next(); b != nil {
		t.Fatalf("first call on an empty store: %q; want nil (none stored)", b)
	}
	for _, v := range []string{"sealed-1", "sealed-2"} {
		if err := s.PutSecretKeys(ctx, []byte(v)); err != nil {
			t.Fatal(err)
		}
		if b := next(); string(b) != v {
			t.Fatalf("after PutSecretKeys(%q): handed %q", v, b)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("FollowSecretKeys after its context ended: %v; want nil", err)
	}

	// A follower started later gets the stored set first.
	got := make(chan []byte, 1)
	lctx, lstop := context.WithCancel(ctx)
	defer lstop()
	go func() {
		_ = s.FollowSecretKeys(lctx, func(sealed []byte) error {
			got <- sealed
			lstop()
			return nil
		})
	}()
	if b := <-got; string(b) != "sealed-2" {
		t.Fatalf("a later follower's first call: %q; want the stored sealed-2", b)
	}
}
