package image

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ErrInvalid is wrapped by every error about unusable build options or a
// binary that cannot run in a one-binary image.
var ErrInvalid = errors.New("invalid image build")

// BuildOptions describe a one-binary image.
type BuildOptions struct {
	// Ref is the tag the tarball carries, e.g. "shoal.local/hello:v1".
	// Images for the cluster's built-in store use the host "shoal.local".
	Ref string
	// Binary is the host path of a statically linked Linux executable.
	Binary string
	// Path is where the binary lives in the image. Default: Entrypoint[0]
	// if that is absolute, else "/" + the binary's base name.
	Path string
	// Entrypoint defaults to []string{Path}.
	Entrypoint []string
	Cmd        []string
	// Env is KEY=VALUE pairs; a conventional PATH is added unless given.
	Env []string
	// ExposedPorts are "8080", "8080/tcp" or "53/udp".
	ExposedPorts []string
	// Platform is "os/arch[/variant]", e.g. "linux/amd64". Default: read
	// from the binary's ELF header; a mismatch with the header is an error.
	Platform string
	// User is the user (name or uid[:gid]) the entrypoint runs as; default
	// root. The image's /etc/passwd knows "root" and "nobody" (65534).
	User string
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is every timestamp in a built image, so builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Build returns the image described by opts. Its Digest is the manifest
// digest the registry serves after the tarball is pushed.
func Build(opts BuildOptions) (v1.Image, error) {
	img, _, err := build(opts)
	return img, err
}

// BuildTarball builds the image and writes it to w as a docker-save tarball
// tagged opts.Ref (see the package documentation for why this format).
func BuildTarball(opts BuildOptions, w io.Writer) error {
	img, tag, err := build(opts)
	if err != nil {
		return err
	}
	if err := tarball.Write(tag, img, w); err != nil {
		return fmt.Errorf("write image tarball: %w", err)
	}
	return nil
}

// WriteTarball is BuildTarball to a file. The file appears complete or not
// at all: it is written beside path and renamed into place.
func WriteTarball(path string, opts BuildOptions) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := BuildTarball(opts, f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func build(opts BuildOptions) (v1.Image, name.Tag, error) {
	tag, err := name.NewTag(opts.Ref)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("%w: ref %q: %v", ErrInvalid, opts.Ref, err)
	}
	if opts.Binary == "" {
		return nil, name.Tag{}, fmt.Errorf("%w: no binary given", ErrInvalid)
	}
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("read binary: %w", err)
	}
	binArch, err := checkStaticELF(bin)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("%w: %s: %v", ErrInvalid, opts.Binary, err)
	}
	platform, err := choosePlatform(opts.Platform, binArch)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("%w: %s: %v", ErrInvalid, opts.Binary, err)
	}

	inImage := opts.Path
	if inImage == "" {
		// The binary is the image's only executable, so an absolute
		// entrypoint can only mean the binary's place.
		if len(opts.Entrypoint) > 0 && path.IsAbs(opts.Entrypoint[0]) {
			inImage = opts.Entrypoint[0]
		} else {
			inImage = "/" + filepath.Base(opts.Binary)
		}
	}
	if !path.IsAbs(inImage) || path.Clean(inImage) != inImage || inImage == "/" {
		return nil, name.Tag{}, fmt.Errorf("%w: path in image %q: want a clean absolute file path such as /hello", ErrInvalid, inImage)
	}
	ports, err := exposedPorts(opts.ExposedPorts)
	if err != nil {
		return nil, name.Tag{}, err
	}
	for _, kv := range opts.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, name.Tag{}, fmt.Errorf("%w: env %q: want KEY=VALUE", ErrInvalid, kv)
		}
	}

	layerTar, err := rootfsTar(inImage, bin)
	if err != nil {
		return nil, name.Tag{}, err
	}
	layer, err := tarball.LayerFromOpener(layerTar.opener(),
		tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("make layer: %w", err)
	}

	entrypoint := opts.Entrypoint
	if len(entrypoint) == 0 {
		entrypoint = []string{inImage}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Variant:      platform.Variant,
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint:   entrypoint,
			Cmd:          opts.Cmd,
			Env:          withDefaultPath(opts.Env),
			ExposedPorts: ports,
			User:         opts.User,
			WorkingDir:   "/",
		},
	})
	if err != nil {
		return nil, name.Tag{}, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "shoal image build " + inImage,
		},
	})
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("append layer: %w", err)
	}
	return img, tag, nil
}

func choosePlatform(want, binArch string) (*v1.Platform, error) {
	if want == "" {
		if binArch == "" {
			return nil, errors.New("cannot tell the CPU architecture from the ELF header; give a platform such as linux/amd64")
		}
		return &v1.Platform{OS: "linux", Architecture: binArch}, nil
	}
	p, err := v1.ParsePlatform(want)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %v", want, err)
	}
	if p.OS != "linux" {
		return nil, fmt.Errorf("platform %q: only linux images can be built from an ELF binary", want)
	}
	if binArch != "" && p.Architecture != binArch {
		return nil, fmt.Errorf("platform %q does not match the binary, which is built for %s", want, binArch)
	}
	return p, nil
}

func exposedPorts(specs []string) (map[string]struct{}, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	ports := make(map[string]struct{}, len(specs))
	for _, s := range specs {
		num, proto, ok := strings.Cut(s, "/")
		if !ok {
			proto = "tcp"
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			return nil, fmt.Errorf("%w: exposed port %q: want PORT or PORT/tcp|udp|sctp", ErrInvalid, s)
		}
		ports[strconv.Itoa(n)+"/"+proto] = struct{}{}
	}
	return ports, nil
}

func withDefaultPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append([]string{defaultPath}, env...)
}
