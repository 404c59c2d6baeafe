package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// admitNodeStatus checks what a node says of itself before it is stored.
// A node speaks only for what runs on it: usage counts only for the
// instances placed on the reporting node, and traffic only for the Apps it
// runs an instance of (or, for an App with no instance anywhere, only the
// connections its proxy holds waiting, which start an App at zero; not a
// rate). Anything else is dropped, not refused: the heartbeat that carries
// it keeps the node's lease. Servers' status writes pass unchanged.
func (s *Server) admitNodeStatus(ctx context.Context, obj api.Object) error {
	id, ok := identityOf(ctx)
	if !ok || id.Node == "" {
		return nil
	}
	n, isNode := obj.(*api.Node)
	if !isNode {
		return nil
	}
	if n.Metadata.Name != id.Node {
		return forbidden(id.Node, "update status", fmt.Sprintf("node %q", n.Metadata.Name))
	}
	st := &n.Status
	insts := s.caches[api.KindInstance]
	kept := st.Usage[:0]
	var used api.NodeResources
	for _, u := range st.Usage {
		in := s.instance(ctx, u.Namespace, u.Instance)
		if in == nil || in.Spec.Node != id.Node || in.Spec.App != u.App || in.Spec.Job != u.Job {
			continue
		}
		kept = append(kept, u)
		used.MilliCPU += u.MilliCPU
		used.MemoryBytes += u.MemoryBytes
	}
	if len(kept) != len(st.Usage) {
		s.log.Info("dropped usage a node reported for instances it does not run", "node", id.Node, "dropped", len(st.Usage)-len(kept))
		st.Used = used
	}
	st.Usage = kept
	traffic := st.Traffic[:0]
	for _, t := range st.Traffic {
		runsHere := func(o api.Object) bool {
			in := o.(*api.Instance)
			return in.Spec.App == t.App && in.Spec.Node == id.Node
		}
		anywhere := func(o api.Object) bool { return o.(*api.Instance).Spec.App == t.App }
		switch {
		case insts.any(t.Namespace, runsHere):
			traffic = append(traffic, t)
		case !insts.any(t.Namespace, anywhere) && t.Waiting > 0:
			traffic = append(traffic, api.AppTraffic{Namespace: t.Namespace, App: t.App, Waiting: t.Waiting})
		}
	}
	st.Traffic = traffic
	return nil
}

// nodeMayActivate lets a node's proxy start an App at zero replicas only
// when the App scales to zero and has a port the proxy holds connections
// for (its service address or a published port, on every node) and no
// instance to send them to: nothing else is a node's to start.
func (s *Server) nodeMayActivate(ctx context.Context, node, ns, name string) error {
	obj, err := s.store.Get(ctx, api.MustKind(api.KindApp), ns, name)
	if err != nil {
		return nil // the handler answers (404)
	}
	app := obj.(*api.App)
	as := app.Spec.Autoscale
	hasInstance := s.caches[api.KindInstance].any(ns, func(o api.Object) bool {
		in := o.(*api.Instance)
		return in.Spec.App == name && in.Metadata.DeletedAt.IsZero()
	})
	if as == nil || as.Min != 0 || len(app.Spec.Ports) == 0 || hasInstance {
		return fmt.Errorf("node %q may not activate app %q in namespace %q: a node activates only an App that scales to zero (spec.autoscale.min 0), has a port and has no instance: %w", node, name, ns, errForbidden)
	}
	return nil
}

// admitStatus checks a status write against the stored object cur before
// the status of obj replaces cur's: a Node may not publish a WireGuard key
// another node publishes. A Node's first reported capacity becomes its
// spec's cap (recordCapacity).
func (s *Server) admitStatus(ctx context.Context, cur, obj api.Object) error {
	n, ok := cur.(*api.Node)
	if !ok {
		return nil
	}
	next := *n
	next.Status = obj.(*api.Node).Status
	if err := s.admitOverlayKey(ctx, n, &next); err != nil {
		return err
	}
	recordCapacity(n, &next.Status)
	return nil
}

// keepCapacity keeps the stored cap of each figure next leaves unset: an
// apply of a Node that does not name spec.capacity (to relabel it) must
// not clear the cap, which the node's next heartbeat would then set anew.
func keepCapacity(cur, next *api.Node) {
	c := &next.Spec.Capacity
	if c.MilliCPU == 0 {
		c.MilliCPU = cur.Spec.Capacity.MilliCPU
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = cur.Spec.Capacity.MemoryBytes
	}
}

// recordCapacity sets cur's spec.capacity, when it has none, to the
// capacity st reports: what a node said at its join is what placement
// offers it at most from then on, so a node cannot attract more
// instances by reporting a larger machine later (only a cluster-admin
// raises the cap). Each figure is recorded once, on its own.
func recordCapacity(cur *api.Node, st *api.NodeStatus) {
	c := &cur.Spec.Capacity
	if c.MilliCPU == 0 {
		c.MilliCPU = st.Capacity.MilliCPU
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = st.Capacity.MemoryBytes
	}
}

// checkNodeSubnets runs admitNodeSubnet over the Nodes of a write: a
// subnet inside the cluster range, overlapping no other node's, never
// changed once set; and keeps their capacity caps (keepCapacity). (Its claim stays if the write then fails: it is held
// for that node's name, which is released when the node goes.)
func (s *Server) checkNodeSubnets(ctx context.Context, w write) error {
	for _, o := range w.objs {
		n, ok := o.(*api.Node)
		if !ok {
			continue
		}
		var cur *api.Node
		stored, err := s.store.Get(ctx, api.MustKind(api.KindNode), "", n.Metadata.Name)
		switch {
		case err == nil:
			cur = stored.(*api.Node)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if _, err := s.admitNodeSubnet(ctx, cur, n); err != nil {
			return err
		}
		if cur != nil {
			keepCapacity(cur, n)
		}
	}
	return nil
}
