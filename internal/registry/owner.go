package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// DefaultNamespace owns the repositories whose name has one component
// ("hello"), as api.DefaultNamespace; registry imports nothing of ours.
const DefaultNamespace = "default"

// RepositoryNamespace is the namespace a repository belongs to: the first
// component of a name with several ("payments/api" belongs to payments),
// and the default namespace for a name of one ("hello", which
// shoal.local/hello:v1 names). Only those who may deploy in that
// namespace may push to it. Ownership follows from the name alone, so
// there is nothing to claim and nothing to squat: a namespace's
// repositories are its own before anyone pushes.
func RepositoryNamespace(repo string) string {
	if i := strings.IndexByte(repo, '/'); i > 0 {
		return repo[:i]
	}
	return DefaultNamespace
}

// ErrUnknownImage is a tag the store does not hold; ErrInvalidName a
// repository or tag no image can have.
var (
	ErrUnknownImage = errors.New("no such image in the cluster's image store")
	ErrInvalidName  = errors.New("not a valid repository:tag")
)

// Resolve returns the manifest digest ("sha256:HEX") that repo:tag points
// at now: the cluster's record, else this server's own tag.
func (r *Registry) Resolve(ctx context.Context, repo, tag string) (string, error) {
	if !validRepo(repo) || !validTag(tag) {
		return "", fmt.Errorf("%s:%s: %w (repositories are lowercase letters, digits and . _ - between slashes; tags at most 128 of letters, digits and . _ -)", repo, tag, ErrInvalidName)
	}
	h, err := r.resolve(ctx, repo, tag)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s:%s: %w", repo, tag, ErrUnknownImage)
	}
	if err != nil {
		return "", err
	}
	return h.String(), nil
}
