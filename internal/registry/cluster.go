package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Cluster is what the image stores of a cluster's servers share, so that
// a node can pull any image from any server: where each tag points
// (cluster-wide, so a tag pushed again elsewhere is not served stale) and
// the other servers, from whose stores a missing image is copied.
type Cluster interface {
	// Tag returns the manifest digest a tag points at; ok is false when
	// the tag is unknown or the cluster cannot say (then the local tag
	// decides).
	Tag(ctx context.Context, repo, tag string) (digest string, ok bool)
	// SetTags records pushed tags ("repo:tag" -> digest) in one write.
	SetTags(ctx context.Context, tags map[string]string) error
	// Peers are the other servers' registry hosts ("host:port").
	Peers(ctx context.Context) []string
	// Transport reaches them (TLS with this server's certificate).
	Transport() http.RoundTripper
}

// SetCluster makes r one of a cluster's image stores.
func (r *Registry) SetCluster(c Cluster) { r.cluster = c }

// resolve returns the digest repo:tag points at: the cluster's answer
// when it has one, else the local tag.
func (r *Registry) resolve(ctx context.Context, repo, tag string) (v1.Hash, error) {
	if r.cluster != nil {
		if d, ok := r.cluster.Tag(ctx, repo, tag); ok {
			if h, ok := parseDigest(d); ok {
				return h, nil
			}
		}
	}
	return r.resolveTag(repo, tag)
}

// errNotOnPeers: no other server has the image either.
var errNotOnPeers = errors.New("no server has it")

// fetch copies manifest digest of repo, and everything it references,
// from the first peer that has it, checking it as a push is checked.
func (r *Registry) fetch(ctx context.Context, repo string, digest v1.Hash) error {
	if r.cluster == nil {
		return errNotOnPeers
	}
	var errs []error
	for _, peer := range r.cluster.Peers(ctx) {
		ref, err := name.NewDigest(peer+"/"+repo+"@"+digest.String(), name.StrictValidation)
		if err != nil {
			return err
		}
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(r.cluster.Transport()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", peer, err))
			continue
		}
		if err := r.store(ctx, repo, img); err != nil {
			return fmt.Errorf("copy %s@%s from %s: %w", repo, digest, peer, err)
		}
		r.log.Info("image copied from another server", "repo", repo, "digest", digest.String(), "from", peer)
		return nil
	}
	return fmt.Errorf("%s@%s: %w (%v)", repo, digest, errNotOnPeers, errors.Join(errs...))
}

// store checks and stores img under repo, by digest only.
func (r *Registry) store(ctx context.Context, repo string, img v1.Image) error {
	stage, err := os.MkdirTemp(r.tmpDir(), "fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	p := r.newPush(ctx, stage)
	digest, err := p.stageImage(img)
	if err != nil {
		return err
	}
	p.tags = []pushedTag{{repo: repo, digest: digest}} // a link, no tag
	return p.commit()
}

// Ensure makes sure manifest digest of repo is in this store, copying it
// from another server when it is not: servers replicate every pushed
// image this way, so that losing the one it was pushed to loses nothing.
func (r *Registry) Ensure(ctx context.Context, repo, digest string) error {
	h, ok := parseDigest(digest)
	if !ok || !validRepo(repo) {
		return fmt.Errorf("image %s@%s: not a repository and sha256 digest", repo, digest)
	}
	if r.hasManifest(repo, h) {
		return nil
	}
	return r.fetch(ctx, repo, h)
}
