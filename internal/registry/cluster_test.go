package registry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/internal/image"
	"github.com/shoal-dev/shoal/internal/image/imagetest"
	"github.com/shoal-dev/shoal/internal/registry"
)

// tags are the cluster's shared tags.
type tags struct {
	mu sync.Mutex
	m  map[string]string
}

// fakeCluster is one server's view: the shared tags and its one peer.
type fakeCluster struct {
	tags *tags
	peer *httptest.Server
}

func (c *fakeCluster) Tag(_ context.Context, repo, tag string) (string, bool) {
	c.tags.mu.Lock()
	defer c.tags.mu.Unlock()
	d, ok := c.tags.m[repo+":"+tag]
	return d, ok
}

func (c *fakeCluster) SetTags(_ context.Context, tags map[string]string) error {
	c.tags.mu.Lock()
	defer c.tags.mu.Unlock()
	for k, v := range tags {
		c.tags.m[k] = v
	}
	return nil
}

func (c *fakeCluster) Peers(context.Context) []string {
	if c.peer == nil {
		return nil
	}
	return []string{strings.TrimPrefix(c.peer.URL, "https://")}
}

func (c *fakeCluster) Transport() http.RoundTripper {
	if c.peer == nil {
		return http.DefaultTransport
	}
	return c.peer.Client().Transport
}

func tarballOf(t *testing.T, ref, version string) []byte {
	t.Helper()
	var tb bytes.Buffer
	if err := image.BuildTarball(image.BuildOptions{Ref: ref, Binary: imagetest.Binary(t, version), Path: "/hello"}, &tb); err != nil {
		t.Fatal(err)
	}
	return tb.Bytes()
}

// An image pushed to one server is served by another, which copies it on
// the first pull; a tag pushed again on the first is not served stale by
// the second; an image no server has is unknown.
func TestImagesAcrossServers(t *testing.T) {
	a, err := registry.New(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	aSrv := httptest.NewTLSServer(a.Handler())
	t.Cleanup(aSrv.Close)
	b, bSrv := newRegistry(t, t.TempDir())
	shared := &tags{m: map[string]string{}}
	a.SetCluster(&fakeCluster{tags: shared})
	b.SetCluster(&fakeCluster{tags: shared, peer: aSrv})

	push(t, a, tarballOf(t, "shoal.local/hello:v1", "v1"))
	want := shared.m["hello:v1"]
	if got := digest(t, pull(t, bSrv, "hello:v1")); got.String() != want {
		t.Errorf("b serves hello:v1 as %s, want a's %s", got, want)
	}

	// Pushed again on a: b follows the cluster's tag, not its old copy.
	push(t, a, tarballOf(t, "shoal.local/hello:v1", "v1-again"))
	if again := shared.m["hello:v1"]; again == want {
		t.Fatal("the second push did not move the tag")
	}
	if got := digest(t, pull(t, bSrv, "hello:v1")); got.String() != shared.m["hello:v1"] {
		t.Errorf("b serves hello:v1 as %s after a new push, want %s", got, shared.m["hello:v1"])
	}

	resp, err := http.Get(bSrv.URL + "/v2/hello/manifests/nothere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an image no server has: %d, want 404", resp.StatusCode)
	}
}
