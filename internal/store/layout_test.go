package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// The keys below are what running clusters hold: each noun writes its own
// key and reads what a cluster wrote there before, so an upgraded server
// reads its cluster's data. Changing one is a data migration, not a
// refactoring.
func TestKeysAreTheOnesClustersHold(t *testing.T) {
	for _, tc := range []struct {
		noun, key, value string
		write            func(context.Context, *store.Store) error  // writes value through the noun
		read             func(context.Context, *store.Store) string // reads it back through the noun
	}{
		{"port range", "/shoal-cluster/port-range", "20000-20999",
			func(ctx context.Context, s *store.Store) error {
				_, _, err := s.InitPortRange(ctx, api.PortRange{Min: 20000, Max: 20999}, true)
				return err
			},
			func(ctx context.Context, s *store.Store) string { r, _ := s.PortRange(ctx); return r.String() }},
		{"cluster CA", "/shoal-cluster/ca", "fingerprint",
			func(ctx context.Context, s *store.Store) error {
				_, err := s.ClaimClusterCA(ctx, "fingerprint")
				return err
			},
			func(ctx context.Context, s *store.Store) string { fp, _ := s.ClaimClusterCA(ctx, "another"); return fp }},
		{"secret keys", "/shoal-secret-keys", "sealed",
			func(ctx context.Context, s *store.Store) error { return s.PutSecretKeys(ctx, []byte("sealed")) },
			func(ctx context.Context, s *store.Store) string {
				var got string
				ctx, cancel := context.WithCancel(ctx)
				_ = s.FollowSecretKeys(ctx, func(b []byte) error { got = string(b); cancel(); return nil })
				return got
			}},
		{"image tag", "/shoal-images/tags/team/web:1", "sha256:aa",
			func(ctx context.Context, s *store.Store) error {
				return s.SetImageTags(ctx, map[string]string{"team/web:1": "sha256:aa"})
			},
			func(ctx context.Context, s *store.Store) string {
				d, _, _ := s.ImageTag(ctx, "team/web", "1")
				return d
			}},
		{"registration", "/shoal-servers/s1", `{"name":"s1","url":"https://s1:6443","version":"v1"}`,
			func(ctx context.Context, s *store.Store) error {
				rctx, stop := context.WithCancel(ctx)
				go s.Register(rctx, store.Registration{Name: "s1", URL: "https://s1:6443", Version: "v1"}, slog.New(slog.DiscardHandler))
				t.Cleanup(stop)
				for range 200 {
					if regs, _ := s.Registrations(ctx); len(regs) == 1 {
						return nil
					}
					time.Sleep(20 * time.Millisecond)
				}
				return fmt.Errorf("s1 did not check in")
			},
			func(ctx context.Context, s *store.Store) string {
				regs, _ := s.Registrations(ctx)
				if len(regs) != 1 {
					return fmt.Sprint(regs)
				}
				return fmt.Sprintf(`{"name":"%s","url":"%s","version":"%s"}`, regs[0].Name, regs[0].URL, regs[0].Version)
			}},
	} {
		t.Run(tc.noun, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, e := storetest.Start(t)
			if err := tc.write(ctx, s); err != nil {
				t.Fatal(err)
			}
			resp, err := e.Client().Get(ctx, tc.key)
			if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != tc.value {
				t.Fatalf("after writing the %s, %s holds %v (%v); want %q", tc.noun, tc.key, resp.Kvs, err, tc.value)
			}

			old, oe := storetest.Start(t) // a cluster that wrote the key itself
			if _, err := oe.Client().Put(ctx, tc.key, tc.value); err != nil {
				t.Fatal(err)
			}
			if got := tc.read(ctx, old); got != tc.value {
				t.Fatalf("the %s read from %s = %q; want %q", tc.noun, tc.key, got, tc.value)
			}
		})
	}
}

// The controllers' election keeps its candidates under
// /shoal-election/controllers/, as concurrency.Election always has.
func TestElectionKeys(t *testing.T) {
	s, e := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.Client().Put(ctx, "/shoal-election/controllers/694d7a1b2c3d", "old-leader"); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Leader(ctx, store.ControllersElection); err != nil || l != "old-leader" {
		t.Fatalf("Leader of a cluster whose leader campaigned before = %q, %v; want old-leader", l, err)
	}
}
