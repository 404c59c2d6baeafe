package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestInitPortRange(t *testing.T) {
	narrow, other := api.PortRange{Min: 20000, Max: 20999}, api.PortRange{Min: 40000, Max: 40099}
	for _, tc := range []struct {
		name        string
		stored      string // the value already in the store; "" for none
		r           api.PortRange
		replace     bool
		want        api.PortRange
		wantChanged bool
		wantRead    api.PortRange // what PortRange reads afterwards
	}{
		{"an empty store takes the first server's", "", narrow, false, narrow, false, narrow},
		{"a stored range stays without --port-range", "20000-20999", other, false, narrow, false, narrow},
		{"--port-range replaces it", "20000-20999", other, true, other, true, other},
		{"--port-range equal to the stored one changes nothing", "20000-20999", narrow, true, narrow, false, narrow},
		{"--port-range on an empty store", "", other, true, other, false, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := storetest.Start(t)
			ctx := context.Background()
			if got, err := s.PortRange(ctx); err != nil || got != api.DefaultPortRange {
				t.Fatalf("PortRange of a new store = %v, %v; want the default %v", got, err, api.DefaultPortRange)
			}
			if tc.stored != "" {
				if _, err := e.Client().Put(ctx, "/shoal-cluster/port-range", tc.stored); err != nil {
					t.Fatal(err)
				}
			}
			got, changed, err := s.InitPortRange(ctx, tc.r, tc.replace)
			if err != nil || got != tc.want || changed != tc.wantChanged {
				t.Fatalf("InitPortRange(%v, replace %v) = %v changed %v, %v; want %v changed %v", tc.r, tc.replace, got, changed, err, tc.want, tc.wantChanged)
			}
			if read, err := s.PortRange(ctx); err != nil || read != tc.wantRead {
				t.Fatalf("PortRange afterwards = %v, %v; want %v", read, err, tc.wantRead)
			}
		})
	}
}

func TestPortRangeUnreadableNamesTheKey(t *testing.T) {
	s, e := storetest.Start(t)
	ctx := context.Background()
	if _, err := e.Client().Put(ctx, "/shoal-cluster/port-range", "lots"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PortRange(ctx); err == nil || !strings.Contains(err.Error(), "/shoal-cluster/port-range") {
		t.Fatalf("PortRange of %q: %v; want an error naming the key", "lots", err)
	}
	// Start-up keeps going with its own range; admission says what is wrong.
	if got, _, err := s.InitPortRange(ctx, api.DefaultPortRange, false); err != nil || got != api.DefaultPortRange {
		t.Fatalf("InitPortRange over an unreadable range = %v, %v; want the given range", got, err)
	}
}

func TestClaimClusterCA(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	for _, tc := range []struct{ claim, want string }{
		{"first", "first"},  // an empty store takes it
		{"first", "first"},  // its own servers again
		{"second", "first"}, // another cluster's server is told whose it is
	} {
		if got, err := s.ClaimClusterCA(ctx, tc.claim); err != nil || got != tc.want {
			t.Fatalf("ClaimClusterCA(%q) = %q, %v; want %q", tc.claim, got, err, tc.want)
		}
	}
}
