package controller

import (
	"context"
	"errors"
	"fmt"
	"github.com/distribution/reference"
	"log/slog"
	"sort"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
)

// Binder places pending Instances on Nodes. It is the one writer of
// bindings: each round reads every node and instance (from the caches,
// once they hold its own last bindings), asks the pure scheduler for a
// plan for every pending instance against that snapshot, and commits the
// plan in transactions of Batch bindings, each with compare-and-swap, so
// nothing is ever bound twice or over-committed.
type Binder struct {
	Store  *store.Store
	Log    *slog.Logger
	Events *Recorder
	// Cache, when set, is what the binder reads (the manager's); nil
	// reads the store.
	Cache *Caches
	// Batch is how many bindings one transaction carries (0:
	// bindBatch(0), which any etcd takes).
	Batch int
	// Every is how often a round runs without an event (0: never).
	Every time.Duration
}

// bindKey is the single key the binder's queue uses: every change triggers
// one round over all pending instances.
const bindKey = "all"

// Reconcile implements Reconciler; the key is ignored.
func (b *Binder) Reconcile(ctx context.Context, _ string) error {
	r := readerOf(b.Cache, b.Store)
	nodeObjs, err := r.list(ctx, api.KindNode, "")
	if err != nil {
		return err
	}
	// Waits for the bindings of the last round: an instance bound then
	// but seen pending now would free the room it takes.
	instObjs, err := r.list(ctx, api.KindInstance, "")
	if err != nil {
		return err
	}
	nodes := make([]scheduler.NodeInfo, 0, len(nodeObjs))
	registryRules := false
	for _, o := range nodeObjs {
		n := o.(*api.Node)
		a := n.Status.Accepts
		// A range the node does not declare (an older agent) allows any:
		// the servers admitted only the cluster's.
		ports, _ := api.ParsePortRange(a.PortRange)
		nodes = append(nodes, scheduler.NodeInfo{
			Name:                  n.Metadata.Name,
			Labels:                n.Metadata.Labels,
			Ready:                 n.Status.Ready,
			Unschedulable:         n.Spec.Unschedulable,
			MilliCPU:              n.Allocatable().MilliCPU,
			MemoryBytes:           n.Allocatable().MemoryBytes,
			AcceptsNamespaces:     a.Namespaces,
			AcceptsRegistries:     a.Registries,
			AcceptsSigners:        a.SignedBy,
			AcceptsHostNamespaces: a.HostNamespaces,
			AcceptsHostPaths:      a.HostPaths,
			AcceptsPrivileged:     a.Privileged,
			AcceptsCapabilities:   a.Capabilities,
			AcceptsPortMin:        ports.Min,
			AcceptsPortMax:        ports.Max,
		})
		registryRules = registryRules || len(a.Registries) > 0
	}
	var placed []scheduler.Placed
	var pending []*api.Instance
	for _, o := range instObjs {
		in := o.(*api.Instance)
		switch {
		case in.Spec.Node != "":
			// Terminating instances still hold their resources until gone.
			if !in.Status.Phase.Terminal() {
				placed = append(placed, scheduler.Placed{Node: in.Spec.Node, Request: RequestOf(in)})
			}
		case live(in):
			pending = append(pending, in)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	sort.SliceStable(pending, func(i, j int) bool {
		a, b := pending[i].Metadata, pending[j].Metadata
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	snap := scheduler.NewSnapshot(nodes, placed)
	var firstErr error
	var plan []binding
	for _, in := range pending {
		req := RequestOf(in)
		req.Namespace = in.Metadata.Namespace
		if sig := in.Spec.Template.Signature; sig != nil {
			req.Signer = sig.Key
		}
		if registryRules { // parsing every image costs; only when some owner asks
			if named, err := reference.ParseNormalizedNamed(in.Spec.Template.Image); err == nil {
				req.Registry = reference.Domain(named)
			}
		}
		node, perr := snap.Place(req)
		if perr != nil {
			if err := b.setUnschedulable(ctx, r, in, perr.Error()); err != nil && firstErr == nil {
				firstErr = err
			}
			continue
		}
		plan = append(plan, binding{in, node, req})
	}
	// The plan in transactions of Batch instances at most, and about
	// bindTxnBytes (etcd bounds the operations and the bytes of one); when
	// an instance of a chunk changed since it was read, that chunk is bound
	// one by one so that the others still go through.
	batch := b.Batch
	if batch <= 0 {
		batch = bindBatch(0)
	}
	for _, chunk := range chunks(plan, batch, func(p binding) string { return p.req.App }, func(p binding) int {
		return store.StoredSize(bound(p.in, p.node))
	}) {
		objs := make([]api.Object, len(chunk))
		for i, p := range chunk {
			objs[i] = bound(p.in, p.node)
		}
		if err := b.Store.UpdateAll(ctx, objs); err == nil {
			r.wrote(api.KindInstance, objs[0].GetMeta().Revision)
			for _, p := range chunk {
				b.Events.Record(ctx, p.in, "Normal", "Scheduled", "placed on node "+p.node)
			}
			continue
		}
		for _, p := range chunk {
			if err := b.bind(ctx, r, p.in, p.node); err != nil {
				snap.Release(p.node, p.req)
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}
	return firstErr
}

// binding is one instance of a plan and the node it goes to.
type binding struct {
	in   *api.Instance
	node string
	req  scheduler.Request
}

// bindTxnBytes is about how many bytes of bindings one transaction
// carries: inside etcd's default request limit (1.5 MiB), whatever the
// store's etcd.
const bindTxnBytes = 1 << 20

// chunks cuts plan into runs of at most n whose sizes add up to about
// bindTxnBytes at most (one binding alone may be bigger). The size of
// one binding per group (an App's instances share their template) stands
// for all of the group's.
func chunks[T any](plan []T, n int, group func(T) string, size func(T) int) [][]T {
	sizes := map[string]int{}
	var out [][]T
	start, bytes := 0, 0
	for i, p := range plan {
		g := group(p)
		sz, ok := sizes[g]
		if !ok {
			sz = size(p) + 256 // names and figures vary a little
			sizes[g] = sz
		}
		if i > start && (i-start >= n || bytes+sz > bindTxnBytes) {
			out = append(out, plan[start:i])
			start, bytes = i, 0
		}
		bytes += sz
	}
	if start < len(plan) {
		out = append(out, plan[start:])
	}
	return out
}

// bindBatch is how many bindings fit one transaction of an etcd that
// takes maxTxnOps operations (0: etcd's default, 128): each is one
// compare and one put, and the leader's fence is one more compare.
func bindBatch(maxTxnOps int) int {
	if maxTxnOps <= 0 {
		maxTxnOps = 128
	}
	return max(maxTxnOps-1, 1)
}

// bound returns a copy of in bound to node.
func bound(in *api.Instance, node string) *api.Instance {
	out := *in
	out.Spec.Node = node
	out.Status.Phase = api.PhaseScheduled
	out.Status.Node = node
	out.Status.Message = ""
	return &out
}

func (b *Binder) bind(ctx context.Context, r reader, in *api.Instance, node string) error {
	in = bound(in, node)
	if err := b.Store.Update(ctx, in); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("bind %s to %s: %w", in.Metadata.Name, node, err)
	}
	r.wrote(api.KindInstance, in.Metadata.Revision)
	b.Log.Debug("instance bound", "instance", in.Metadata.Name, "node", node)
	b.Events.Record(ctx, in, "Normal", "Scheduled", "placed on node "+node)
	return nil
}

func (b *Binder) setUnschedulable(ctx context.Context, r reader, in *api.Instance, msg string) error {
	if in.Status.Message == msg {
		return nil
	}
	cp := *in // in is the cache's
	cp.Status.Phase = api.PhasePending
	cp.Status.Message = msg
	err := b.Store.Update(ctx, &cp)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict):
		return nil // changed meanwhile; the next round looks again
	case err != nil:
		return err
	}
	r.wrote(api.KindInstance, cp.Metadata.Revision)
	b.Events.Record(ctx, &cp, "Warning", "FailedScheduling", msg)
	return nil
}

// RequestOf is what placement needs to know of an instance.
func RequestOf(in *api.Instance) scheduler.Request {
	t := &in.Spec.Template
	owner := in.Spec.App
	if in.Spec.Job != "" {
		owner = "job:" + in.Spec.Job // spread and maxPerNode count a Job's own
	}
	r := scheduler.Request{
		Key:          in.Metadata.Namespace + "/" + in.Metadata.Name,
		App:          in.Metadata.Namespace + "/" + owner,
		NodeSelector: in.Spec.Placement.NodeSelector,
		MaxPerNode:   in.Spec.Placement.MaxPerNode,
		SpreadBy:     in.Spec.Placement.SpreadBy,
	}
	// Specs were validated on the way in; a parse error here means zero.
	r.HostNamespaces = t.HostPID || t.HostIPC
	if sc := t.SecurityContext; sc != nil {
		r.Privileged, r.Capabilities = sc.Privileged, sc.AddedCapabilities()
	}
	for _, v := range t.Volumes {
		r.HostPaths = append(r.HostPaths, v.HostPath)
	}
	req := t.Resources.Request()
	r.MilliCPU, r.MemoryBytes = req.MilliCPU, req.MemoryBytes
	for _, p := range t.Ports {
		if p.HostPort != 0 {
			r.HostPorts = append(r.HostPorts, scheduler.HostPort{Port: p.HostPort, Protocol: string(p.Protocol)})
		}
	}
	return r
}
