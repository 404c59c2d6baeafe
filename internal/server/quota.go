package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// errQuotaExceeded marks a write refused because it would take a
// namespace past its quota. It is a 403, as Kubernetes answers.
var errQuotaExceeded = fmt.Errorf("quota exceeded: %w", errForbidden)

// quotaKinds are the kinds a namespace's quota counts: what its users
// write. Instances are counted through what asks for them (replicas,
// parallelism); Events are written by shoal only, bounded in size and
// expire.
var quotaKinds = []api.Kind{api.KindApp, api.KindJob, api.KindSecret}

// usageOf is what one object counts toward its namespace's quota:
//
//	objects    1 for an App, a Job or a Secret
//	instances  an App's replicas, or its autoscale.max if larger (the
//	           autoscaler may go there without asking); an unfinished
//	           Job's parallelism
//	cpu, mem   instances × the template's request
//	bytes      the object as stored
//
// A cron job counts its parallelism, and each of its runs counts again
// while it runs: that over-counts for the moments a run is active rather
// than trusting a label anyone can set.
func usageOf(o api.Object) api.QuotaAmounts {
	var u api.QuotaAmounts
	var n int64
	var req api.Amounts
	switch o := o.(type) {
	case *api.App:
		n = 1
		if o.Spec.Replicas != nil {
			n = int64(*o.Spec.Replicas)
		}
		if as := o.Spec.Autoscale; as != nil {
			n = max(n, int64(as.Max))
		}
		req = o.Spec.Resources.Request()
	case *api.Job:
		if !o.Status.State.Finished() {
			n = 1
			if o.Spec.Parallelism != nil {
				n = int64(*o.Spec.Parallelism)
			}
		}
		req = o.Spec.Resources.Request()
	case *api.Secret:
	default:
		return u
	}
	u.Objects = 1
	u.Instances = n
	u.MilliCPU = mulSat(n, req.MilliCPU)
	u.MemoryBytes = mulSat(n, req.MemoryBytes)
	u.Bytes = int64(store.StoredSize(o))
	return u
}

// addUsage sums two usages, saturating rather than overflowing.
func addUsage(a, b api.QuotaAmounts) api.QuotaAmounts {
	return api.QuotaAmounts{
		Objects:     addSat(a.Objects, b.Objects),
		Instances:   addSat(a.Instances, b.Instances),
		Bytes:       addSat(a.Bytes, b.Bytes),
		MilliCPU:    addSat(a.MilliCPU, b.MilliCPU),
		MemoryBytes: addSat(a.MemoryBytes, b.MemoryBytes),
	}
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func mulSat(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// quotaFigure is one dimension of a quota, for checks and messages.
type quotaFigure struct {
	field string // spec.quota.FIELD
	what  string
	get   func(api.QuotaAmounts) int64
	show  func(int64) string
	// unlimitedAtZero: a zero limit means none (cpu, memory).
	unlimitedAtZero bool
}

var quotaFigures = []quotaFigure{
	{"objects", "objects (Apps, Jobs and Secrets)", func(a api.QuotaAmounts) int64 { return a.Objects }, count, false},
	{"instances", "instances (replicas and parallelism)", func(a api.QuotaAmounts) int64 { return a.Instances }, count, false},
	{"bytes", "bytes of objects in the store", func(a api.QuotaAmounts) int64 { return a.Bytes }, api.FormatBytes, false},
	{"cpu", "requested CPU", func(a api.QuotaAmounts) int64 { return a.MilliCPU }, api.FormatMilliCPU, true},
	{"memory", "requested memory", func(a api.QuotaAmounts) int64 { return a.MemoryBytes }, api.FormatBytes, true},
}

func count(n int64) string { return fmt.Sprint(n) }

// exceeded returns the first figure that after takes past limit while
// growing from before (a write that shrinks a namespace already over a
// lowered quota is let through), or nil.
func exceeded(before, after, limit api.QuotaAmounts) *quotaFigure {
	for i, f := range quotaFigures {
		l := f.get(limit)
		if f.unlimitedAtZero && l == 0 {
			continue
		}
		if a := f.get(after); a > l && a > f.get(before) {
			return &quotaFigures[i]
		}
	}
	return nil
}

// nsUsage is what a namespace holds of the counted kinds, by kind/name.
type nsUsage map[string]api.QuotaAmounts

func usageKey(o api.Object) string { return string(o.GetTypeMeta().Kind) + "/" + o.GetMeta().Name }

func (u nsUsage) sum() api.QuotaAmounts {
	var t api.QuotaAmounts
	for _, a := range u {
		t = addUsage(t, a)
	}
	return t
}

// storedUsage reads what namespace ns holds.
func (s *Server) storedUsage(ctx context.Context, ns string) (nsUsage, error) {
	u := nsUsage{}
	for _, k := range quotaKinds {
		objs, _, err := s.store.List(ctx, api.MustKind(k), ns)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			u[usageKey(o)] = usageOf(o)
		}
	}
	return u, nil
}

// quotaOf is namespace ns's quota: as a Namespace of the write declares
// it, or as stored (the defaults for a namespace not found: the
// namespaces check refuses those).
func (s *Server) quotaOf(ctx context.Context, ns string, declared map[string]*api.Namespace) (api.Quota, error) {
	if n, ok := declared[ns]; ok {
		return n.Spec.Quota, nil
	}
	obj, err := s.store.Get(ctx, api.MustKind(api.KindNamespace), "", ns)
	if errors.Is(err, store.ErrNotFound) {
		return api.Quota{}, nil
	}
	if err != nil {
		return api.Quota{}, err
	}
	return obj.(*api.Namespace).Spec.Quota, nil
}

// grows says whether after is more than before in some figure.
func grows(before, after api.QuotaAmounts) bool {
	for _, f := range quotaFigures {
		if f.get(after) > f.get(before) {
			return true
		}
	}
	return false
}

// quotaGuard is the guard every quota-checked write to ns takes.
func quotaGuard(ns string) string { return "quota/" + ns }

// checkQuota refuses a write that would take a namespace past its quota:
// the namespace's stored objects with the write's in place of theirs
// (an update replaces, it does not add). Servers' own writes pass: what
// the controllers write follows from what was admitted.
//
// The check takes the namespace's quota guard first (w.guards): two
// writes checked at the same moment cannot both be stored, the second is
// checked again against what the first stored (writeGuarded).
func (s *Server) checkQuota(ctx context.Context, w write) error {
	if writtenByServer(ctx) {
		return nil
	}
	declared := map[string]*api.Namespace{}
	byNS := map[string][]int{}
	for i, o := range w.objs {
		switch o := o.(type) {
		case *api.Namespace:
			declared[o.Metadata.Name] = o
		case *api.App, *api.Job, *api.Secret:
			ns := o.GetMeta().Namespace
			byNS[ns] = append(byNS[ns], i)
		}
	}
	for _, ns := range sortedKeys(byNS) {
		q, err := s.quotaOf(ctx, ns, declared)
		if err != nil {
			return err
		}
		// The guard is read before what it guards.
		var guard store.Guard
		if w.guards != nil {
			rev, err := s.store.GuardRevision(ctx, quotaGuard(ns))
			if err != nil {
				return err
			}
			guard = store.Guard{Name: quotaGuard(ns), Revision: rev}
		}
		stored, err := s.storedUsage(ctx, ns)
		if err != nil {
			return err
		}
		before, limit := stored.sum(), q.Limits()
		after := nsUsage{}
		for k, u := range stored {
			after[k] = u
		}
		for _, i := range byNS[ns] {
			after[usageKey(w.objs[i])] = usageOf(w.objs[i])
		}
		total := after.sum()
		if w.guards != nil && grows(before, total) {
			// Only a write that grows a figure takes the guard: one that
			// does not cannot take the namespace past its quota, and a
			// check racing it read more use, not less.
			*w.guards = append(*w.guards, guard)
		}
		f := exceeded(before, total, limit)
		if f == nil {
			continue
		}
		// Name the first object of the write that grows the figure.
		where := ""
		for _, i := range byNS[ns] {
			o := w.objs[i]
			if f.get(usageOf(o)) > f.get(stored[usageKey(o)]) {
				where = fmt.Sprintf("%s %q: ", o.GetTypeMeta().Kind, o.GetMeta().Name)
				if w.manifest {
					where = fmt.Sprintf("document %d (%s %q): ", i+1, o.GetTypeMeta().Kind, o.GetMeta().Name)
				}
				break
			}
		}
		return fmt.Errorf("%snamespace %q would use %s %s, past its quota of %s (spec.quota.%s; %s used now): delete or shrink what it holds, or ask a cluster-admin to raise the namespace's spec.quota.%s (`shoal get quota -n %s` shows every figure): %w",
			where, ns, f.show(f.get(total)), f.what, f.show(f.get(limit)), f.field, f.show(f.get(before)), f.field, ns, errQuotaExceeded)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// getQuota answers GET /api/v1/namespaces/NS/quota: what the namespace
// holds and may hold. Anyone who may read the namespace may read it, so
// its deployers and viewers see the figures the server checks.
func (s *Server) getQuota(w http.ResponseWriter, r *http.Request, t target) {
	obj, err := s.store.Get(r.Context(), api.MustKind(api.KindNamespace), "", t.name)
	if err != nil {
		writeError(w, err)
		return
	}
	used, err := s.storedUsage(r.Context(), t.name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.QuotaUsage{Namespace: t.name, Used: used.sum(), Limit: obj.(*api.Namespace).Spec.Quota.Limits()})
}
