package image_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/internal/image"
	"github.com/shoal-dev/shoal/internal/image/imagetest"
)

func TestBuildTarballRoundTrip(t *testing.T) {
	bin := imagetest.Binary(t, "hello v1")
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	opts := image.BuildOptions{
		Ref:          "shoal.local/hello:v1",
		Binary:       bin,
		Path:         "/usr/bin/hello",
		Cmd:          []string{"--greeting", "hi"},
		Env:          []string{"GREETING=hi"},
		ExposedPorts: []string{"8080", "53/udp"},
	}
	built, err := image.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := image.BuildTarball(opts, &buf); err != nil {
		t.Fatal(err)
	}
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil }

	// containerd's Import names images from manifest.json's RepoTags.
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"shoal.local/hello:v1"}) {
		t.Fatalf("manifest.json = %+v, want one image tagged shoal.local/hello:v1", m)
	}

	tag := mustTag(t, "shoal.local/hello:v1")
	img, err := tarball.Image(opener, &tag)
	if err != nil {
		t.Fatalf("read tarball back: %v", err)
	}
	gotDigest, _ := img.Digest()
	wantDigest, _ := built.Digest()
	if gotDigest != wantDigest {
		t.Errorf("tarball image digest %s, Build digest %s: want equal", gotDigest, wantDigest)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s, want %s", mt, types.DockerManifestSchema2)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64 from the ELF header", cfg.OS, cfg.Architecture)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/bin/hello"}) {
		t.Errorf("entrypoint %q, want [/usr/bin/hello]", cfg.Config.Entrypoint)
	}
	if !slices.Equal(cfg.Config.Cmd, opts.Cmd) {
		t.Errorf("cmd %q, want %q", cfg.Config.Cmd, opts.Cmd)
	}
	if !slices.Contains(cfg.Config.Env, "GREETING=hi") || !slices.ContainsFunc(cfg.Config.Env, func(s string) bool { return len(s) > 5 && s[:5] == "PATH=" }) {
		t.Errorf("env %q, want GREETING=hi and a default PATH", cfg.Config.Env)
	}
	if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok || len(cfg.Config.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v, want 8080/tcp and 53/udp", cfg.Config.ExposedPorts)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want 1", len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.DockerLayer {
		t.Errorf("layer media type %s, want %s", mt, types.DockerLayer)
	}
	files := readLayer(t, layers[0])
	tests := []struct {
		name string
		mode int64
		typ  byte
	}{
		{"etc/", 0o755, tar.TypeDir},
		{"etc/passwd", 0o644, tar.TypeReg},
		{"etc/group", 0o644, tar.TypeReg},
		{"tmp/", 0o1777, tar.TypeDir},
		{"usr/", 0o755, tar.TypeDir},
		{"usr/bin/", 0o755, tar.TypeDir},
		{"usr/bin/hello", 0o755, tar.TypeReg},
	}
	for _, tt := range tests {
		f, ok := files[tt.name]
		if !ok {
			t.Errorf("layer has no %s", tt.name)
			continue
		}
		if f.hdr.Mode != tt.mode || f.hdr.Typeflag != tt.typ || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
			t.Errorf("%s: mode %o type %c uid %d gid %d, want mode %o type %c owned by root",
				tt.name, f.hdr.Mode, f.hdr.Typeflag, f.hdr.Uid, f.hdr.Gid, tt.mode, tt.typ)
		}
	}
	if got := files["usr/bin/hello"].data; !bytes.Equal(got, want) {
		t.Errorf("binary in layer differs from the host file (%d vs %d bytes)", len(got), len(want))
	}
	if len(files) != len(tests) {
		t.Errorf("layer has %d entries, want %d", len(files), len(tests))
	}
}

type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func readLayer(t *testing.T, l v1.Layer) map[string]layerFile {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("layer tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = layerFile{hdr, data}
	}
}

func TestBuildDefaultsAndReproducibility(t *testing.T) {
	bin := imagetest.Binary(t, "same")
	opts := image.BuildOptions{Ref: "shoal.local/same:v1", Binary: bin}
	var a, b bytes.Buffer
	if err := image.BuildTarball(opts, &a); err != nil {
		t.Fatal(err)
	}
	if err := image.BuildTarball(opts, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same binary and options differ")
	}
	img, err := image.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/app"}) {
		t.Errorf("default entrypoint %q, want [/app] from the binary's name", cfg.Config.Entrypoint)
	}
	if cfg.Created.Unix() != 0 {
		t.Errorf("created %v, want the Unix epoch", cfg.Created)
	}

	// An absolute entrypoint places the binary when Path is not given.
	img, err = image.Build(image.BuildOptions{Ref: "a:v1", Binary: bin, Entrypoint: []string{"/hello", "-v"}})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if _, ok := readLayer(t, layers[0])["hello"]; !ok {
		t.Error("with entrypoint /hello and no path, the layer has no /hello")
	}
}

func TestBuildRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	static := write("static", imagetest.ELF(elf.EM_X86_64, "", "x"))
	dynamic := write("dynamic", imagetest.ELF(elf.EM_X86_64, "/lib64/ld-linux-x86-64.so.2", "x"))
	script := write("script", []byte("#!/bin/sh\necho hi\n"))
	sparc := write("sparc", imagetest.ELF(elf.EM_SPARCV9, "", "x"))

	tests := []struct {
		name string
		opts image.BuildOptions
	}{
		{"no ref", image.BuildOptions{Binary: static}},
		{"digest ref", image.BuildOptions{Ref: "shoal.local/a@sha256:" + string(bytes.Repeat([]byte("0"), 64)), Binary: static}},
		{"no binary", image.BuildOptions{Ref: "a:v1"}},
		{"dynamic binary", image.BuildOptions{Ref: "a:v1", Binary: dynamic}},
		{"shell script", image.BuildOptions{Ref: "a:v1", Binary: script}},
		{"unknown arch, no platform", image.BuildOptions{Ref: "a:v1", Binary: sparc}},
		{"platform mismatch", image.BuildOptions{Ref: "a:v1", Binary: static, Platform: "linux/arm64"}},
		{"not linux", image.BuildOptions{Ref: "a:v1", Binary: static, Platform: "windows/amd64"}},
		{"relative path", image.BuildOptions{Ref: "a:v1", Binary: static, Path: "app"}},
		{"unclean path", image.BuildOptions{Ref: "a:v1", Binary: static, Path: "/x/../app"}},
		{"path is a base file", image.BuildOptions{Ref: "a:v1", Binary: static, Path: "/etc/passwd"}},
		{"path is a base dir", image.BuildOptions{Ref: "a:v1", Binary: static, Path: "/tmp"}},
		{"path below a base file", image.BuildOptions{Ref: "a:v1", Binary: static, Path: "/etc/passwd/app"}},
		{"bad port", image.BuildOptions{Ref: "a:v1", Binary: static, ExposedPorts: []string{"http"}}},
		{"bad protocol", image.BuildOptions{Ref: "a:v1", Binary: static, ExposedPorts: []string{"80/icmp"}}},
		{"bad env", image.BuildOptions{Ref: "a:v1", Binary: static, Env: []string{"NOEQUALS"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := image.Build(tt.opts)
			if !errors.Is(err, image.ErrInvalid) {
				t.Errorf("Build(%+v) = %v, want an error wrapping ErrInvalid", tt.opts, err)
			}
		})
	}

	t.Run("missing binary file", func(t *testing.T) {
		_, err := image.Build(image.BuildOptions{Ref: "a:v1", Binary: filepath.Join(dir, "nope")})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Build with a missing binary = %v, want os.ErrNotExist", err)
		}
	})
	t.Run("unknown arch with platform", func(t *testing.T) {
		if _, err := image.Build(image.BuildOptions{Ref: "a:v1", Binary: sparc, Platform: "linux/sparc64"}); err != nil {
			t.Errorf("Build with an explicit platform for an unknown machine = %v, want success", err)
		}
	})
}

func TestWriteTarball(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hello.tar")
	opts := image.BuildOptions{Ref: "shoal.local/hello:v1", Binary: imagetest.Binary(t, "x")}
	if err := image.WriteTarball(out, opts); err != nil {
		t.Fatal(err)
	}
	tag := mustTag(t, opts.Ref)
	if _, err := tarball.ImageFromPath(out, &tag); err != nil {
		t.Errorf("ImageFromPath(%s): %v", out, err)
	}

	bad := filepath.Join(dir, "bad.tar")
	opts.Path = "relative"
	if err := image.WriteTarball(bad, opts); err == nil {
		t.Fatal("WriteTarball with bad options succeeded")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"hello.tar"}) {
		t.Errorf("directory holds %q after a failed write, want only hello.tar", names)
	}
}

// The config must be valid JSON that containerd can read; check the fields
// it needs to pick a platform and run the entrypoint are where it looks.
func TestConfigJSONShape(t *testing.T) {
	img, err := image.Build(image.BuildOptions{Ref: "a:v1", Binary: imagetest.Binary(t, "x"), User: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		OS, Architecture string
		Config           struct {
			Entrypoint []string
			User       string
		}
		RootFS struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.OS != "linux" || c.Architecture != "amd64" || c.Config.User != "65534" || c.RootFS.Type != "layers" || len(c.RootFS.DiffIDs) != 1 {
		t.Errorf("config = %s", raw)
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}
