package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

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
	if s.conns.isRevoked(id.NodeUID) {
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
	case id.In(pki.GroupServers):
		return nil
	case isStatusWrite(r) && id.Node == "":
		// Status is what shoal observed: a forged one would steer the
		// controllers (a rollback to a template nobody admitted, a
		// service address of someone else's).
		return fmt.Errorf("%s may not write the status of %s: status is written by shoal's servers and, for their own Node and Instances, nodes: %w", id.Name, r.URL.Path, errForbidden)
	case id.Node != "":
		return s.authorizeNode(r, id.Node)
	case u != nil:
		return s.authorizeUser(r, u) // admin.conf's certificates too: they name a User
	case id.In(pki.GroupAdmins):
		return fmt.Errorf("admin certificate %q names no User, so it cannot be revoked and is no longer accepted: use the admin.conf a server wrote at its latest start (DATA_DIR/admin.conf): %w", id.Name, errUnauthenticated)
	}
	return fmt.Errorf("%s may not %s %s: %w", id.Name, r.Method, r.URL.Path, errForbidden)
}

// isStatusWrite says whether r writes an object's status.
func isStatusWrite(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v1/") && strings.HasSuffix(r.URL.Path, "/status")
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
		return s.nodeMayActivate(r.Context(), node, t.ns, t.name)
	case t.kind.Kind == api.KindNode && t.name == node && (verb == "update status" || verb == "renew certificate"):
		// Never its spec: subnet, cordon and drain, labels and relays
		// are the cluster's to set, not the node's.
		return nil
	case t.kind.Kind == api.KindNode && t.name == node && verb == "update":
		return fmt.Errorf("node %q may not update its own Node: a node writes only its status (PUT .../nodes/%s/status); its spec and labels are set by a cluster-admin: %w", node, node, errForbidden)
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
		// No CA: in-process tests of the handlers alone, where every
		// request is the server's own.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(asServer(r.Context())))
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost && (r.URL.Path == "/api/v1/join" || r.URL.Path == "/api/v1/servers/join") {
			// An address that keeps failing is refused before anything
			// is done or audited for it.
			if err := s.limiter.failing(r); err != nil {
				writeError(w, err)
				return
			}
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			h.ServeHTTP(rec, r)
			if rec.code >= 400 && rec.code < 500 {
				s.limiter.failure(r)
			}
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
		if errors.Is(err, errUnauthenticated) {
			if lerr := s.limiter.failing(r); lerr != nil {
				writeError(w, lerr) // not audited: the address floods
				return
			}
			s.limiter.failure(r)
		}
		limited := func() {}
		if err == nil {
			if limited, err = s.limiter.admit(r, id, user); err != nil {
				writeError(w, err) // not audited: nothing was done
				return
			}
		}
		defer limited()
		if err == nil {
			err = s.authorize(r, id, user)
		}
		if err != nil {
			if errors.Is(err, errForbidden) || errors.Is(err, errUnauthenticated) {
				s.log.Info("refused", "who", id.Name, "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
			if auditVerb(r) != "" {
				code, _ := httpStatus(err)
				s.audit(r, id, code)
			}
			return
		}
		ctx := context.WithValue(r.Context(), identityKey, id)
		if user != nil {
			ctx = context.WithValue(ctx, userKey, user)
		}
		// Long requests (watches, log follows, exec sessions) end when
		// the identity is revoked or its credential expires.
		ctx, done := s.conns.track(ctx, credentialsOf(id), id.NotAfter)
		defer done()
		verb := auditVerb(r)
		if verb == "" {
			h.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		// Handlers may add to the line (an exec session's start, end
		// and exit code); the result is what the response said unless
		// they set it (101: the session began).
		audit := auditRecord(r, id, verb)
		r = r.WithContext(context.WithValue(ctx, auditKey{}, audit))
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if audit.Code == 0 {
			audit.Code = rec.code
		}
		s.writeAudit(audit)
	})
}

// conns tracks the requests in flight per credential — the Node, User or
// Token object a certificate or bearer token names, by UID — so that
// deleting the object ends them: watches, log follows and exec sessions
// stop within moments, on every server (each watches the store for the
// deletes, see watchRevocations). A revoked UID stays revoked: UIDs are
// never reused.
type conns struct {
	mu      sync.Mutex
	byUID   map[string]map[*context.CancelFunc]credential
	revoked map[string]bool
}

// credential is an object whose deletion revokes a request's identity.
type credential struct {
	kind      api.Kind
	name, uid string
}

// credentialsOf are the objects id's requests depend on.
func credentialsOf(id pki.Identity) []credential {
	var out []credential
	if id.NodeUID != "" {
		out = append(out, credential{api.KindNode, id.Node, id.NodeUID})
	}
	if id.UserUID != "" {
		out = append(out, credential{api.KindUser, id.User, id.UserUID})
	}
	if id.TokenUID != "" {
		out = append(out, credential{api.KindToken, id.Token, id.TokenUID})
	}
	return out
}

// track returns a context that ends when one of creds is revoked or at
// expires (when set: the certificate or token runs out), and the func
// that stops tracking it.
func (n *conns) track(parent context.Context, creds []credential, expires time.Time) (context.Context, func()) {
	if len(creds) == 0 && expires.IsZero() {
		return parent, func() {}
	}
	ctx, cancel := context.WithCancel(parent)
	stopTimer := func() bool { return true }
	if !expires.IsZero() {
		stopTimer = time.AfterFunc(time.Until(expires), cancel).Stop
	}
	key := &cancel
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range creds {
		if n.revoked[c.uid] {
			cancel()
			return ctx, func() {}
		}
	}
	if n.byUID == nil {
		n.byUID = map[string]map[*context.CancelFunc]credential{}
	}
	for _, c := range creds {
		if n.byUID[c.uid] == nil {
			n.byUID[c.uid] = map[*context.CancelFunc]credential{}
		}
		n.byUID[c.uid][key] = c
	}
	return ctx, func() {
		stopTimer()
		cancel()
		n.mu.Lock()
		for _, c := range creds {
			delete(n.byUID[c.uid], key)
			if len(n.byUID[c.uid]) == 0 {
				delete(n.byUID, c.uid)
			}
		}
		n.mu.Unlock()
	}
}

// revoke ends every request of the credential with uid, now and later.
func (n *conns) revoke(uid string) {
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

// revokeGone revokes the tracked credentials of kind that are not among
// live (a fresh list: they may have been deleted while the watch was
// away) and that the store no longer holds with their UID. The store is
// asked because a credential made after the list was taken is missing
// from it too.
func (n *conns) revokeGone(ctx context.Context, st *store.Store, kind api.Kind, live []api.Object) {
	uids := map[string]bool{}
	for _, o := range live {
		uids[o.GetMeta().UID] = true
	}
	n.mu.Lock()
	var missing []credential
	for uid, reqs := range n.byUID {
		for _, c := range reqs {
			if c.kind == kind && !uids[uid] {
				missing = append(missing, c)
			}
			break
		}
	}
	n.mu.Unlock()
	for _, c := range missing {
		obj, err := st.Get(ctx, api.MustKind(kind), "", c.name)
		if errors.Is(err, store.ErrNotFound) || err == nil && obj.GetMeta().UID != c.uid {
			n.revoke(c.uid)
		}
	}
}

func (n *conns) isRevoked(uid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.revoked[uid]
}
