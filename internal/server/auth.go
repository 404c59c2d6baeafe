package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// errUnauthenticated marks a request without a valid client certificate
// or bearer token.
var errUnauthenticated = errors.New("unauthenticated")

// Authentication: every request but GET /healthz and POST /api/v1/join
// carries a client certificate from the cluster CA (verified by the TLS
// handshake), or a user token as "Authorization: Bearer TOKEN". A node's certificate is valid only while the Node it was
// issued for exists with the same UID: removing the node revokes it.
//
// Authorization: admins and servers may do anything. A node may do what
// its agent and service proxy need and no more (as Kubernetes' node
// restriction): read Apps, Instances, Nodes, Namespaces and Events, pull
// images, record Events, write its own Node and renew its own certificate,
// and write the status of, or delete, the Instances placed on it.
func (s *Server) authenticate(r *http.Request) (pki.Identity, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		if id, ok, err := s.bearerIdentity(r); ok {
			return id, err
		}
		return pki.Identity{}, fmt.Errorf("%s %s needs a client certificate from this cluster's CA or a user's bearer token (the CLI uses DATA_DIR/admin.conf, which `shoal up` writes): %w", r.Method, r.URL.Path, errUnauthenticated)
	}
	id := pki.IdentityOf(r.TLS.VerifiedChains[0][0])
	if strings.HasPrefix(id.Name, "node:") {
		if id.Node == "" {
			return id, fmt.Errorf("certificate %q names no node object: %w", id.Name, errUnauthenticated)
		}
		if err := s.nodeCurrent(r, id); err != nil {
			return id, err
		}
	}
	return id, nil
}

// nodeCurrent checks that id's Node still exists with the UID its
// certificate was issued for.
func (s *Server) nodeCurrent(r *http.Request, id pki.Identity) error {
	if s.nodeConns.isRevoked(id.NodeUID) {
		return fmt.Errorf("the certificate of node %q was revoked (the node was removed; join it again with a new token): %w", id.Node, errUnauthenticated)
	}
	obj, ok := s.caches[api.KindNode].get("", id.Node)
	if !ok {
		var err error
		obj, err = s.store.Get(r.Context(), api.MustKind(api.KindNode), "", id.Node)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("the certificate of node %q was revoked (the node was removed; join it again with a new token): %w", id.Node, errUnauthenticated)
		}
		if err != nil {
			return err
		}
	}
	if obj.GetMeta().UID != id.NodeUID {
		return fmt.Errorf("the certificate of node %q was issued for an earlier node of that name (join again with a new token): %w", id.Node, errUnauthenticated)
	}
	return nil
}

// authorize says whether id (and, for a user, its User object) may make
// request r.
func (s *Server) authorize(r *http.Request, id pki.Identity, u *api.User) error {
	switch {
	case id.In(pki.GroupAdmins) || id.In(pki.GroupServers):
		return nil
	case id.Node != "":
		return s.authorizeNode(r, id.Node)
	case u != nil:
		return s.authorizeUser(r, u)
	}
	return fmt.Errorf("%s may not %s %s: %w", id.Name, r.Method, r.URL.Path, errForbidden)
}

// readableByNodes are the kinds an agent and its proxy read.
var readableByNodes = map[api.Kind]bool{
	api.KindApp: true, api.KindInstance: true, api.KindNode: true, api.KindNamespace: true, api.KindEvent: true,
}

func (s *Server) authorizeNode(r *http.Request, node string) error {
	path := r.URL.Path
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case (path == "/version" || path == "/api/v1/servers") && read:
		return nil // the servers: where to fail over to
	case strings.HasPrefix(path, "/v2/") || path == "/v2":
		if read {
			return nil // image pulls
		}
		return forbidden(node, "push images", "")
	case !strings.HasPrefix(path, "/api/v1/"):
		return forbidden(node, r.Method+" "+path, "")
	}
	t, err := parseTarget(path)
	if err != nil {
		return forbidden(node, r.Method+" "+path, "")
	}
	verb := verbOf(r, t)
	switch {
	case t.kind.Kind == api.KindSecret:
		if verb == "get" && s.nodeUsesSecret(r.Context(), node, t.ns, t.name) {
			return nil
		}
		return fmt.Errorf("node %q may not %s %s: a node reads only the Secrets its instances use: %w", node, verb, describeTarget(t), errForbidden)
	case read && t.sub == "" && readableByNodes[t.kind.Kind]:
		return nil
	case t.kind.Kind == api.KindEvent && verb == "create":
		return nil
	case t.kind.Kind == api.KindApp && t.name != "" && verb == "activate":
		return nil // a proxy holds a connection for an App at zero replicas
	case t.kind.Kind == api.KindNode && t.name == node && (verb == "update" || verb == "update status" || verb == "renew certificate"):
		return nil
	case t.kind.Kind == api.KindInstance && t.name != "" && (verb == "update status" || verb == "delete"):
		obj, ok := s.caches[api.KindInstance].get(t.ns, t.name)
		if !ok {
			obj, err = s.store.Get(r.Context(), t.kind, t.ns, t.name)
			if errors.Is(err, store.ErrNotFound) {
				return nil // the handler answers 404
			}
			if err != nil {
				return err
			}
		}
		if on := obj.(*api.Instance).Spec.Node; on != node {
			return fmt.Errorf("node %q may not %s instance %q in namespace %q: it runs on node %q: %w", node, verb, t.name, t.ns, on, errForbidden)
		}
		return nil
	}
	return forbidden(node, verb, describeTarget(t))
}

// nodeUsesSecret says whether an instance placed on node uses the Secret:
// from the cache, or, when the cache does not (yet) show one, from the
// store.
func (s *Server) nodeUsesSecret(ctx context.Context, node, ns, name string) bool {
	uses := func(o api.Object) bool {
		in := o.(*api.Instance)
		return in.Spec.Node == node && slices.Contains(in.Spec.Template.SecretNames(), name)
	}
	if s.caches[api.KindInstance].any(ns, uses) {
		return true
	}
	objs, _, err := s.store.List(ctx, api.MustKind(api.KindInstance), ns)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(objs, uses)
}

func forbidden(node, verb, what string) error {
	if what != "" {
		what = " " + what
	}
	return fmt.Errorf("node %q may not %s%s: %w", node, verb, what, errForbidden)
}

// verbOf names what a request does to its target, as messages say it.
func verbOf(r *http.Request, t target) string {
	switch {
	case t.sub == "status" && r.Method == http.MethodPut:
		return "update status"
	case t.sub == "certificate" && r.Method == http.MethodPost:
		return "renew certificate"
	case t.sub != "":
		return t.sub
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") != "":
		return "watch"
	case r.Method == http.MethodGet && t.name == "":
		return "list"
	case r.Method == http.MethodGet:
		return "get"
	case r.Method == http.MethodPost:
		return "create"
	case r.Method == http.MethodPut:
		return "update"
	case r.Method == http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// describeTarget says what a path names: "apps in namespace \"web\"",
// "token \"ab12\"".
func describeTarget(t target) string {
	what := t.kind.Plural
	if t.name != "" {
		what = fmt.Sprintf("%s %q", strings.ToLower(string(t.kind.Kind)), t.name)
	}
	if t.kind.Namespaced {
		if t.ns == "" {
			return what + " in all namespaces"
		}
		return fmt.Sprintf("%s in namespace %q", what, t.ns)
	}
	return what
}

// guard wraps h with authentication and authorization; public paths pass.
func (s *Server) guard(h http.Handler) http.Handler {
	if s.ca == nil {
		return h // no CA: in-process tests of the handlers alone
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost && (r.URL.Path == "/api/v1/join" || r.URL.Path == "/api/v1/servers/join") {
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			h.ServeHTTP(rec, r)
			s.audit(r, pki.Identity{}, rec.code)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/v2/") && r.URL.Path != "/version" {
			// Image pulls and the version need no store; everything
			// else would wait for a leader that is not there.
			if err := s.quorum(r.Context()); err != nil {
				writeError(w, err)
				return
			}
		}
		id, err := s.authenticate(r)
		var user *api.User
		if err == nil && id.User != "" {
			user, err = s.userCurrent(r.Context(), id)
		}
		if err == nil {
			err = s.authorize(r, id, user)
		}
		if err != nil {
			if errors.Is(err, errForbidden) || errors.Is(err, errUnauthenticated) {
				s.log.Info("refused", "who", id.Name, "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				code, _ := httpStatus(err)
				s.audit(r, id, code)
			}
			return
		}
		ctx := context.WithValue(r.Context(), identityKey, id)
		if user != nil {
			ctx = context.WithValue(ctx, userKey, user)
		}
		if id.NodeUID != "" {
			// A node's long requests (watches) end when it is removed.
			var done func()
			ctx, done = s.nodeConns.track(ctx, id.NodeUID)
			defer done()
		}
		r = r.WithContext(ctx)
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.audit(r, id, rec.code)
	})
}

// nodeConns tracks the requests in flight per node certificate (by Node
// UID), so that removing a node ends them.
type nodeConns struct {
	mu      sync.Mutex
	byUID   map[string]map[*context.CancelFunc]struct{}
	revoked map[string]bool
}

func (n *nodeConns) track(parent context.Context, uid string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.revoked[uid] {
		cancel()
		return ctx, func() {}
	}
	if n.byUID == nil {
		n.byUID = map[string]map[*context.CancelFunc]struct{}{}
	}
	if n.byUID[uid] == nil {
		n.byUID[uid] = map[*context.CancelFunc]struct{}{}
	}
	key := &cancel
	n.byUID[uid][key] = struct{}{}
	return ctx, func() {
		cancel()
		n.mu.Lock()
		delete(n.byUID[uid], key)
		if len(n.byUID[uid]) == 0 {
			delete(n.byUID, uid)
		}
		n.mu.Unlock()
	}
}

// revoke ends every request of the node with uid, now and later.
func (n *nodeConns) revoke(uid string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.revoked == nil {
		n.revoked = map[string]bool{}
	}
	n.revoked[uid] = true
	for c := range n.byUID[uid] {
		(*c)()
	}
	delete(n.byUID, uid)
}

func (n *nodeConns) isRevoked(uid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.revoked[uid]
}
