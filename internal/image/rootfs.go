package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Files every image gets besides the binary: enough for os/user lookups,
// for programs that write to /tmp, and for User "nobody".
const (
	etcPasswd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	etcGroup = "root:x:0:\n" +
		"nogroup:x:65534:\n"
)

// layerBytes is an uncompressed layer held in memory: the binary is read
// once, so every pass ggcr makes over the layer sees the same bytes.
type layerBytes []byte

func (b layerBytes) opener() tarball.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// rootfsTar returns the image's only layer: the base directories and files
// plus the binary at binPath (absolute, clean) with mode 0755.
func rootfsTar(binPath string, bin []byte) (layerBytes, error) {
	type entry struct {
		mode int64
		data []byte
		dir  bool
	}
	entries := map[string]entry{
		"etc":        {mode: 0o755, dir: true},
		"tmp":        {mode: 0o1777, dir: true},
		"etc/passwd": {mode: 0o644, data: []byte(etcPasswd)},
		"etc/group":  {mode: 0o644, data: []byte(etcGroup)},
	}
	rel := strings.TrimPrefix(binPath, "/")
	if _, taken := entries[rel]; taken {
		return nil, fmt.Errorf("%w: path in image %q is one of the image's own files or directories", ErrInvalid, binPath)
	}
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if e, ok := entries[d]; ok && !e.dir {
			return nil, fmt.Errorf("%w: path in image %q is below the file /%s", ErrInvalid, binPath, d)
		}
		if _, ok := entries[d]; !ok {
			entries[d] = entry{mode: 0o755, dir: true}
		}
	}
	entries[rel] = entry{mode: 0o755, data: bin}

	// Sorted names put every directory before what it contains and make
	// the layer, and so the image digest, reproducible.
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		hdr := &tar.Header{
			Name:    n,
			Mode:    e.mode,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
