package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestClaimPrefixOverlaps: with a claim on 10.244.1.0/24 held by "a", a
// claim by "b" is refused exactly when its range overlaps a's, in either
// direction, and names a's range.
func TestClaimPrefixOverlaps(t *testing.T) {
	t.Parallel()
	s, _ := storetest.Start(t)
	ctx := context.Background()
	held := netip.MustParsePrefix("10.244.1.0/24")
	if ok, err := s.ClaimPrefix(ctx, "t", held, "a"); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	for _, tc := range []struct {
		claim   string
		overlap bool
	}{
		{"10.244.1.0/24", true},    // the same range
		{"10.244.1.128/25", true},  // half of it
		{"10.244.1.4/30", true},    // a little of it
		{"10.244.1.255/32", true},  // one address of it
		{"10.244.0.0/23", true},    // it and its neighbour
		{"10.244.0.0/16", true},    // the whole cluster range
		{"0.0.0.0/0", true},        // everything
		{"10.244.0.0/24", false},   // the neighbour below
		{"10.244.2.0/24", false},   // the neighbour above
		{"10.244.2.0/23", false},   // two blocks above
		{"10.244.0.128/25", false}, // half of the neighbour
		{"8.8.8.0/30", false},      // far away
	} {
		t.Run(tc.claim, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.claim)
			ok, err := s.ClaimPrefix(ctx, "t", p, "b")
			var c *store.PrefixConflict
			switch {
			case tc.overlap && (ok || !errors.As(err, &c) || !errors.Is(err, store.ErrConflict)):
				t.Fatalf("claim %s: got %v, %v; want a conflict with a's %s", p, ok, err, held)
			case tc.overlap && (c.Owner != "a" || c.Held != held):
				t.Fatalf("claim %s: conflict names %s of %s; want %s of a", p, c.Held, c.Owner, held)
			case !tc.overlap && (!ok || err != nil):
				t.Fatalf("claim %s: got %v, %v; want it claimed", p, ok, err)
			}
			if ok {
				if err := s.UnclaimPrefix(ctx, "t", p, "b"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// Claiming again what one holds is no change, and a's claim is as it was.
	if ok, err := s.ClaimPrefix(ctx, "t", held, "a"); err != nil || ok {
		t.Fatalf("claim again: %v %v; want held already", ok, err)
	}
	got, err := s.PrefixClaims(ctx, "t")
	if err != nil || len(got) != 1 || got[held] != "a" {
		t.Fatalf("claims %v, %v; want only %s of a", got, err, held)
	}
	// Unclaiming someone else's range does nothing; the owner's frees it.
	if err := s.UnclaimPrefix(ctx, "t", held, "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PrefixClaims(ctx, "t"); got[held] != "a" {
		t.Fatalf("b released a's claim: %v", got)
	}
	if err := s.UnclaimPrefix(ctx, "t", held, "a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimPrefix(ctx, "t", netip.MustParsePrefix("10.244.1.128/25"), "b"); err != nil || !ok {
		t.Fatalf("claim after release: %v %v", ok, err)
	}
}

// TestClaimPrefixRace: many owners claim overlapping ranges at once; for
// every pair of ranges both won, they do not overlap.
func TestClaimPrefixRace(t *testing.T) {
	t.Parallel()
	s, _ := storetest.Start(t)
	ctx := context.Background()
	ranges := []string{"10.9.0.0/16", "10.9.1.0/24", "10.9.1.128/25", "10.9.0.0/23", "10.9.1.0/26", "10.9.2.0/24", "10.9.1.64/26"}
	for round := range 5 {
		space := fmt.Sprintf("race%d", round)
		won := make([]bool, len(ranges))
		var wg sync.WaitGroup
		for i, r := range ranges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.ClaimPrefix(ctx, space, netip.MustParsePrefix(r), fmt.Sprint("owner", i))
				if err != nil && !errors.Is(err, store.ErrConflict) {
					t.Errorf("claim %s: %v", r, err)
				}
				won[i] = ok
			}()
		}
		wg.Wait()
		n := 0
		for i := range ranges {
			if !won[i] {
				continue
			}
			n++
			for j := range i {
				if won[j] && netip.MustParsePrefix(ranges[i]).Overlaps(netip.MustParsePrefix(ranges[j])) {
					t.Errorf("round %d: overlapping %s and %s were both claimed", round, ranges[i], ranges[j])
				}
			}
		}
		if n == 0 {
			t.Errorf("round %d: nobody won", round)
		}
	}
}
