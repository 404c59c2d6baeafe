package registry

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Archive formats PushTarball accepts.
const (
	formatDocker  = "docker" // docker save: manifest.json
	formatOCI     = "oci"    // OCI image layout: oci-layout, index.json, blobs/
	refName       = "org.opencontainers.image.ref.name"
	containerdRef = "io.containerd.image.name"
)

// archiveFormat tells a docker-save tarball from an OCI image layout
// archive (podman save --format oci-archive, skopeo and buildah's
// oci-archive:) by the files at its root.
func archiveFormat(tarPath string) (string, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var hasIndex bool
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", invalid("not a tar archive: %v", err)
		}
		switch path.Clean(h.Name) {
		case "manifest.json":
			return formatDocker, nil
		case "index.json":
			hasIndex = true
		}
	}
	if hasIndex {
		return formatOCI, nil
	}
	return "", invalid("neither manifest.json (docker save) nor index.json (OCI image layout) found in the archive")
}

// extractLayout unpacks an OCI layout archive into dir, accepting only
// the layout's own files.
func extractLayout(ctx context.Context, tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalid("not a tar archive: %v", err)
		}
		if strings.HasPrefix(h.Name, "/") || hasDotDot(h.Name) {
			return invalid("archive entry %q escapes the layout", h.Name)
		}
		clean := path.Clean(h.Name)
		switch {
		case h.Typeflag == tar.TypeDir:
			continue
		case h.Typeflag != tar.TypeReg:
			return invalid("archive entry %q is not a regular file", h.Name)
		case clean == "index.json" || clean == "oci-layout" ||
			(strings.HasPrefix(clean, "blobs/") && strings.Count(clean, "/") == 2):
		default:
			continue // not part of the layout (a docker manifest.json copy, repositories)
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if _, err := writeFile(ctx, target, io.LimitReader(tr, h.Size)); err != nil {
			return err
		}
	}
}

// loadLayout checks every image an OCI layout names and stages its blobs.
// A multi-platform index contributes the image for the nodes' platform.
func (p *push) loadLayout(dir string) error {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return invalid("OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return invalid("OCI layout index.json: %v", err)
	}
	if len(im.Manifests) == 0 {
		return invalid("index.json lists no images")
	}
	seen := map[string]bool{}
	for i, desc := range im.Manifests {
		ref, err := layoutRef(desc)
		if err != nil {
			return invalid("image %d (%s): %v", i+1, desc.Digest, err)
		}
		repo, tag := ref.Context().RepositoryStr(), ref.TagStr()
		if !validRepo(repo) || !validTag(tag) {
			return invalid("image %d: %q is not a valid repository:tag", i+1, ref)
		}
		if seen[repo+":"+tag] {
			return invalid("tag %q names more than one image", ref)
		}
		seen[repo+":"+tag] = true
		img, err := imageFor(idx, desc, wantPlatform())
		if err != nil {
			return invalid("image %s: %v", ref, err)
		}
		digest, err := p.stageImage(img)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		p.tags = append(p.tags, pushedTag{repo: repo, tag: tag, digest: digest})
	}
	return nil
}

// layoutRef is the name an index entry gives its image: containerd's full
// image name, or the OCI ref.name annotation as a full reference.
func layoutRef(desc v1.Descriptor) (name.Tag, error) {
	for _, key := range []string{containerdRef, refName} {
		v := desc.Annotations[key]
		if v == "" {
			continue
		}
		if !strings.ContainsAny(v, "/:") {
			return name.Tag{}, fmt.Errorf("its %s is %q, a bare tag: name the image in full when saving it (e.g. localhost/app:v1)", key, v)
		}
		t, err := name.NewTag(v)
		if err != nil {
			return name.Tag{}, fmt.Errorf("its %s %q: %v", key, v, err)
		}
		return t, nil
	}
	return name.Tag{}, fmt.Errorf("it has no name: save it with one (the %s annotation)", refName)
}

// wantPlatform is the platform the nodes run: shoal's own.
func wantPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
}

// imageFor resolves an index entry to one image: the entry itself, or,
// for a multi-platform index, its image for want.
func imageFor(idx v1.ImageIndex, desc v1.Descriptor, want v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return idx.Image(desc.Digest)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range cm.Manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.OS == want.OS && m.Platform.Architecture == want.Architecture && !m.MediaType.IsIndex() {
			return child.Image(m.Digest)
		}
		if m.Platform.OS != "unknown" { // attestation manifests
			have = append(have, platformString(*m.Platform))
		}
	}
	return nil, fmt.Errorf("the index has no image for %s (it has %s)", platformString(want), strings.Join(have, ", "))
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
