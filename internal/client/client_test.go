package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// A client whose server is down goes on with the next, and keeps using
// that one first.
func TestFailover(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer up.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	c := New(down)
	c.SetServers([]string{up.URL})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping with the first server down: %v", err)
	}
	if got := c.Servers(); !slices.Equal(got, []string{up.URL, down}) || c.Server() != up.URL {
		t.Errorf("after failing over: servers %v, in use %s; want %s first", got, c.Server(), up.URL)
	}
}

// A watch whose server goes silent (a cut-off machine sends no reset)
// ends with ErrWatchIdle, so the caller lists again, elsewhere; a server
// that sends its bookmarks keeps the watch alive.
func TestWatchEndsWhenTheServerGoesSilent(t *testing.T) {
	old := WatchIdle
	WatchIdle = 300 * time.Millisecond
	t.Cleanup(func() { WatchIdle = old })
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		bookmarks := 1
		if r.URL.Query().Get("labelSelector") == "chatty=1" {
			bookmarks = 6
		}
		for range bookmarks {
			_, _ = w.Write([]byte(`{"type":"BOOKMARK","revision":7}` + "\n"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
		select { // then silence, the connection held open
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	c := New(srv.URL)
	k := api.MustKind(api.KindApp)
	for _, tc := range []struct {
		labels  string
		atLeast time.Duration
	}{{"", 300 * time.Millisecond}, {"chatty=1", 600 * time.Millisecond}} {
		start := time.Now()
		ch, why, err := c.Watch(context.Background(), k, "default", 7, ListOptions{Labels: tc.labels})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range ch {
			n++
		}
		if err := why(); !errors.Is(err, ErrWatchIdle) {
			t.Fatalf("watch ended with %v, want ErrWatchIdle", err)
		}
		if d := time.Since(start); d < tc.atLeast || d > 5*time.Second {
			t.Fatalf("watch (%q) ended after %v, want at least %v: bookmarks keep it alive", tc.labels, d, tc.atLeast)
		}
		if n == 0 {
			t.Fatal("no bookmark delivered")
		}
	}
}
