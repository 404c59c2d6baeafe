package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// A learner is added, listed, refused promotion while it has not caught
// up (it never started), and removed.
func TestMembersAddPromoteRemove(t *testing.T) {
	s, e := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms, err := s.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "shoal" || ms[0].Learner || !slices.Equal(ms[0].PeerURLs, []string{e.PeerURL}) || ms[0].ID != e.ID {
		t.Fatalf("Members of a new store = %+v, %v; want the one voting member shoal at %s", ms, err, e.PeerURL)
	}
	const peer = "http://127.0.0.1:1"
	added, all, err := s.AddLearner(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	if !added.Learner || added.Name != "" || !slices.Equal(added.PeerURLs, []string{peer}) || len(all) != 2 {
		t.Fatalf("AddLearner = %+v with %+v; want an unstarted learner at %s among 2 members", added, all, peer)
	}
	if err := s.PromoteMember(ctx, added.ID); !errors.Is(err, store.ErrLearnerBehind) {
		t.Fatalf("PromoteMember of a learner that never started: %v; want ErrLearnerBehind", err)
	}
	if err := s.RemoveMember(ctx, added.ID); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.Members(ctx); err != nil || len(ms) != 1 {
		t.Fatalf("Members after RemoveMember = %+v, %v; want 1", ms, err)
	}
	if err := s.PromoteMember(ctx, e.ID); err != nil {
		t.Fatalf("PromoteMember of a voting member: %v; want nil (nothing to do)", err)
	}
}

// Quorum: a cluster with a leader says nothing more; a member left alone
// by the other of two says it is leaderless and counts who it reaches.
func TestQuorum(t *testing.T) {
	dir := t.TempDir()
	cfgs := make([]store.EmbeddedConfig, 2)
	var initial []string
	for i := range cfgs {
		cfgs[i] = store.EmbeddedConfig{Dir: filepath.Join(dir, fmt.Sprint(i)), Name: fmt.Sprintf("e%d", i)}
		peer, err := cfgs[i].PeerURL()
		if err != nil {
			t.Fatal(err)
		}
		initial = append(initial, cfgs[i].Name+"="+peer)
	}
	members := make([]*store.Embedded, 2)
	errs := make(chan error, 2)
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		go func() {
			var err error
			members[i], err = store.StartEmbedded(context.Background(), cfgs[i])
			errs <- err
		}()
	}
	for range cfgs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		t.Cleanup(m.Close)
	}
	s := members[0].Store()
	ctx := context.Background()
	if q, err := s.Quorum(ctx); err != nil || q.Leaderless {
		t.Fatalf("Quorum of a whole cluster = %+v, %v; want a leader", q, err)
	}
	members[1].Close()
	testutil.Eventually(t, 20*time.Second, "leaderless with 1 of 2 voters reachable", func() (bool, string) {
		q, err := s.Quorum(ctx)
		return err == nil && q == (store.Quorum{Leaderless: true, Voters: 2, Reachable: 1}), fmt.Sprintf("%+v, %v", q, err)
	})
}
