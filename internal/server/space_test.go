package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestStoreOutOfSpaceIsSurfaced: with etcd's NOSPACE alarm raised,
// /healthz says so (and stays 200: deletes still work, through every CLI
// verb), and a write is a 507 that says what to do.
func TestStoreOutOfSpaceIsSurfaced(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	e, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: t.TempDir(), QuotaBackendBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	st := e.Store()
	if err := server.EnsureDefaultNamespace(ctx, st); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: st, Log: slog.New(slog.DiscardHandler), Version: "test"})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK || strings.Contains(body, "warning") {
		t.Fatalf("healthz of a new store: %d %q; want ok without a warning", code, body)
	}
	value := strings.Repeat("x", 256<<10)
	raw := storetest.Dial(t, e)
	for i := 0; ; i++ {
		if i == 64 {
			t.Fatal("16 MiB into a 2 MiB store raised no alarm")
		}
		if err := raw.Put(context.Background(), fmt.Sprintf("/shoal/filler/%d", i), value); err != nil {
			break
		}
	}
	code, body := get("/healthz")
	if code != http.StatusOK || !strings.Contains(body, "warning: the store is full (etcd's NOSPACE alarm") {
		t.Errorf("healthz of a full store: %d %q; want 200 with the warning", code, body)
	}
	resp, err := http.Post(hs.URL+"/api/v1/apply", "application/yaml", strings.NewReader("apiVersion: shoal/v1\nkind: App\nmetadata: {name: a}\nspec: {image: nginx}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(b), "delete what is not needed") {
		t.Errorf("apply to a full store: %d %s; want 507 saying what to do", resp.StatusCode, b)
	}
}
