package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/internal/registry"
)

// entry is one file of a test layer.
type entry struct {
	name, link string
	typ        byte
	body       string
}

// layerOf makes a layer of entries, compressed with "gzip", "zstd" or
// "none".
func layerOf(t testing.TB, comp string, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if comp == "none" {
		return static.NewLayer(b, types.OCIUncompressedLayer)
	}
	c := compression.GZip
	if comp == "zstd" {
		c = compression.ZStd
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompression(c), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	if comp == "zstd" {
		l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
			tarball.WithCompression(c), tarball.WithMediaType(types.OCILayerZStd))
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// ociImage is an OCI image of layers for arch.
func ociImage(t testing.TB, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/app"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ociArchive writes an OCI image layout holding each of items (a v1.Image
// or v1.ImageIndex) under its ref.name, and tars it as podman's
// oci-archive does.
func ociArchive(t testing.TB, items map[string]any) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var opts []layout.Option
		if n != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": n}))
		}
		switch v := items[n].(type) {
		case v1.Image:
			err = p.AppendImage(v, opts...)
		case v1.ImageIndex:
			err = p.AppendIndex(v, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return tarDir(t, dir)
}

func tarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, _ := d.Info()
		h, _ := tar.FileInfoHeader(info, "")
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func TestPushOCIArchive(t *testing.T) {
	dir := t.TempDir()
	r, srv := newRegistry(t, dir)
	img := ociImage(t, goruntime.GOARCH,
		layerOf(t, "gzip", entry{name: "app", body: "gzip layer"}),
		layerOf(t, "zstd", entry{name: "etc/zstd", body: "zstd layer"}, entry{name: "bin", typ: tar.TypeSymlink, link: "/usr/bin"}),
		layerOf(t, "none", entry{name: "lib/plain", body: "uncompressed layer"}, entry{name: "lib/self", typ: tar.TypeSymlink, link: "../lib/plain"}),
	)
	refs := push(t, r, ociArchive(t, map[string]any{"localhost/app:v1": img}))
	if !slices.Equal(refs, []string{"app:v1"}) {
		t.Fatalf("refs %q, want [app:v1]", refs)
	}
	if got, want := digest(t, pull(t, srv, "app:v1")), digest(t, img); got != want {
		t.Errorf("pulled %s, pushed %s", got, want)
	}
}

// A multi-platform index contributes the image of the nodes' platform.
func TestPushOCIMultiPlatform(t *testing.T) {
	other := "arm64"
	if goruntime.GOARCH == "arm64" {
		other = "amd64"
	}
	mine := ociImage(t, goruntime.GOARCH, layerOf(t, "gzip", entry{name: "app", body: "mine"}))
	theirs := ociImage(t, other, layerOf(t, "gzip", entry{name: "app", body: "theirs"}))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}}},
	)
	r, srv := newRegistry(t, t.TempDir())
	push(t, r, ociArchive(t, map[string]any{"localhost/multi:v1": idx}))
	if got, want := digest(t, pull(t, srv, "multi:v1")), digest(t, mine); got != want {
		t.Errorf("pulled %s, want the %s image %s", got, goruntime.GOARCH, want)
	}

	onlyTheirs := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}})
	_, err := r.PushTarball(context.Background(), bytes.NewReader(ociArchive(t, map[string]any{"localhost/multi:v2": onlyTheirs})), nil)
	want := "the index has no image for linux/" + goruntime.GOARCH + " (it has linux/" + other + ")"
	if !errors.Is(err, registry.ErrInvalidTarball) || !strings.Contains(err.Error(), want) {
		t.Errorf("push of an index without our platform: %v, want %q", err, want)
	}
}

func TestPushRejectsBadOCIArchives(t *testing.T) {
	good := func(layer v1.Layer) []byte {
		return ociArchive(t, map[string]any{"localhost/app:v1": ociImage(t, goruntime.GOARCH, layer)})
	}
	ok := layerOf(t, "gzip", entry{name: "app", body: "fine"})
	tests := []struct {
		name, archive, want string
	}{
		{"dot-dot path", string(good(layerOf(t, "gzip", entry{name: "../etc/passwd", body: "x"}))), `entry "../etc/passwd" has a '..' path component`},
		{"absolute path", string(good(layerOf(t, "zstd", entry{name: "/etc/passwd", body: "x"}))), `entry "/etc/passwd" has an absolute path`},
		{"escaping symlink", string(good(layerOf(t, "none", entry{name: "a/b", typ: tar.TypeSymlink, link: "../../etc"}))), `symlink "a/b" -> "../../etc" points outside the image's root`},
		{"escaping hard link", string(good(layerOf(t, "gzip", entry{name: "x", typ: tar.TypeLink, link: "../y"}))), `hard link "x" -> "../y" points outside`},
		{"no name", string(ociArchive(t, map[string]any{"": ociImage(t, goruntime.GOARCH, ok)})), "it has no name"},
		{"bare tag name", string(ociArchive(t, map[string]any{"v1": ociImage(t, goruntime.GOARCH, ok)})), `a bare tag`},
		{"blob that does not match its digest", string(rewriteTar(t, good(ok), func(name string, data []byte) []byte {
			if strings.HasPrefix(name, "blobs/sha256/") && len(data) > 0 && data[0] == 0x1f { // the gzip layer
				data = slices.Clone(data)
				data[len(data)/2] ^= 0xff
			}
			return data
		})), "content is sha256:"},
		{"neither layout", string(rewriteTar(t, good(ok), func(name string, data []byte) []byte {
			if name == "index.json" {
				return nil
			}
			return data
		})), "neither manifest.json (docker save) nor index.json (OCI image layout)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, _ := newRegistry(t, dir)
			refs, err := r.PushTarball(context.Background(), strings.NewReader(tt.archive), nil)
			if !errors.Is(err, registry.ErrInvalidTarball) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PushTarball = %q, %v; want ErrInvalidTarball saying %q", refs, err, tt.want)
			}
			if got := r.List(); len(got) != 0 {
				t.Errorf("List after a failed push = %q, want nothing", got)
			}
			assertEmptyDir(t, filepath.Join(dir, "tmp"))
		})
	}
}
