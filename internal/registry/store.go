package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrInvalidTarball is wrapped by PushTarball's errors about the upload
// itself (as opposed to the server's disk); the API answers them with 400.
var ErrInvalidTarball = errors.New("invalid image tarball")

var (
	// From the OCI distribution spec.
	repoPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	hexPattern  = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

const maxRepoLen = 255

func validRepo(repo string) bool { return len(repo) <= maxRepoLen && repoPattern.MatchString(repo) }
func validTag(tag string) bool   { return tagPattern.MatchString(tag) }

// Registry stores pushed images on disk and serves them to nodes.
type Registry struct {
	dir string
	log *slog.Logger
	// pushMu serialises the commit phase of pushes; readers need no lock
	// because every file becomes visible by an atomic rename.
	pushMu sync.Mutex
	// cluster, when set, shares tags with the other servers and supplies
	// images this store lacks (SetCluster).
	cluster Cluster
	// pushSlots holds one token per push being received; maxUnpacked
	// bounds what one push's layers decompress to (SetPushLimits).
	pushSlots   chan struct{}
	maxUnpacked int64
}

// Defaults of SetPushLimits.
const (
	DefaultMaxUnpackedBytes = 8 << 30
	DefaultConcurrentPushes = 2
)

// SetPushLimits bounds pushes: at most concurrent received at once (more
// are refused with ErrBusy), and the layers of one decompressing to at
// most unpacked bytes (a compression bomb fills nodes' disks when they
// unpack it). Zero keeps a default. Call it before the first push.
func (r *Registry) SetPushLimits(unpacked int64, concurrent int) {
	if unpacked > 0 {
		r.maxUnpacked = unpacked
	}
	if concurrent > 0 {
		r.pushSlots = make(chan struct{}, concurrent)
	}
}

// New opens (creating if needed) the image store in dir.
func New(dir string, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{dir: dir, log: log, pushSlots: make(chan struct{}, DefaultConcurrentPushes), maxUnpacked: DefaultMaxUnpackedBytes}
	for _, d := range []string{r.blobDir(), r.repoRoot()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// Leftovers of pushes interrupted by a crash are never referenced.
	if err := os.RemoveAll(r.tmpDir()); err != nil {
		return nil, fmt.Errorf("image store: clear %s: %w", r.tmpDir(), err)
	}
	if err := os.MkdirAll(r.tmpDir(), 0o755); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return r, nil
}

func (r *Registry) blobDir() string  { return filepath.Join(r.dir, "blobs", "sha256") }
func (r *Registry) repoRoot() string { return filepath.Join(r.dir, "repositories") }
func (r *Registry) tmpDir() string   { return filepath.Join(r.dir, "tmp") }

// blobPath is where a sha256 blob lives; callers have checked h.
func (r *Registry) blobPath(h v1.Hash) string { return filepath.Join(r.blobDir(), h.Hex) }

func (r *Registry) repoDir(repo string) string {
	return filepath.Join(r.repoRoot(), filepath.FromSlash(repo))
}
func (r *Registry) linkPath(repo string, h v1.Hash) string {
	return filepath.Join(r.repoDir(repo), "_manifests", h.Hex)
}
func (r *Registry) tagPath(repo, tag string) string {
	return filepath.Join(r.repoDir(repo), "_tags", tag)
}

// parseDigest accepts only sha256 digests, the only kind stored.
func parseDigest(s string) (v1.Hash, bool) {
	h, err := v1.NewHash(s)
	if err != nil || h.Algorithm != "sha256" || !hexPattern.MatchString(h.Hex) {
		return v1.Hash{}, false
	}
	return h, true
}

func (r *Registry) hasBlob(h v1.Hash) bool {
	_, err := os.Stat(r.blobPath(h))
	return err == nil
}

// repoExists reports whether anything was ever pushed to repo.
func (r *Registry) repoExists(repo string) bool {
	fi, err := os.Stat(filepath.Join(r.repoDir(repo), "_manifests"))
	return err == nil && fi.IsDir()
}

// resolveTag returns the manifest digest repo:tag points at, or
// fs.ErrNotExist.
func (r *Registry) resolveTag(repo, tag string) (v1.Hash, error) {
	b, err := os.ReadFile(r.tagPath(repo, tag))
	if err != nil {
		return v1.Hash{}, err
	}
	h, ok := parseDigest(strings.TrimSpace(string(b)))
	if !ok {
		return v1.Hash{}, fmt.Errorf("tag file %s is corrupt", r.tagPath(repo, tag))
	}
	return h, nil
}

// hasManifest reports whether manifest h was pushed to repo.
func (r *Registry) hasManifest(repo string, h v1.Hash) bool {
	_, err := os.Stat(r.linkPath(repo, h))
	return err == nil
}

// tags returns repo's tags, sorted.
func (r *Registry) tags(repo string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(r.repoDir(repo), "_tags"))
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, e := range entries {
		if e.Type().IsRegular() && validTag(e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	return tags, nil
}

// List returns every stored image as "repo:tag" (no host), sorted.
func (r *Registry) List() []string {
	var refs []string
	root := r.repoRoot()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == "_manifests" {
			return filepath.SkipDir
		}
		if d.Name() != "_tags" {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		repo := filepath.ToSlash(rel)
		tags, err := r.tags(repo)
		if err != nil {
			return err
		}
		for _, t := range tags {
			refs = append(refs, repo+":"+t)
		}
		return filepath.SkipDir
	})
	if err != nil {
		r.log.Error("listing images", "dir", root, "err", err)
	}
	sort.Strings(refs)
	return refs
}
