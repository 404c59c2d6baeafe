package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// A server checks in while Register runs, and out as soon as its context
// ends; Unregister removes another's check-in.
func TestRegisterChecksInAndOut(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := func() (map[string]store.Registration, string) {
		regs, err := s.Registrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]store.Registration{}
		for _, r := range regs {
			out[r.Name] = r
		}
		return out, fmt.Sprint(regs)
	}
	runs := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	for _, name := range []string{"a", "b"} {
		rctx, stop := context.WithCancel(ctx)
		ch := make(chan struct{})
		runs[name], done[name] = stop, ch
		go func() {
			defer close(ch)
			s.Register(rctx, store.Registration{Name: name, URL: "https://" + name + ":6443", Version: "v1"}, slog.New(slog.DiscardHandler))
		}()
	}
	testutil.Eventually(t, 10*time.Second, "both servers checked in", func() (bool, string) {
		got, seen := names()
		return got["a"].URL == "https://a:6443" && got["b"].Version == "v1", seen
	})

	runs["a"]()
	<-done["a"]
	if got, seen := names(); len(got) != 1 || got["b"].Name != "b" {
		t.Fatalf("after a stopped: %s; want only b (a checks out at once, not when its lease ends)", seen)
	}
	if err := s.Unregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got, seen := names(); len(got) != 0 {
		t.Fatalf("after Unregister(b): %s; want none", seen)
	}
	runs["b"]()
	<-done["b"]
}
