package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// checkToken returns the stored Token that raw proves: well formed, for
// this cluster's CA, known, matching its secret's hash and not expired.
// what names the token in messages ("join token", "bearer token"). Every
// failure is errUnauthenticated, and says which check failed without
// telling a stranger whether an id exists.
func (s *Server) checkToken(ctx context.Context, raw, what string) (*api.Token, error) {
	tok, err := pki.ParseToken(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", what, strings.TrimPrefix(err.Error(), "join token: "), errUnauthenticated)
	}
	if tok.CAFingerprint != s.ca.Fingerprint() {
		return nil, fmt.Errorf("%s: it is for another cluster (its CA fingerprint is %.12s…, this cluster's %.12s…): %w", what, tok.CAFingerprint, s.ca.Fingerprint(), errUnauthenticated)
	}
	obj, err := s.store.Get(ctx, api.MustKind(api.KindToken), "", tok.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s %s: unknown or revoked: %w", what, tok.ID, errUnauthenticated)
	}
	if err != nil {
		return nil, err
	}
	stored := obj.(*api.Token)
	if !tok.Matches(stored.Spec.SecretHash) {
		return nil, fmt.Errorf("%s %s: unknown or revoked: %w", what, tok.ID, errUnauthenticated)
	}
	if time.Now().After(stored.Spec.ExpiresAt) {
		return nil, fmt.Errorf("%s %s: expired at %s (create a new one with `shoal token create`): %w", what, tok.ID, stored.Spec.ExpiresAt.UTC().Format(time.RFC3339), errUnauthenticated)
	}
	return stored, nil
}

// spendJoin counts one join off a join token that has one left; the
// caller stores it (compare-and-swap) with what the join creates. A token
// with none left is refused, saying what to do instead.
func spendJoin(t *api.Token) error {
	left := t.JoinsLeft()
	if left <= 0 {
		create := "shoal token create"
		if t.Spec.Role == api.TokenRoleServer {
			create += " --role server"
		}
		return fmt.Errorf("join token %s was used already (a join token serves one join unless it was made with --uses N): create a new one with `%s` (add --uses N to join N machines with it): %w", t.Metadata.Name, create, errUnauthenticated)
	}
	left--
	t.Spec.UsesLeft = &left
	return nil
}

// bearerIdentity authenticates a request that carries
// "Authorization: Bearer TOKEN" instead of a client certificate: a user
// token makes it that User's request (service accounts, CI).
func (s *Server) bearerIdentity(r *http.Request) (pki.Identity, bool, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return pki.Identity{}, false, nil
	}
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return pki.Identity{}, true, fmt.Errorf("the Authorization header is not \"Bearer TOKEN\": %w", errUnauthenticated)
	}
	t, err := s.checkToken(r.Context(), raw, "bearer token")
	if err != nil {
		return pki.Identity{}, true, err
	}
	if t.Spec.Role != api.TokenRoleUser {
		return pki.Identity{}, true, fmt.Errorf("bearer token %s is a join token (role %s); API requests take a user token (shoal token create --user NAME): %w", t.Metadata.Name, t.Spec.Role, errUnauthenticated)
	}
	return pki.Identity{Name: "user:" + t.Spec.User, User: t.Spec.User, UserUID: t.Spec.UserUID,
		Token: t.Metadata.Name, TokenUID: t.Metadata.UID, NotAfter: t.Spec.ExpiresAt}, true, nil
}

// bindTokens records, on each user Token in objs, the UID of the User it
// acts as; the User must exist. Documents are numbered from 1 when objs
// are a manifest's.
func (s *Server) bindTokens(ctx context.Context, objs []api.Object, manifest bool) error {
	for i, o := range objs {
		t, ok := o.(*api.Token)
		if !ok || t.Spec.Role != api.TokenRoleUser {
			continue
		}
		u, err := s.store.Get(ctx, api.MustKind(api.KindUser), "", t.Spec.User)
		if errors.Is(err, store.ErrNotFound) {
			ie := &api.InvalidError{Kind: api.KindToken, Name: t.Metadata.Name,
				Errors: []api.FieldError{{Path: "spec.user", Message: fmt.Sprintf("there is no user %q (shoal user create %s)", t.Spec.User, t.Spec.User)}}}
			if manifest {
				ie.Document = i + 1
			}
			return ie
		}
		if err != nil {
			return err
		}
		t.Spec.UserUID = u.GetMeta().UID
	}
	return nil
}
