package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// A write is the objects of one request (or one controller write) on
// their way into the store, as the admission checks see them.
type write struct {
	objs []api.Object
	// manifest: the objects are a manifest's documents, which errors
	// number from 1.
	manifest bool
	// guards, when set, collect what the checks read that the write must
	// find unmoved when it is stored (a namespace's quota: writeGuarded).
	guards *[]store.Guard
}

// admissionCheck is one step of the admission list.
type admissionCheck struct {
	name  string
	check func(s *Server, ctx context.Context, w write) error
}

// admission is the one ordered list of checks that every write of objects
// passes before anything is stored: apply, create and update through the
// API, and the templates the controllers write themselves (an automatic
// rollback, a scheduled image change: Server.Admit). The first check that
// refuses ends the write and nothing is stored. Status writes are not
// objects' writes: only servers and, for their own objects, nodes make
// them (authorize, admitNodeStatus).
var admission = []admissionCheck{
	{"kinds shoal writes", func(s *Server, ctx context.Context, w write) error { return checkWritableKinds(ctx, w) }},
	{"access", func(s *Server, ctx context.Context, w write) error {
		return s.authorizeObjects(ctx, w.objs, w.manifest)
	}},
	{"node events", func(s *Server, ctx context.Context, w write) error { return s.checkNodeEvents(ctx, w) }},
	{"node subnets", func(s *Server, ctx context.Context, w write) error { return s.checkNodeSubnets(ctx, w) }},
	{"namespaces", func(s *Server, ctx context.Context, w write) error { return s.checkNamespaces(ctx, w.objs, w.manifest) }},
	{"published ports", func(s *Server, ctx context.Context, w write) error { return s.checkPublished(ctx, w.objs, w.manifest) }},
	{"schedule", func(s *Server, ctx context.Context, w write) error { return s.checkSchedule(ctx, w.objs, w.manifest) }},
	{"autoscaled replicas", func(s *Server, ctx context.Context, w write) error { return s.keepAutoscaledReplicas(ctx, w.objs) }},
	{"images pinned to digests", func(s *Server, ctx context.Context, w write) error { return s.resolveImages(ctx, w.objs) }},
	{"namespace policy", func(s *Server, ctx context.Context, w write) error { return s.checkPolicy(ctx, w.objs, w.manifest) }},
	{"secrets", func(s *Server, ctx context.Context, w write) error { return s.sealSecrets(ctx, w.objs) }},
	{"tokens", func(s *Server, ctx context.Context, w write) error { return s.bindTokens(ctx, w.objs, w.manifest) }},
	// Last: it counts the objects as they will be stored (images pinned,
	// Secrets sealed, replicas kept).
	{"namespace quota", func(s *Server, ctx context.Context, w write) error { return s.checkQuota(ctx, w) }},
}

// admitWrite runs the admission list over w.
func (s *Server) admitWrite(ctx context.Context, w write) error {
	for _, c := range admission {
		if err := c.check(s, ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// writeGuarded stores a write that passed admission through fn, under the
// guards its checks took: if another write moved one meanwhile (two
// applies to one namespace at once, each checked against its quota before
// the other was stored), the quota is checked again, against what is
// stored now, and the write retried; it is refused once it no longer fits.
func (s *Server) writeGuarded(ctx context.Context, w write, fn func(st *store.Store) error) error {
	for attempt := 1; ; attempt++ {
		var guards []store.Guard
		if w.guards != nil {
			guards = *w.guards
		}
		err := fn(s.store.Guarded(guards...))
		if !errors.Is(err, store.ErrGuardMoved) || attempt >= guardAttempts {
			return err
		}
		if err := guardPause(ctx, attempt); err != nil {
			return err
		}
		*w.guards = nil
		if err := s.checkQuota(ctx, w); err != nil {
			return err
		}
	}
}

// guardAttempts bounds the tries of a guarded write whose guard other
// writes keep moving.
const guardAttempts = 30

// guardPause waits a little before a guarded write tries again: longer
// with each try, and different for each writer, so that writers racing
// for one guard spread out.
func guardPause(ctx context.Context, attempt int) error {
	pause := time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(2*time.Millisecond)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
		return nil
	}
}

// Admit runs the admission list over an object a controller is about to
// write, as a server: the template of an automatic rollback or of a
// scheduled change passes the same checks as an apply of it would (the
// namespace's policy may have changed since the template was first
// admitted). The object may be changed as an apply's would be (replicas
// kept for an autoscaled App).
func (s *Server) Admit(ctx context.Context, obj api.Object) error {
	return s.admitWrite(asServer(ctx), write{objs: []api.Object{obj}})
}

// identityOf is the identity a request was authenticated as; a server's
// own writes (asServer) and requests that reach no guard carry none.
func identityOf(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey).(pki.Identity)
	return id, ok
}

type serverWriteKey struct{}

// asServer marks ctx as a server's own write: a controller's, through
// Admit, or any request of an in-process test of the handlers without a
// CA (guard). Nothing else is one: a context that merely lacks an
// identity is not.
func asServer(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverWriteKey{}, true)
}

// writtenByServer says whether ctx is a server's own write: marked so, or
// authenticated as a server.
func writtenByServer(ctx context.Context) bool {
	if marked, _ := ctx.Value(serverWriteKey{}).(bool); marked {
		return true
	}
	id, ok := identityOf(ctx)
	return ok && id.In(pki.GroupServers)
}

// checkWritableKinds refuses what only shoal writes: Instances (the
// controllers make them from Apps and Jobs; a hand-made one would choose
// its node and skip every App check) are written by servers only, and
// Events by servers and nodes (about their own objects: checkNodeEvents).
func checkWritableKinds(ctx context.Context, w write) error {
	if writtenByServer(ctx) {
		return nil
	}
	id, _ := identityOf(ctx)
	who := id.Name
	if who == "" {
		who = "an unauthenticated request"
	}
	for i, o := range w.objs {
		kind, m := o.GetTypeMeta().Kind, o.GetMeta()
		if kind != api.KindInstance && (kind != api.KindEvent || id.Node != "") {
			continue
		}
		where := fmt.Sprintf("%s %q", kind, m.Name)
		if w.manifest {
			where = fmt.Sprintf("document %d (%s)", i+1, where)
		}
		what := "apply an App or a Job instead"
		if kind == api.KindEvent {
			what = "shoal's servers and nodes record events"
		}
		return fmt.Errorf("%s: %s may not write %s objects: shoal writes them itself (%s): %w", where, who, kind, what, errForbidden)
	}
	return nil
}

// checkNodeEvents keeps a node's Events to its own objects: its Node, or
// an Instance placed on it. The source is the node's, whatever it says.
func (s *Server) checkNodeEvents(ctx context.Context, w write) error {
	id, ok := identityOf(ctx)
	if !ok || id.Node == "" {
		return nil
	}
	for _, o := range w.objs {
		ev, isEvent := o.(*api.Event)
		if !isEvent {
			return forbidden(id.Node, "write", fmt.Sprintf("%s %q", o.GetTypeMeta().Kind, o.GetMeta().Name))
		}
		ev.Source = "agent/" + id.Node
		switch {
		case ev.Object == "Node/"+id.Node:
		case len(ev.Object) > len("Instance/") && ev.Object[:len("Instance/")] == "Instance/":
			name := ev.Object[len("Instance/"):]
			if in := s.instance(ctx, ev.Metadata.Namespace, name); in == nil || in.Spec.Node != id.Node {
				return fmt.Errorf("node %q may not record an event about instance %q in namespace %q: it does not run there: %w", id.Node, name, ev.Metadata.Namespace, errForbidden)
			}
		default:
			return fmt.Errorf("node %q may not record an event about %q: a node's events concern its own Node and the Instances placed on it: %w", id.Node, ev.Object, errForbidden)
		}
	}
	return nil
}

// instance is the stored Instance ns/name (nil when there is none), from
// the cache or else the store.
func (s *Server) instance(ctx context.Context, ns, name string) *api.Instance {
	obj, ok := s.caches[api.KindInstance].get(ns, name)
	if !ok {
		var err error
		if obj, err = s.store.Get(ctx, api.MustKind(api.KindInstance), ns, name); err != nil {
			return nil
		}
	}
	return obj.(*api.Instance)
}

// templateOf is the pod template an App or a Job carries (nil for other
// kinds): what the policy, image and port checks look at.
func templateOf(o api.Object) *api.Template {
	switch v := o.(type) {
	case *api.App:
		return &v.Spec.Template
	case *api.Job:
		return &v.Spec.Template
	}
	return nil
}
