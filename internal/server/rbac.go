package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// Users act through the roles their User object binds (api.Role):
//
//	viewer    get, list, watch, logs             in its namespace (Secrets redacted)
//	deployer  + create, update, delete, apply,   Apps and Secrets in its namespace;
//	            scale                            image pushes
//	admin     any verb on anything               in its namespace (exec, reveal, instances)
//	cluster-admin                                anything anywhere: nodes, namespaces, tokens, users
//
// Everyone authenticated may read Nodes and Namespaces, the version and
// pull images.

// userKey carries a request's User from the guard to handlers that decide
// per object (apply).
type ctxKey int

const (
	userKey ctxKey = iota
	// identityKey carries the request's pki.Identity.
	identityKey
)

// userCurrent checks that id's User still exists with the UID its
// certificate or token was issued for, and returns it.
func (s *Server) userCurrent(ctx context.Context, id pki.Identity) (*api.User, error) {
	cred := "certificate"
	if id.Token != "" {
		cred = "token " + id.Token
	}
	obj, err := s.store.Get(ctx, api.MustKind(api.KindUser), "", id.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("the %s of user %q was revoked (the user was deleted): %w", cred, id.User, errUnauthenticated)
	}
	if err != nil {
		return nil, err
	}
	if obj.GetMeta().UID != id.UserUID {
		return nil, fmt.Errorf("the %s of user %q was issued for an earlier user of that name: %w", cred, id.User, errUnauthenticated)
	}
	return obj.(*api.User), nil
}

// rolesIn returns the user's strongest role in ns ("" for none);
// cluster-admin counts everywhere.
func rolesIn(u *api.User, ns string) api.Role {
	best := api.Role("")
	rank := map[api.Role]int{"": 0, api.RoleViewer: 1, api.RoleDeployer: 2, api.RoleAdmin: 3, api.RoleClusterAdmin: 4}
	for _, b := range u.Spec.Roles {
		if (b.Role == api.RoleClusterAdmin || b.Namespace == ns) && rank[b.Role] > rank[best] {
			best = b.Role
		}
	}
	return best
}

func isClusterAdmin(u *api.User) bool {
	return slices.ContainsFunc(u.Spec.Roles, func(b api.RoleBinding) bool { return b.Role == api.RoleClusterAdmin })
}

// describeRoles says what a user may do, for 403 messages.
func describeRoles(u *api.User) string {
	if len(u.Spec.Roles) == 0 {
		return "no roles"
	}
	var parts []string
	for _, b := range u.Spec.Roles {
		if b.Namespace == "" {
			parts = append(parts, string(b.Role))
		} else {
			parts = append(parts, fmt.Sprintf("%s in %s", b.Role, b.Namespace))
		}
	}
	return "roles: " + strings.Join(parts, ", ")
}

// allowed says whether role may do verb to kind.
func allowed(role api.Role, verb string, kind api.Kind, reveal bool) bool {
	read := verb == "get" || verb == "list" || verb == "watch"
	switch role {
	case api.RoleClusterAdmin, api.RoleAdmin:
		return true
	case api.RoleDeployer:
		if read || verb == "log" {
			return !reveal
		}
		return (kind == api.KindApp || kind == api.KindJob || kind == api.KindSecret) && slices.Contains([]string{"create", "update", "delete", "apply", "scale", "activate"}, verb)
	case api.RoleViewer:
		return (read || verb == "log") && !reveal
	}
	return false
}

// authorizeUser decides a user's request; apply is decided per object
// (authorizeObjects), once the body is read.
func (s *Server) authorizeUser(r *http.Request, u *api.User) error {
	path, name := r.URL.Path, u.Metadata.Name
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case isClusterAdmin(u):
		return nil
	case (path == "/version" || path == "/api/v1/servers") && read, (strings.HasPrefix(path, "/v2/") || path == "/v2") && read:
		return nil
	case path == "/api/v1/apply":
		return nil // per object, in apply
	case path == "/api/v1/images" && r.Method == http.MethodPost:
		for _, b := range u.Spec.Roles {
			if allowed(b.Role, "create", api.KindApp, false) {
				return nil
			}
		}
		return fmt.Errorf("user %q may not push images: a deployer role somewhere is needed (%s): %w", name, describeRoles(u), errForbidden)
	case !strings.HasPrefix(path, "/api/v1/"):
		return fmt.Errorf("user %q may not %s %s (%s): %w", name, r.Method, path, describeRoles(u), errForbidden)
	}
	t, err := parseTarget(path)
	if err != nil {
		return fmt.Errorf("user %q may not %s %s (%s): %w", name, r.Method, path, describeRoles(u), errForbidden)
	}
	verb := verbOf(r, t)
	if !t.kind.Namespaced {
		if read && (t.sub == "" && t.kind.Kind == api.KindNode || (t.sub == "" || t.sub == "quota") && t.kind.Kind == api.KindNamespace) {
			return nil
		}
		return fmt.Errorf("user %q may not %s %s: that takes cluster-admin (%s): %w", name, verb, describeTarget(t), describeRoles(u), errForbidden)
	}
	if t.ns == "" {
		return fmt.Errorf("user %q may not %s %s: across namespaces takes cluster-admin; name one with -n (%s): %w", name, verb, describeTarget(t), describeRoles(u), errForbidden)
	}
	if !allowed(rolesIn(u, t.ns), verb, t.kind.Kind, r.URL.Query().Get("reveal") != "") {
		if r.URL.Query().Get("reveal") != "" {
			verb = "reveal"
		}
		return fmt.Errorf("user %q may not %s %s (%s): %w", name, verb, describeTarget(t), describeRoles(u), errForbidden)
	}
	return nil
}

// authorizeObjects checks that the request's identity may write each of
// objs; a manifest's documents are numbered from 1.
func (s *Server) authorizeObjects(ctx context.Context, objs []api.Object, manifest bool) error {
	u, ok := ctx.Value(userKey).(*api.User)
	if !ok || isClusterAdmin(u) {
		return nil // admins, servers and nodes (the guard decided by path)
	}
	for i, o := range objs {
		kind, m := o.GetTypeMeta().Kind, o.GetMeta()
		k, _ := api.LookupKind(string(kind))
		where := fmt.Sprintf("%s %q", kind, m.Name)
		if manifest {
			where = fmt.Sprintf("document %d (%s)", i+1, where)
		}
		if !k.Namespaced {
			return fmt.Errorf("%s: user %q may not apply %s: that takes cluster-admin (%s): %w", where, u.Metadata.Name, k.Plural, describeRoles(u), errForbidden)
		}
		if !allowed(rolesIn(u, m.Namespace), "apply", kind, false) {
			return fmt.Errorf("%s: user %q may not apply %s in namespace %q (%s): %w", where, u.Metadata.Name, k.Plural, m.Namespace, describeRoles(u), errForbidden)
		}
	}
	return nil
}

// userCertificate issues a certificate for a User and the public key sent
// (cluster-admins only: the guard checked).
func (s *Server) userCertificate(w http.ResponseWriter, r *http.Request, t target) {
	if s.ca == nil {
		writeError(w, fmt.Errorf("this server has no CA: %w", errBadRequest))
		return
	}
	pub, err := readPublicKey(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.store.Get(r.Context(), t.kind, "", t.name)
	if err != nil {
		writeError(w, err)
		return
	}
	cert, err := s.ca.Issue(pki.Request{PublicKey: pub, Name: pki.UserName(t.name), Groups: []string{pki.GroupUsers},
		URIs: []*url.URL{pki.UserURI(t.name, obj.GetMeta().UID)}, TTL: userCertTTL})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &api.Credentials{Certificate: string(cert), CA: string(s.ca.CertPEM)})
}
