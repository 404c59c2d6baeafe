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
