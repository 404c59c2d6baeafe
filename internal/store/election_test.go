package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

func identities(t *testing.T, el *store.Election) []string {
	t.Helper()
	cands, err := el.Candidates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cands {
		out = append(out, c.Identity)
	}
	return out
}

// The first candidate holds the election; the next holds it once the
// first resigns; Leader names the holder.
func TestElectionOneHolderAtATime(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	el := s.Election(store.ControllersElection)
	if l, err := s.Leader(ctx, store.ControllersElection); err != nil || l != "" {
		t.Fatalf("Leader with no candidates = %q, %v; want none", l, err)
	}
	a, err := el.Campaign(ctx, "a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	won := make(chan *store.Term, 1)
	go func() {
		b, err := el.Campaign(ctx, "b", 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		won <- b
	}()
	testutil.Eventually(t, 10*time.Second, "a holding and b waiting", func() (bool, string) {
		ids := identities(t, el)
		return slices.Equal(ids, []string{"a", "b"}), fmt.Sprint(ids)
	})
	select {
	case <-won:
		t.Fatal("b won while a held the election")
	default:
	}
	if l, _ := s.Leader(ctx, store.ControllersElection); l != "a" {
		t.Fatalf("Leader = %q; want a", l)
	}
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	b := <-won
	if b == nil {
		t.FailNow()
	}
	defer b.Close()
	if l, _ := s.Leader(ctx, store.ControllersElection); l != "b" {
		t.Fatalf("Leader after a resigned = %q; want b", l)
	}
}

// A term's store writes while the term lasts; evicted, the term is done
// and its writes fail with ErrNotLeader.
func TestTermStoreIsFenced(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	el := s.Election("/test-election")
	term, err := el.Campaign(ctx, "a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := term.Store().Create(ctx, newApp("during", 1)); err != nil {
		t.Fatalf("write during the term: %v", err)
	}
	cands, err := el.Candidates(ctx)
	if err != nil || len(cands) != 1 || cands[0].Key != term.Key() {
		t.Fatalf("Candidates = %+v, %v; want the term's own key %s", cands, err, term.Key())
	}
	if err := el.Evict(ctx, cands[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-term.Done():
	case <-ctx.Done():
		t.Fatal("an evicted term is not done")
	}
	if err := term.Store().Create(ctx, newApp("after", 1)); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("write after the term ended: %v; want ErrNotLeader", err)
	}
}

// Campaign evicts what an earlier, killed run of the same identity left
// (its lease minutes from expiring), and only that: another identity's
// candidate keeps its place.
func TestCampaignEvictsItsOwnGhost(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	el := s.Election("/test-election")
	killed, kill := context.WithCancel(ctx)
	ghost, err := el.Campaign(killed, "a", 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kill() // renews no more, resigns nothing
	type won struct {
		id   string
		term *store.Term
	}
	wins := make(chan won, 2)
	campaign := func(id string) {
		term, err := el.Campaign(ctx, id, 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		wins <- won{id, term}
	}
	go campaign("b")
	testutil.Eventually(t, 10*time.Second, "b waiting behind the ghost of a", func() (bool, string) {
		ids := identities(t, el)
		return slices.Equal(ids, []string{"a", "b"}), fmt.Sprint(ids)
	})
	go campaign("a") // a again, restarted
	var first won
	select {
	case first = <-wins:
	case <-ctx.Done():
		t.Fatal("nobody won: the ghost of a still holds the election")
	}
	defer first.term.Close()
	if first.id != "b" {
		t.Fatalf("%s won first; want b, the oldest live candidate once the ghost was gone", first.id)
	}
	cands, err := el.Candidates(ctx)
	if err != nil || slices.ContainsFunc(cands, func(c store.Candidate) bool { return c.Key == ghost.Key() }) {
		t.Fatalf("Candidates = %+v, %v; want the ghost %s gone", cands, err, ghost.Key())
	}
	if err := first.term.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	second := <-wins
	defer second.term.Close()
	if second.id != "a" {
		t.Fatalf("after b resigned %s won; want a", second.id)
	}
}
