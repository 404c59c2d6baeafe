package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/internal/image/imagetest"
)

// TestContainerdResolverPulls pulls through containerd's own docker
// resolver and fetcher, configured the way an agent maps the host
// shoal.local to the server: what containerd does on a node, minus the
// daemon.
func TestContainerdResolverPulls(t *testing.T) {
	r, srv := newRegistry(t, t.TempDir())
	push(t, r, imagetest.Tarball(t, "shoal.local/library/hello:v1", "v1"))

	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: func(host string) ([]docker.RegistryHost, error) {
			if host != "shoal.local" {
				t.Errorf("resolver asked for host %q, want shoal.local", host)
			}
			return []docker.RegistryHost{{
				Client:       srv.Client(),
				Host:         strings.TrimPrefix(srv.URL, "http://"),
				Scheme:       "http",
				Path:         "/v2",
				Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
			}}, nil
		},
	})
	ctx := context.Background()

	if _, _, err := resolver.Resolve(ctx, "shoal.local/library/hello:nope"); err == nil {
		t.Error("resolving an unknown tag succeeded")
	}

	ref, desc, err := resolver.Resolve(ctx, "shoal.local/library/hello:v1")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if desc.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("resolved media type %q, want the Docker schema 2 manifest type", desc.MediaType)
	}
	fetcher, err := resolver.Fetcher(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(d ocispec.Descriptor) []byte {
		t.Helper()
		rc, err := fetcher.Fetch(ctx, d)
		if err != nil {
			t.Fatalf("Fetch %s: %v", d.Digest, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("Fetch %s: %v", d.Digest, err)
		}
		if got := godigest.FromBytes(b); got != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("Fetch %s: got %s, %d bytes; want %d bytes", d.Digest, got, len(b), d.Size)
		}
		return b
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fetch(desc), &m); err != nil {
		t.Fatal(err)
	}
	fetch(m.Config)
	for _, l := range m.Layers {
		fetch(l)
	}

	// containerd falls back to ranged GETs when it resumes a download.
	req, _ := http.NewRequest("GET", srv.URL+"/v2/library/hello/blobs/"+m.Layers[0].Digest.String(), nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusPartialContent || len(b) != 10 {
		t.Errorf("ranged blob GET = %d with %d bytes, want 206 with 10", resp.StatusCode, len(b))
	}
}
