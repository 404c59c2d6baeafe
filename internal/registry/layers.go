package registry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Layer compression, told by the content's magic bytes rather than the
// media type, which archives get wrong often enough.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompressed returns the tar stream of a layer blob compressed with gzip,
// zstd or nothing, and the name of the compression.
func decompressed(r io.Reader) (io.Reader, string, func(), error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, "gzip", func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, "", nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, "zstd", zr.Close, nil
	}
	return br, "uncompressed", func() {}, nil
}

// checkLayerEntry refuses a layer tar entry that could write outside the
// container's root filesystem when unpacked: a path with "..", and a link
// whose target climbs out of the root. Absolute paths are refused too;
// absolute symlink targets are fine, as they resolve inside the root.
func checkLayerEntry(h *tar.Header) error {
	name := h.Name
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("entry %q has an absolute path", name)
	}
	if hasDotDot(name) {
		return fmt.Errorf("entry %q has a '..' path component", name)
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		if !strings.HasPrefix(h.Linkname, "/") && escapes(path.Dir(path.Clean("/"+name)), h.Linkname) {
			return fmt.Errorf("symlink %q -> %q points outside the image's root", name, h.Linkname)
		}
	case tar.TypeLink:
		if strings.HasPrefix(h.Linkname, "/") || hasDotDot(h.Linkname) {
			return fmt.Errorf("hard link %q -> %q points outside the image's root", name, h.Linkname)
		}
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// escapes says whether a relative link target, followed from dir, climbs
// above the root.
func escapes(dir, target string) bool {
	depth := 0
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part != "" && part != "." {
			depth++
		}
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}
