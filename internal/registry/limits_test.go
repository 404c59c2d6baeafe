package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/image/imagetest"
	"github.com/shoal-dev/shoal/internal/registry"
)

// TestPushRefusesACompressionBomb: a layer that decompresses past the
// push's limit is refused (a small gzip of zeros, many MiB unpacked), in
// either archive format, and nothing is tagged.
func TestPushRefusesACompressionBomb(t *testing.T) {
	r, _ := newRegistry(t, t.TempDir())
	r.SetPushLimits(4<<20, 0)
	bomb := layerOf(t, "gzip", entry{name: "zeros", body: strings.Repeat("\x00", 16<<20)})
	if size, _ := bomb.Size(); size > 1<<20 {
		t.Fatalf("the bomb layer is %d bytes compressed; the test wants a small one", size)
	}
	archive := ociArchive(t, map[string]any{"localhost/bomb:v1": ociImage(t, goruntime.GOARCH, bomb)})
	_, err := r.PushTarball(context.Background(), bytes.NewReader(archive), nil)
	if !errors.Is(err, registry.ErrInvalidTarball) || !strings.Contains(err.Error(), "decompress to more than 4 MiB, the most this server takes in one push") {
		t.Errorf("push of a 16 MiB layer under a 4 MiB limit = %v; want ErrInvalidTarball naming the limit", err)
	}
	if got := r.List(); len(got) != 0 {
		t.Errorf("after the refused push List = %q; want nothing", got)
	}
	// Under the limit the same store takes an ordinary image.
	push(t, r, imagetest.Tarball(t, "a:v1", "x"))
}

// TestPushesAtOnceAreBounded: with one push at a time, a second while the
// first is being received is ErrBusy; once the first ends another goes.
func TestPushesAtOnceAreBounded(t *testing.T) {
	dir := t.TempDir()
	r, _ := newRegistry(t, dir)
	r.SetPushLimits(0, 1)
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := r.PushTarball(context.Background(), pr, nil)
		first <- err
	}()
	// The first push is being received once its spool exists.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "tmp", "push-*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first push made no spool")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := r.PushTarball(context.Background(), bytes.NewReader(imagetest.Tarball(t, "b:v1", "x")), nil)
	if !errors.Is(err, registry.ErrBusy) || !strings.Contains(err.Error(), "1 pushes are being received") {
		t.Errorf("a second push meanwhile = %v; want ErrBusy", err)
	}
	pw.CloseWithError(os.ErrClosed)
	if err := <-first; err == nil {
		t.Errorf("the first push, cut off, succeeded")
	}
	push(t, r, imagetest.Tarball(t, "b:v1", "x"))
}
