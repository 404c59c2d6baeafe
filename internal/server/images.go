package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/registry"
)

func (s *Server) pushImage(w http.ResponseWriter, r *http.Request) {
	if s.images == nil {
		writeError(w, fmt.Errorf("this server keeps no images: %w", errBadRequest))
		return
	}
	streaming(w)
	refs, err := s.images.PushTarball(r.Context(), http.MaxBytesReader(w, r.Body, MaxImageBytes), s.mayPush(r.Context()))
	if errors.Is(err, errForbidden) {
		writeError(w, err)
		return
	}
	if errors.Is(err, registry.ErrBusy) {
		writeError(w, &retryAfter{fmt.Errorf("%v: %w", err, errTooManyRequests), 5 * time.Second})
		return
	}
	if err != nil {
		writeError(w, fmt.Errorf("push image: %v: %w", err, errBadRequest))
		return
	}
	s.log.Info("image pushed", "refs", refs)
	writeJSON(w, http.StatusOK, map[string][]string{"images": refs})
}

// mayPush decides, per repository of a pushed archive, whether the
// request's user may move its tags: a repository belongs to a namespace
// (registry.RepositoryNamespace), and only its deployers push to it.
// Cluster-admins and servers (no User) push anywhere; nodes never reach
// here.
func (s *Server) mayPush(ctx context.Context) func(repo string) error {
	u, ok := ctx.Value(userKey).(*api.User)
	if !ok || isClusterAdmin(u) {
		return nil
	}
	return func(repo string) error {
		ns := registry.RepositoryNamespace(repo)
		if allowed(rolesIn(u, ns), "create", api.KindApp, false) {
			return nil
		}
		name := repo
		if i := strings.IndexByte(repo, '/'); i > 0 {
			name = repo[i+1:]
		}
		return fmt.Errorf("user %q may not push to repository %q: it belongs to namespace %q (a repository NAMESPACE/NAME belongs to NAMESPACE, one without a namespace part to %q), where the user does not deploy (%s); tag the image %s/NAMESPACE/%s for a namespace you deploy in: %w",
			u.Metadata.Name, repo, ns, registry.DefaultNamespace, describeRoles(u), api.LocalRegistry, name, errForbidden)
	}
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	var refs []string
	if s.images != nil {
		refs = s.images.List()
	}
	if refs == nil {
		refs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"images": refs})
}
