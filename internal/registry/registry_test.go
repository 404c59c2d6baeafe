package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-dev/shoal/internal/image"
	"github.com/shoal-dev/shoal/internal/image/imagetest"
	"github.com/shoal-dev/shoal/internal/registry"
)

func newRegistry(t *testing.T, dir string) (*registry.Registry, *httptest.Server) {
	t.Helper()
	r, err := registry.New(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return r, srv
}

func push(t *testing.T, r *registry.Registry, tarball []byte) []string {
	t.Helper()
	refs, err := r.PushTarball(context.Background(), bytes.NewReader(tarball), nil)
	if err != nil {
		t.Fatalf("PushTarball: %v", err)
	}
	return refs
}

// pull fetches ref (a path like "hello:v1") from srv with go-containerregistry
// and reads every blob, so a wrong digest anywhere fails the pull.
func pull(t *testing.T, srv *httptest.Server, ref string) v1.Image {
	t.Helper()
	host := strings.TrimPrefix(srv.URL, "http://")
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("pull %s: reading layer: %v", ref, err)
		}
		if err := rc.Close(); err != nil { // verifies the digest
			t.Fatalf("pull %s: layer: %v", ref, err)
		}
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPushThenPull(t *testing.T) {
	dir := t.TempDir()
	r, srv := newRegistry(t, dir)

	bin := imagetest.Binary(t, "v1")
	opts := image.BuildOptions{Ref: "shoal.local/hello:v1", Binary: bin, Path: "/hello"}
	built, err := image.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	if err := image.BuildTarball(opts, &tb); err != nil {
		t.Fatal(err)
	}

	if got := push(t, r, tb.Bytes()); !slices.Equal(got, []string{"hello:v1"}) {
		t.Errorf("PushTarball refs = %q, want [hello:v1] (host dropped)", got)
	}
	if got := r.List(); !slices.Equal(got, []string{"hello:v1"}) {
		t.Errorf("List = %q, want [hello:v1]", got)
	}

	img := pull(t, srv, "hello:v1")
	if got, want := digest(t, img), digest(t, built); got != want {
		t.Errorf("pulled digest %s, built digest %s: want equal", got, want)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/hello"}) {
		t.Errorf("pulled entrypoint %q, want [/hello]", cfg.Config.Entrypoint)
	}
	pull(t, srv, "hello@"+digest(t, built).String())

	// A server restart keeps everything: a fresh Registry on the same dir.
	r2, srv2 := newRegistry(t, dir)
	if got := r2.List(); !slices.Equal(got, []string{"hello:v1"}) {
		t.Errorf("after restart List = %q, want [hello:v1]", got)
	}
	if got := digest(t, pull(t, srv2, "hello:v1")); got != digest(t, built) {
		t.Errorf("after restart pulled digest %s, want %s", got, digest(t, built))
	}
}

func TestPushSeveralImagesAndTags(t *testing.T) {
	r, srv := newRegistry(t, t.TempDir())

	img1, err := image.Build(image.BuildOptions{Ref: "shoal.local/hello:v1", Binary: imagetest.Binary(t, "one")})
	if err != nil {
		t.Fatal(err)
	}
	img2, err := image.Build(image.BuildOptions{Ref: "shoal.local/team/web:v2", Binary: imagetest.Binary(t, "two")})
	if err != nil {
		t.Fatal(err)
	}
	refs := map[name.Reference]v1.Image{}
	for ref, img := range map[string]v1.Image{
		"shoal.local/hello:v1":     img1,
		"shoal.local/hello:stable": img1,
		"shoal.local/team/web:v2":  img2,
		"busybox:mine":             img2, // a Docker Hub short name
	} {
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		refs[tag] = img
	}
	var tb bytes.Buffer
	if err := tarball.MultiRefWrite(refs, &tb); err != nil {
		t.Fatal(err)
	}

	want := []string{"hello:stable", "hello:v1", "library/busybox:mine", "team/web:v2"}
	if got := push(t, r, tb.Bytes()); !slices.Equal(got, want) {
		t.Errorf("PushTarball refs = %q, want %q", got, want)
	}
	if got := r.List(); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for ref, img := range map[string]v1.Image{"hello:stable": img1, "team/web:v2": img2, "library/busybox:mine": img2} {
		if got := digest(t, pull(t, srv, ref)); got != digest(t, img) {
			t.Errorf("pull %s = %s, want %s", ref, got, digest(t, img))
		}
	}

	// Moving a tag keeps the old manifest pullable by digest: a node may
	// have resolved the tag just before the push.
	push(t, r, imagetest.Tarball(t, "shoal.local/hello:v1", "one, rebuilt"))
	if got := digest(t, pull(t, srv, "hello:v1")); got == digest(t, img1) {
		t.Error("hello:v1 still points at the old image after a new push")
	}
	pull(t, srv, "hello@"+digest(t, img1).String())

	resp, err := http.Get(srv.URL + "/v2/hello/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tags struct {
		Name string
		Tags []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&tags); err != nil || tags.Name != "hello" || !slices.Equal(tags.Tags, []string{"stable", "v1"}) {
		t.Errorf("tags/list = %+v (%v), want hello [stable v1]", tags, err)
	}
}

func TestPushRejectsBadTarballs(t *testing.T) {
	good := imagetest.Tarball(t, "shoal.local/hello:v1", "v1")

	tests := []struct {
		name    string
		tarball []byte
	}{
		{"not a tar", []byte("this is not a tarball")},
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"layer byte flipped", rewriteTar(t, good, func(name string, data []byte) []byte {
			if strings.HasSuffix(name, ".tar.gz") {
				data = slices.Clone(data)
				data[len(data)/2] ^= 0xff
			}
			return data
		})},
		{"layer replaced by other gzip content", rewriteTar(t, good, func(name string, data []byte) []byte {
			if strings.HasSuffix(name, ".tar.gz") {
				return tarballLayer(t, imagetest.Tarball(t, "x:v1", "something else"))
			}
			return data
		})},
		{"config not JSON", rewriteTar(t, good, func(name string, data []byte) []byte {
			if strings.HasPrefix(name, "sha256:") {
				return []byte("{not json")
			}
			return data
		})},
		{"no tag", rewriteTar(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				return bytes.Replace(data, []byte(`["shoal.local/hello:v1"]`), []byte(`[]`), 1)
			}
			return data
		})},
		{"bad tag", rewriteTar(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				return bytes.Replace(data, []byte(`shoal.local/hello:v1`), []byte(`shoal.local/Hello:v1`), 1)
			}
			return data
		})},
		{"missing layer", rewriteTar(t, good, func(name string, data []byte) []byte {
			if strings.HasSuffix(name, ".tar.gz") {
				return nil
			}
			return data
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, _ := newRegistry(t, dir)
			refs, err := r.PushTarball(context.Background(), bytes.NewReader(tt.tarball), nil)
			if !errors.Is(err, registry.ErrInvalidTarball) {
				t.Errorf("PushTarball = %q, %v; want an error wrapping ErrInvalidTarball", refs, err)
			}
			if got := r.List(); len(got) != 0 {
				t.Errorf("List after a failed push = %q, want nothing", got)
			}
			assertEmptyDir(t, filepath.Join(dir, "repositories"))
			assertEmptyDir(t, filepath.Join(dir, "tmp"))
		})
	}
}

func TestPushCanceled(t *testing.T) {
	dir := t.TempDir()
	r, _ := newRegistry(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.PushTarball(ctx, bytes.NewReader(imagetest.Tarball(t, "a:v1", "x")), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("PushTarball with a canceled context = %v, want context.Canceled", err)
	}
	if got := r.List(); len(got) != 0 {
		t.Errorf("List after a canceled push = %q, want nothing", got)
	}
}

func TestPushPassesOnReadErrors(t *testing.T) {
	r, _ := newRegistry(t, t.TempDir())
	// What http.MaxBytesReader does when the caller's limit is hit.
	limit := &http.MaxBytesError{Limit: 10}
	in := io.MultiReader(bytes.NewReader(make([]byte, 10)), errReader{limit})
	_, err := r.PushTarball(context.Background(), in, nil)
	var got *http.MaxBytesError
	if !errors.As(err, &got) {
		t.Errorf("PushTarball = %v, want the reader's *http.MaxBytesError", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// rewriteTar copies a tarball through edit; a nil result drops the entry.
func rewriteTar(t *testing.T, in []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		data = edit(hdr.Name, data)
		if data == nil {
			continue
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func tarballLayer(t *testing.T, tb []byte) []byte {
	var layer []byte
	rewriteTar(t, tb, func(name string, data []byte) []byte {
		if strings.HasSuffix(name, ".tar.gz") {
			layer = data
		}
		return data
	})
	return layer
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%s holds %d entries after a failed push, want none", dir, len(entries))
	}
}
