package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// target is what an /api/v1/... path names.
type target struct {
	kind api.KindInfo
	ns   string // "" lists all namespaces
	name string
	sub  string // "status", "scale", "log", "exec"
}

// parseTarget understands:
//
//	/api/v1/{plural}[/{name}[/{sub}]]                  cluster-scoped kinds; lists of any kind across namespaces
//	/api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]  namespaced kinds
func parseTarget(path string) (target, error) {
	p := splitPath(path)
	if len(p) < 3 || p[0] != "api" || p[1] != "v1" {
		return target{}, fmt.Errorf("no such path %q: %w", path, store.ErrNotFound)
	}
	p = p[2:]
	var t target
	if len(p) == 3 && p[0] == "namespaces" && p[2] == "quota" {
		// Not a kind: what the namespace holds against its quota.
		return target{kind: api.MustKind(api.KindNamespace), name: p[1], sub: "quota"}, nil
	}
	if p[0] == "namespaces" && len(p) >= 3 {
		t.ns = p[1]
		p = p[2:]
		k, ok := api.LookupKind(p[0])
		if !ok || !k.Namespaced {
			return t, fmt.Errorf("no namespaced kind %q: %w", p[0], store.ErrNotFound)
		}
		t.kind = k
	} else {
		k, ok := api.LookupKind(p[0])
		if !ok {
			return t, fmt.Errorf("no kind %q: %w", p[0], store.ErrNotFound)
		}
		if k.Namespaced && len(p) > 1 {
			return t, fmt.Errorf("%s are namespaced: use /api/v1/namespaces/NAMESPACE/%s/NAME: %w", k.Plural, k.Plural, store.ErrNotFound)
		}
		t.kind = k
	}
	if len(p) >= 2 {
		t.name = p[1]
	}
	if len(p) == 3 {
		t.sub = p[2]
	}
	if len(p) > 3 {
		return t, fmt.Errorf("no such path %q: %w", path, store.ErrNotFound)
	}
	return t, nil
}

func (s *Server) objects(w http.ResponseWriter, r *http.Request) {
	t, err := parseTarget(r.URL.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	switch {
	case t.name == "" && r.Method == http.MethodGet:
		if r.URL.Query().Get("watch") != "" {
			s.watch(w, r, t)
			return
		}
		s.list(w, r, t)
	case t.name == "" && r.Method == http.MethodPost:
		s.create(w, r, t)
	case t.name == "":
		writeError(w, fmt.Errorf("%s %s is not supported: name an object: %w", r.Method, r.URL.Path, errBadRequest))
	case t.sub == "" && r.Method == http.MethodGet:
		s.get(w, r, t)
	case t.sub == "" && r.Method == http.MethodPut:
		s.update(w, r, t)
	case t.sub == "" && r.Method == http.MethodDelete:
		s.delete(w, r, t)
	case t.sub == "quota" && r.Method == http.MethodGet:
		s.getQuota(w, r, t)
	case t.sub == "status" && r.Method == http.MethodPut:
		s.updateStatus(w, r, t)
	case t.sub == "scale" && (r.Method == http.MethodPut || r.Method == http.MethodPost) && t.kind.Kind == api.KindApp:
		s.scale(w, r, t)
	case t.sub == "activate" && r.Method == http.MethodPost && t.kind.Kind == api.KindApp:
		s.activate(w, r, t)
	case t.sub == "log" && r.Method == http.MethodGet && t.kind.Kind == api.KindInstance:
		s.instanceLog(w, r, t)
	case t.sub == "exec" && r.Method == http.MethodPost && t.kind.Kind == api.KindInstance:
		s.instanceExec(w, r, t)
	case t.sub == "certificate" && r.Method == http.MethodPost && t.kind.Kind == api.KindNode:
		s.renewCertificate(w, r, t)
	case t.sub == "certificate" && r.Method == http.MethodPost && t.kind.Kind == api.KindUser:
		s.userCertificate(w, r, t)
	default:
		writeError(w, fmt.Errorf("%s %s is not supported: %w", r.Method, r.URL.Path, errBadRequest))
	}
}

// filter keeps list and watch results matching ?node=, ?app= and
// ?labelSelector=.
type filter struct {
	node, app string
	labels    api.Selector
}

func filterOf(r *http.Request) (filter, error) {
	q := r.URL.Query()
	sel, err := api.ParseSelector(q.Get("labelSelector"))
	if err != nil {
		return filter{}, fmt.Errorf("%w: %w", err, errBadRequest)
	}
	return filter{node: q.Get("node"), app: q.Get("app"), labels: sel}, nil
}

func (f filter) match(obj api.Object) bool {
	if f.app != "" && obj.GetMeta().Labels[api.LabelApp] != f.app {
		return false
	}
	if !f.labels.Matches(obj.GetMeta().Labels) {
		return false
	}
	if f.node != "" {
		in, ok := obj.(*api.Instance)
		if !ok || in.Spec.Node != f.node {
			return false
		}
	}
	return true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, t target) {
	f, err := filterOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	// Lists read the store, so a client reads its own writes; the cache
	// could be a moment behind.
	objs, rev, err := s.store.List(r.Context(), t.kind, t.ns)
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.List{Items: []api.Object{}, Revision: rev}
	for _, o := range objs {
		if f.match(o) {
			if o, err = s.present(r, o); err != nil {
				writeError(w, err)
				return
			}
			out.Items = append(out.Items, o)
		}
	}
	sort.SliceStable(out.Items, func(i, j int) bool {
		a, b := out.Items[i].GetMeta(), out.Items[j].GetMeta()
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, t target) {
	obj, err := s.store.Get(r.Context(), t.kind, t.ns, t.name)
	if err == nil {
		obj, err = s.present(r, obj)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// decodeBody reads one object of the target's kind and checks that its
// name and namespace agree with the path.
func (s *Server) decodeBody(r *http.Request, t target) (api.Object, error) {
	b, err := readBody(r, MaxObjectBytes)
	if err != nil {
		return nil, err
	}
	obj, err := api.DecodeObject(t.kind.Kind, b)
	if err != nil {
		return nil, err
	}
	return obj, checkTarget(obj, t)
}

// checkTarget checks that an object's name and namespace agree with the
// path it was sent to.
func checkTarget(obj api.Object, t target) error {
	m := obj.GetMeta()
	if t.kind.Namespaced && m.Namespace != t.ns {
		return fmt.Errorf("metadata.namespace %q does not match the path's namespace %q: %w", m.Namespace, t.ns, errBadRequest)
	}
	if t.name != "" && m.Name != t.name {
		return fmt.Errorf("metadata.name %q does not match the path's name %q: %w", m.Name, t.name, errBadRequest)
	}
	return nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, t target) {
	obj, err := s.decodeBody(r, t)
	wr := write{objs: []api.Object{obj}, guards: new([]store.Guard)}
	if err == nil {
		err = s.admitWrite(r.Context(), wr)
	}
	if err == nil {
		if t.kind.Kind == api.KindEvent {
			// Events expire: they explain recent history, not state.
			err = s.store.CreateWithTTL(r.Context(), obj, api.EventTTL)
		} else {
			err = s.writeGuarded(r.Context(), wr, func(st *store.Store) error { return st.Create(r.Context(), obj) })
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, redacted(obj))
}

// update replaces an object's spec if metadata.revision matches the stored
// one; the stored status and the store's own metadata are kept.
func (s *Server) update(w http.ResponseWriter, r *http.Request, t target) {
	obj, err := s.decodeBody(r, t)
	if err != nil {
		writeError(w, err)
		return
	}
	if obj.GetMeta().Revision == 0 {
		writeError(w, fmt.Errorf("metadata.revision is required for an update (read the object first): %w", errBadRequest))
		return
	}
	cur, err := s.store.Get(r.Context(), t.kind, t.ns, t.name)
	wr := write{objs: []api.Object{obj}, guards: new([]store.Guard)}
	if err == nil {
		api.CopyStatus(cur, obj)
		m, cm := obj.GetMeta(), cur.GetMeta()
		m.UID, m.CreatedAt, m.DeletedAt = cm.UID, cm.CreatedAt, cm.DeletedAt
		err = s.admitWrite(r.Context(), wr)
	}
	if err == nil {
		err = s.writeGuarded(r.Context(), wr, func(st *store.Store) error { return st.Update(r.Context(), obj) })
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, redacted(obj))
}

// updateStatus replaces only the status. Only servers and, for their own
// Node and the Instances placed on them, nodes get here (authorize); what
// a node says of itself passes admitNodeStatus.
func (s *Server) updateStatus(w http.ResponseWriter, r *http.Request, t target) {
	b, err := readBody(r, MaxObjectBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := api.DecodeStatus(t.kind.Kind, b)
	if err == nil {
		err = checkTarget(obj, t)
	}
	if err == nil {
		err = s.admitNodeStatus(r.Context(), obj)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	// Fast path: the stored object from the cache, written back with the
	// new status if it is still what is stored (one round trip).
	if cur, ok := s.caches[t.kind.Kind].get(t.ns, t.name); ok {
		if err := s.admitStatus(r.Context(), cur, obj); err != nil {
			writeError(w, err)
			return
		}
		api.CopyStatus(obj, cur)
		err := s.store.Update(r.Context(), cur)
		if err == nil {
			writeJSON(w, http.StatusOK, cur)
			return
		}
		if !errors.Is(err, store.ErrConflict) {
			writeError(w, err)
			return
		}
	}
	out, err := s.store.Mutate(r.Context(), t.kind, t.ns, t.name, func(cur api.Object) error {
		if err := s.admitStatus(r.Context(), cur, obj); err != nil {
			return err
		}
		api.CopyStatus(obj, cur)
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// activate starts an autoscaled App that sits at zero replicas: a node's
// proxy holds a connection for it. Anything else is left as it is.
func (s *Server) activate(w http.ResponseWriter, r *http.Request, t target) {
	who := "a connection waiting at a node's proxy"
	var activated bool
	out, err := s.store.Mutate(r.Context(), t.kind, t.ns, t.name, func(o api.Object) error {
		app := o.(*api.App)
		activated = false
		as := app.Spec.Autoscale
		if as == nil || app.Spec.Replicas == nil || *app.Spec.Replicas != 0 || as.Max < 1 {
			return nil
		}
		n := max(as.Min, 1)
		app.Spec.Replicas = &n
		now := time.Now().UTC()
		st := api.AutoscaleStatus{}
		if app.Status.Autoscale != nil {
			st = *app.Status.Autoscale
		}
		st.Desired, st.LastScaleTime, st.UpdatedAt = n, now, now
		st.Decisions = append(st.Decisions, fmt.Sprintf("%s: 0 → %d replicas: activated by %s", now.Format(time.RFC3339), n, who))
		if k := len(st.Decisions); k > 5 {
			st.Decisions = st.Decisions[k-5:]
		}
		app.Status.Autoscale = &st
		activated = true
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if activated {
		s.log.Info("app activated from zero", "app", t.ns+"/"+t.name, "by", who)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request, t target) {
	b, err := readBody(r, 4096)
	if err != nil {
		writeError(w, err)
		return
	}
	sc, err := decodeScale(b)
	if err != nil {
		writeError(w, err)
		return
	}
	// A scale that grows the namespace's use takes its quota guard, read
	// before the use the check reads (as writeGuarded's writes do): a
	// scale and another write checked at the same moment cannot both be
	// stored past the quota. The first try finds out whether it grows.
	var out api.Object
	var guards []store.Guard
	for attempt := 1; ; attempt++ {
		var took []store.Guard
		out, err = s.scaleOnce(r, t, sc, guards, &took)
		if errors.Is(err, errNeedsGuard) {
			guards = took
			continue
		}
		if !errors.Is(err, store.ErrGuardMoved) || attempt >= guardAttempts {
			break
		}
		if err = guardPause(r.Context(), attempt); err != nil {
			break
		}
		guards = nil
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// errNeedsGuard: a scale tried without the quota guard grows the
// namespace's use; it is tried again with the guard its check took.
var errNeedsGuard = errors.New("the scale grows the namespace's use: take its quota guard")

// scaleOnce sets an App's replicas under guards; the guards its quota
// check takes are put in took.
func (s *Server) scaleOnce(r *http.Request, t target, sc api.Scale, guards []store.Guard, took *[]store.Guard) (api.Object, error) {
	return s.store.Guarded(guards...).Mutate(r.Context(), t.kind, t.ns, t.name, func(o api.Object) error {
		app := o.(*api.App)
		if as := app.Spec.Autoscale; as != nil {
			return fmt.Errorf("app %q is autoscaled between %d and %d replicas (spec.autoscale): change min and max, or remove autoscale to scale by hand: %w", app.Metadata.Name, as.Min, as.Max, errAutoscaled)
		}
		n := sc.Replicas
		app.Spec.Replicas = &n
		if err := api.Validate(app); err != nil {
			return err
		}
		// A scale is a write of the App: more replicas ask more of the
		// namespace's quota.
		*took = (*took)[:0]
		if err := s.checkQuota(r.Context(), write{objs: []api.Object{app}, guards: took}); err != nil {
			return err
		}
		if len(guards) == 0 && len(*took) > 0 {
			return errNeedsGuard
		}
		return nil
	})
}

// decodeScale reads the body of a scale (fuzzed: FuzzScale).
func decodeScale(b []byte) (api.Scale, error) {
	var sc api.Scale
	if err := json.Unmarshal(b, &sc); err != nil {
		return api.Scale{}, fmt.Errorf("scale body: %v: %w", err, errBadRequest)
	}
	return sc, nil
}

// delete removes an object. Instances are torn down gracefully: they are
// marked deleted and their node's agent removes them once the container is
// gone. ?revision=N deletes only that revision; ?force=1 removes an
// Instance at once.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, t target) {
	ctx := r.Context()
	rev, _ := strconv.ParseInt(r.URL.Query().Get("revision"), 10, 64)
	var err error
	switch {
	case t.kind.Kind == api.KindInstance && r.URL.Query().Get("force") == "":
		_, err = s.store.Mutate(ctx, t.kind, t.ns, t.name, func(o api.Object) error {
			if rev > 0 && o.GetMeta().Revision != rev {
				return fmt.Errorf("instance %q: %w", t.name, store.ErrConflict)
			}
			if o.GetMeta().DeletedAt.IsZero() {
				o.GetMeta().DeletedAt = time.Now().UTC()
			}
			return nil
		})
	case t.kind.Kind == api.KindNamespace:
		err = s.deleteNamespace(ctx, t.name, rev)
	case t.kind.Kind == api.KindNode:
		// Removing a node revokes its certificate: remember its UID
		// here at once, before this server's cache sees the delete.
		var cur api.Object
		if cur, err = s.store.Get(ctx, t.kind, "", t.name); err == nil {
			if err = s.store.Delete(ctx, t.kind, "", t.name, rev); err == nil {
				s.conns.revoke(cur.GetMeta().UID)
			}
		}
	default:
		err = s.store.Delete(ctx, t.kind, t.ns, t.name, rev)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Status{Code: http.StatusOK, Reason: "Deleted", Message: fmt.Sprintf("%s %q deleted", t.kind.Kind, t.name)})
}

func (s *Server) deleteNamespace(ctx context.Context, name string, rev int64) error {
	if name == api.DefaultNamespace {
		return fmt.Errorf("namespace %q cannot be deleted: %w", name, errBadRequest)
	}
	apps, _, err := s.store.List(ctx, api.MustKind(api.KindApp), name)
	if err != nil {
		return err
	}
	if len(apps) > 0 {
		return fmt.Errorf("namespace %q is %w: it still has %d apps; delete them first", name, errNotEmpty, len(apps))
	}
	return s.store.Delete(ctx, api.MustKind(api.KindNamespace), "", name, rev)
}

// checkNamespaces fails if a namespaced object names a namespace that does
// not exist and is not among objs. If objs are a manifest's documents, the
// error numbers the document from 1, as api.Decode does.
func (s *Server) checkNamespaces(ctx context.Context, objs []api.Object, manifest bool) error {
	declared := map[string]bool{}
	for _, o := range objs {
		if o.GetTypeMeta().Kind == api.KindNamespace {
			declared[o.GetMeta().Name] = true
		}
	}
	for i, o := range objs {
		k, _ := api.LookupKind(string(o.GetTypeMeta().Kind))
		ns := o.GetMeta().Namespace
		if !k.Namespaced || declared[ns] {
			continue
		}
		_, err := s.store.Get(ctx, api.MustKind(api.KindNamespace), "", ns)
		if errors.Is(err, store.ErrNotFound) {
			doc := 0
			if manifest {
				doc = i + 1
			}
			return &api.InvalidError{Document: doc, Kind: k.Kind, Name: o.GetMeta().Name, Errors: []api.FieldError{{
				Path: "metadata.namespace", Message: fmt.Sprintf("namespace %q does not exist (apply a Namespace first)", ns)}}}
		}
		if err != nil {
			return err
		}
		declared[ns] = true
	}
	return nil
}

// checkPublished refuses an App that publishes a port another App already
// publishes: a published port opens on every node, so it can belong to only
// one App in the cluster.
// keepAutoscaledReplicas leaves an autoscaled App's replicas to the
// autoscaler: an apply keeps the stored count (within the new min and
// max) instead of resetting it to what the manifest says.
func (s *Server) keepAutoscaledReplicas(ctx context.Context, objs []api.Object) error {
	for _, o := range objs {
		app, ok := o.(*api.App)
		if !ok || app.Spec.Autoscale == nil {
			continue
		}
		as := app.Spec.Autoscale
		n := int32(1)
		if app.Spec.Replicas != nil {
			n = *app.Spec.Replicas
		}
		cur, err := s.store.Get(ctx, api.MustKind(api.KindApp), app.Metadata.Namespace, app.Metadata.Name)
		switch {
		case err == nil && cur.(*api.App).Spec.Replicas != nil:
			n = *cur.(*api.App).Spec.Replicas
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		n = min(max(n, as.Min), as.Max)
		app.Spec.Replicas = &n
	}
	return nil
}

// checkSchedule refuses a scheduled change at a time already past, unless
// the stored App has it already (it was applied, or it is being kept).
func (s *Server) checkSchedule(ctx context.Context, objs []api.Object, manifest bool) error {
	now := time.Now()
	for i, o := range objs {
		app, ok := o.(*api.App)
		if !ok {
			continue
		}
		var stored map[string]bool
		for j, ch := range app.Spec.Schedule {
			at, err := time.Parse(time.RFC3339, ch.At)
			if err != nil || at.After(now) {
				continue
			}
			if stored == nil {
				stored = map[string]bool{}
				if cur, err := s.store.Get(ctx, api.MustKind(api.KindApp), app.Metadata.Namespace, app.Metadata.Name); err == nil {
					for _, c := range cur.(*api.App).Spec.Schedule {
						stored[c.Key()] = true
					}
				}
			}
			if stored[ch.Key()] {
				continue
			}
			doc := 0
			if manifest {
				doc = i + 1
			}
			return &api.InvalidError{Document: doc, Kind: api.KindApp, Name: app.Metadata.Name, Errors: []api.FieldError{{
				Path: fmt.Sprintf("spec.schedule[%d].at", j), Message: fmt.Sprintf("%s is in the past (now %s)", ch.At, now.Format(time.RFC3339))}}}
		}
	}
	return nil
}

func (s *Server) checkPublished(ctx context.Context, objs []api.Object, manifest bool) error {
	if err := s.checkPortRange(ctx, objs, manifest); err != nil {
		return err
	}
	type owner struct {
		key, name, path string
		doc             int
	}
	claimed := map[int32]owner{}
	any := false
	for i, o := range objs {
		app, ok := o.(*api.App)
		if !ok {
			continue
		}
		key := app.Metadata.Namespace + "/" + app.Metadata.Name
		for j, p := range app.Spec.Ports {
			if p.Publish == 0 {
				continue
			}
			any = true
			doc := 0
			if manifest {
				doc = i + 1
			}
			path := fmt.Sprintf("spec.ports[%d].publish", j)
			if prev, dup := claimed[p.Publish]; dup && prev.key != key {
				return &api.InvalidError{Document: doc, Kind: api.KindApp, Name: app.Metadata.Name, Errors: []api.FieldError{{
					Path: path, Message: fmt.Sprintf("port %d is also published by document %d", p.Publish, prev.doc)}}}
			}
			claimed[p.Publish] = owner{key, app.Metadata.Name, path, doc}
		}
	}
	if !any {
		return nil
	}
	stored, _, err := s.store.List(ctx, api.MustKind(api.KindApp), "")
	if err != nil {
		return err
	}
	for _, o := range stored {
		app := o.(*api.App)
		key := app.Metadata.Namespace + "/" + app.Metadata.Name
		for _, p := range app.Spec.Ports {
			if c, ok := claimed[p.Publish]; ok && p.Publish != 0 && c.key != key {
				return &api.InvalidError{Document: c.doc, Kind: api.KindApp, Name: c.name, Errors: []api.FieldError{{
					Path: c.path, Message: fmt.Sprintf("port %d is already published by App %q in namespace %q", p.Publish, app.Metadata.Name, app.Metadata.Namespace)}}}
			}
		}
	}
	return nil
}
