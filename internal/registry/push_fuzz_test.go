package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/internal/image/imagetest"
	"github.com/shoal-dev/shoal/internal/registry"
)

// maxFuzzTarball bounds the archives FuzzPushTarball tries: the push path
// spools each to disk.
const maxFuzzTarball = 256 << 10

// FuzzPushTarball: any deployer uploads image archives; whatever the
// archive (docker-save or OCI layout, broken anywhere), PushTarball never
// panics, says what is wrong with its content as ErrInvalidTarball (a 400,
// not a 500), and the refs it reports stored are listed.
func FuzzPushTarball(f *testing.F) {
	f.Add(imagetest.Tarball(f, "localhost/fuzz:v1", "one"))
	f.Add(ociArchive(f, map[string]any{"localhost/fuzz:oci": ociImage(f, runtime.GOARCH, layerOf(f, "none", entry{name: "app", body: "x"}))}))
	f.Add(ociArchive(f, map[string]any{"localhost/fuzz:gz": ociImage(f, runtime.GOARCH, layerOf(f, "gzip", entry{name: "a/../../etc", typ: tar.TypeSymlink, link: "/etc"}))}))
	var small bytes.Buffer
	tw := tar.NewWriter(&small)
	_ = tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	_, _ = tw.Write([]byte("[]"))
	_ = tw.Close()
	f.Add(small.Bytes())
	f.Add([]byte{})
	r, err := registry.New(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzTarball {
			return
		}
		refs, err := r.PushTarball(context.Background(), bytes.NewReader(data), nil)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalidTarball) {
				t.Fatalf("PushTarball: %v does not wrap ErrInvalidTarball", err)
			}
			return
		}
		listed := r.List()
		for _, ref := range refs {
			if !slices.Contains(listed, ref) {
				t.Fatalf("pushed %s is not listed (%v)", ref, listed)
			}
		}
	})
}
