package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
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

// ImageDigest asks the image store what a tag points at, as a node would.
func TestImageDigest(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || r.URL.Path != "/v2/web/api/manifests/v3" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Docker-Content-Digest", d)
	}))
	defer srv.Close()
	c := New(srv.URL)
	if got, err := c.ImageDigest(context.Background(), "web/api", "v3"); err != nil || got != d {
		t.Errorf("ImageDigest(web/api:v3) = %q, %v; want %s", got, err, d)
	}
	if _, err := c.ImageDigest(context.Background(), "web/api", "v4"); err == nil || err.Error() != "shoal.local/web/api:v4 is not in the cluster's image store (push it first: shoal image push)" {
		t.Errorf("ImageDigest of a tag never pushed: %v", err)
	}
}
