package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// PushTarball stores every image of an archive under each of its tags,
// with the host part of the tag dropped. The archive is a docker-save
// tarball (what image.BuildTarball and `docker save` write) or an OCI image
// layout (what `podman save --format oci-archive`, skopeo and buildah's
// oci-archive: write); layers may be gzip, zstd or uncompressed, and a
// multi-platform index contributes the image for the nodes' platform. It returns the stored
// refs as List spells them. The tarball is checked completely before any
// tag changes; errors about its content wrap ErrInvalidTarball. The caller
// limits how much r may deliver. may, when set, is asked about every
// repository the archive names once it is checked and before any tag
// changes: an error from it fails the push, wrapped, and changes nothing.
func (r *Registry) PushTarball(ctx context.Context, in io.Reader, may func(repo string) error) ([]string, error) {
	// Each push spools up to what the caller lets in (and as much again
	// staged): a bound on pushes at once is a bound on the spool.
	select {
	case r.pushSlots <- struct{}{}:
		defer func() { <-r.pushSlots }()
	default:
		return nil, fmt.Errorf("push: %d pushes are being received, the most this server takes at once: try again in a moment: %w", cap(r.pushSlots), ErrBusy)
	}
	stage, err := os.MkdirTemp(r.tmpDir(), "push-")
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	defer os.RemoveAll(stage)

	// tarball.Image reads the tar several times, so spool it to disk.
	upload := filepath.Join(stage, "upload.tar")
	if _, err := writeFile(ctx, upload, in); err != nil {
		return nil, fmt.Errorf("push: receiving tarball: %w", err)
	}
	p := r.newPush(ctx, stage)
	format, err := archiveFormat(upload)
	if err == nil && format == formatDocker {
		err = p.load(func() (io.ReadCloser, error) { return os.Open(upload) })
	} else if err == nil {
		dir := filepath.Join(stage, "layout")
		if err = extractLayout(ctx, upload, dir); err == nil {
			err = p.loadLayout(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	if may != nil {
		asked := map[string]bool{}
		for _, t := range p.tags {
			if asked[t.repo] {
				continue
			}
			asked[t.repo] = true
			if err := may(t.repo); err != nil {
				return nil, fmt.Errorf("push %s:%s: %w", t.repo, t.tag, err)
			}
		}
	}
	if err := p.commit(); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	if r.cluster != nil {
		tags := map[string]string{}
		for _, t := range p.tags {
			tags[t.repo+":"+t.tag] = t.digest.String()
		}
		if err := r.cluster.SetTags(ctx, tags); err != nil {
			return nil, fmt.Errorf("push: record the tags for the other servers: %w", err)
		}
	}

	refs := make([]string, 0, len(p.tags))
	for _, t := range p.tags {
		refs = append(refs, t.repo+":"+t.tag)
		r.log.Info("image pushed", "repo", t.repo, "tag", t.tag, "digest", t.digest.String())
	}
	sort.Strings(refs)
	return refs, nil
}

// newPush starts staging a push (or a copy from a peer) in stage.
func (r *Registry) newPush(ctx context.Context, stage string) *push {
	return &push{r: r, ctx: ctx, stage: stage, staged: map[v1.Hash]string{}, unpackedLeft: r.maxUnpacked}
}

// push is one PushTarball in progress.
type push struct {
	r      *Registry
	ctx    context.Context
	stage  string
	staged map[v1.Hash]string // verified blobs waiting in stage
	tags   []pushedTag
	// unpackedLeft is how much more the push's layers may decompress to.
	unpackedLeft int64
}

// ErrBusy says the registry is receiving as many pushes as it takes at
// once; trying again later may succeed.
var ErrBusy = errors.New("image store busy")

// errUnpackedTooLarge stops a layer's decompression past the push's
// limit.
var errUnpackedTooLarge = errors.New("decompresses past the limit")

// unpackLimit counts what a push's layers decompress to.
type unpackLimit struct {
	r io.Reader
	p *push
}

func (u unpackLimit) Read(b []byte) (int, error) {
	n, err := u.r.Read(b)
	if u.p.unpackedLeft -= int64(n); u.p.unpackedLeft < 0 {
		return n, errUnpackedTooLarge
	}
	return n, err
}

// tooUnpacked is the error of a layer that took the push past its limit.
func (p *push) tooUnpacked(desc v1.Descriptor) error {
	return invalid("layer %s: the push's layers decompress to more than %s, the most this server takes in one push (a guard against compression bombs): push the images one at a time, or make them smaller",
		desc.Digest, humanBytes(p.r.maxUnpacked))
}

// humanBytes writes n as "8 GiB", "64 MiB" or bytes.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

type pushedTag struct {
	repo, tag string
	digest    v1.Hash
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTarball, fmt.Sprintf(format, args...))
}

// load checks every image in the tarball and stages its blobs.
func (p *push) load(opener tarball.Opener) error {
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return invalid("reading manifest.json: %v", err)
	}
	if len(m) == 0 {
		return invalid("manifest.json lists no images")
	}
	seen := map[string]bool{}
	for i, desc := range m {
		if len(desc.RepoTags) == 0 {
			return invalid("image %d (config %s) has no tag", i, desc.Config)
		}
		var first name.Tag
		var tags []pushedTag
		for j, rt := range desc.RepoTags {
			t, err := name.NewTag(rt)
			if err != nil {
				return invalid("tag %q: %v", rt, err)
			}
			repo, tag := t.Context().RepositoryStr(), t.TagStr()
			if !validRepo(repo) || !validTag(tag) {
				return invalid("tag %q: not a valid repository:tag", rt)
			}
			if seen[repo+":"+tag] {
				return invalid("tag %q names more than one image", rt)
			}
			seen[repo+":"+tag] = true
			if j == 0 {
				first = t
			}
			tags = append(tags, pushedTag{repo: repo, tag: tag})
		}
		img, err := tarball.Image(opener, &first)
		if err != nil {
			return invalid("image %s: %v", first, err)
		}
		digest, err := p.stageImage(img)
		if err != nil {
			return fmt.Errorf("image %s: %w", first, err)
		}
		for k := range tags {
			tags[k].digest = digest
		}
		p.tags = append(p.tags, tags...)
	}
	return nil
}

// stageImage verifies one image and stages its config, layers and
// manifest, returning the manifest digest.
func (p *push) stageImage(img v1.Image) (v1.Hash, error) {
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, invalid("config: %v", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return v1.Hash{}, invalid("config: %v", err)
	}
	mf, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, invalid("manifest: %v", err)
	}
	rawMf, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, invalid("manifest: %v", err)
	}
	if len(mf.Layers) != len(cfg.RootFS.DiffIDs) {
		return v1.Hash{}, invalid("%d layers but the config lists %d diff IDs", len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}
	if err := p.stageBytes(mf.Config.Digest, rawCfg); err != nil {
		return v1.Hash{}, err
	}
	for i, l := range mf.Layers {
		if !l.MediaType.IsDistributable() {
			return v1.Hash{}, invalid("layer %s is a foreign layer (%s), which the store cannot serve", l.Digest, l.MediaType)
		}
		if err := p.stageLayer(img, l, cfg.RootFS.DiffIDs[i]); err != nil {
			return v1.Hash{}, err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, invalid("manifest digest: %v", err)
	}
	if err := p.stageBytes(digest, rawMf); err != nil {
		return v1.Hash{}, err
	}
	return digest, nil
}

func (p *push) have(h v1.Hash) bool {
	_, staged := p.staged[h]
	return staged || p.r.hasBlob(h)
}

func (p *push) stageBytes(h v1.Hash, b []byte) error {
	if p.have(h) {
		return nil
	}
	return p.stageBlob(v1.Descriptor{Digest: h, Size: int64(len(b))}, bytes.NewReader(b))
}

// stageLayer stages a layer blob (gzip, zstd or uncompressed) and checks
// that it decompresses to the content the config's diff ID names and that
// no entry of it could land outside the container's root, so a corrupt or
// hostile layer fails the push here instead of every node's unpack later.
func (p *push) stageLayer(img v1.Image, desc v1.Descriptor, diffID v1.Hash) error {
	if p.have(desc.Digest) {
		return nil
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return invalid("layer %s: %v", desc.Digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return invalid("layer %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	if err := p.stageBlob(desc, rc); err != nil {
		return err
	}

	f, err := os.Open(p.staged[desc.Digest])
	if err != nil {
		return err
	}
	defer f.Close()
	zr, compression, done, err := decompressed(f)
	if err != nil {
		return invalid("layer %s: %v", desc.Digest, err)
	}
	defer done()
	h := sha256.New()
	content := io.TeeReader(ctxReader{p.ctx, unpackLimit{zr, p}}, h)
	tr := tar.NewReader(content)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctxErr := p.ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if errors.Is(err, errUnpackedTooLarge) {
				return p.tooUnpacked(desc)
			}
			return invalid("layer %s (%s): not a tar archive: %v", desc.Digest, compression, err)
		}
		if err := checkLayerEntry(hdr); err != nil {
			return invalid("layer %s: %v", desc.Digest, err)
		}
	}
	// The diff ID covers the whole stream, tar padding included.
	if _, err := io.Copy(io.Discard, content); err != nil {
		if ctxErr := p.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if errors.Is(err, errUnpackedTooLarge) {
			return p.tooUnpacked(desc)
		}
		return invalid("layer %s: decompressing %s: %v", desc.Digest, compression, err)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != diffID.String() {
		return invalid("layer %s decompresses to %s, but the config says %s", desc.Digest, got, diffID)
	}
	return nil
}

// stageBlob writes rd to the stage directory, checking it against desc.
func (p *push) stageBlob(desc v1.Descriptor, rd io.Reader) error {
	if desc.Digest.Algorithm != "sha256" {
		return invalid("blob %s: only sha256 digests are supported", desc.Digest)
	}
	path := filepath.Join(p.stage, desc.Digest.Hex)
	got, err := writeFile(p.ctx, path, rd)
	if err != nil {
		if p.ctx.Err() != nil || errors.Is(err, errWrite) {
			return err
		}
		return invalid("blob %s: %v", desc.Digest, err)
	}
	if got.digest != desc.Digest || got.size != desc.Size {
		return invalid("blob %s: content is %s (%d bytes), want %d bytes", desc.Digest, got.digest, got.size, desc.Size)
	}
	p.staged[desc.Digest] = path
	return nil
}

// commit moves staged blobs into the store, then points the tags at their
// manifests. Blobs first and tags last means a crash in between leaves
// only unreferenced blobs.
func (p *push) commit() error {
	r := p.r
	r.pushMu.Lock()
	defer r.pushMu.Unlock()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	for h, path := range p.staged {
		if r.hasBlob(h) {
			continue
		}
		if err := os.Rename(path, r.blobPath(h)); err != nil {
			return fmt.Errorf("storing blob: %w", err)
		}
	}
	syncDir(r.blobDir())

	for _, t := range p.tags {
		link := r.linkPath(t.repo, t.digest)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("storing %s: %w", t.repo, err)
		}
		if err := os.WriteFile(link, nil, 0o644); err != nil {
			return fmt.Errorf("storing %s: %w", t.repo, err)
		}
	}
	for _, t := range p.tags {
		if t.tag == "" {
			continue // an image copied by digest
		}
		tagFile := r.tagPath(t.repo, t.tag)
		if err := os.MkdirAll(filepath.Dir(tagFile), 0o755); err != nil {
			return fmt.Errorf("tagging %s:%s: %w", t.repo, t.tag, err)
		}
		tmp := filepath.Join(p.stage, "tag")
		// Once blobs are in place the tags are written whatever the
		// context says, so a push never stops half tagged.
		if _, err := writeFile(context.Background(), tmp, bytes.NewReader([]byte(t.digest.String()+"\n"))); err != nil {
			return fmt.Errorf("tagging %s:%s: %w", t.repo, t.tag, err)
		}
		if err := os.Rename(tmp, tagFile); err != nil {
			return fmt.Errorf("tagging %s:%s: %w", t.repo, t.tag, err)
		}
		syncDir(filepath.Dir(tagFile))
	}
	return nil
}

// errWrite marks failures of the local disk, as opposed to the input.
var errWrite = errors.New("writing to the image store")

type written struct {
	digest v1.Hash
	size   int64
}

// writeFile copies rd to a new file at path, synced to disk, and returns
// the content's sha256 digest and size.
func writeFile(ctx context.Context, path string, rd io.Reader) (written, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return written{}, fmt.Errorf("%w: %v", errWrite, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(diskWriter{f}, h), ctxReader{ctx, rd})
	if err != nil {
		if ctx.Err() != nil {
			return written{}, ctx.Err()
		}
		return written{}, err
	}
	if err := f.Sync(); err != nil {
		return written{}, fmt.Errorf("%w: %v", errWrite, err)
	}
	if err := f.Close(); err != nil {
		return written{}, fmt.Errorf("%w: %v", errWrite, err)
	}
	return written{digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}, size: n}, nil
}

// diskWriter marks write errors as the store's, not the input's.
type diskWriter struct{ f *os.File }

func (w diskWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if err != nil {
		err = fmt.Errorf("%w: %v", errWrite, err)
	}
	return n, err
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// syncDir makes renames into dir durable; failure only weakens durability
// after a power cut, so it is not an error.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
