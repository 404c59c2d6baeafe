package controller

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// appWrites is how many times the App name was written after revision
// from: it replays the store's changes of Apps from there up to a
// sentinel App it writes itself (so it waits on something it can see).
func (h *harness) appWrites(name string, from int64) int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sentinel := newApp(fmt.Sprintf("zz-sentinel-%d", from), 0, "none")
	h.apply(sentinel)
	n := 0
	for ev := range h.st.Watch(ctx, appKind, testNS, from) {
		switch {
		case ev.Type == api.WatchError:
			h.t.Fatalf("watch of apps from %d: %v", from, ev.Err)
		case ev.Object.GetMeta().Name == sentinel.Metadata.Name:
			return n
		case ev.Object.GetMeta().Name == name:
			n++
		}
	}
	h.t.Fatalf("the watch of apps ended before the sentinel: %v", ctx.Err())
	return n
}

// TestAppReconcileWritesTheAppOnce: a reconcile that records a scheduled
// change, the Secrets' versions, a new revision and the status writes the
// App once, not once for each (and so is not woken again by each).
func TestAppReconcileWritesTheAppOnce(t *testing.T) {
	app := newApp("web", 2, "web:1")
	app.Spec.Template.Secrets = []string{"db"}
	start := time.Date(2031, 5, 6, 11, 0, 0, 0, time.UTC)
	release := start.Add(time.Hour)
	app.Spec.Schedule = []api.ScheduledChange{{At: release.Format(time.RFC3339), Set: api.ScheduledSet{Image: "web:2", Replicas: int32p(3)}}}
	h, c, clk := scheduleRig(t, app, start)

	// The first reconcile: the change is seen (not due), the Secret is
	// missing, the first revision is made, the status is new.
	from := h.getApp("web").Metadata.Revision
	reconcileApp(t, c, "web")
	got := h.getApp("web")
	if got.Status.Revision != 1 || got.Status.SecretsRevision != "db=none" || len(got.Status.Scheduled) != 1 || got.Status.Replicas != 2 {
		t.Fatalf("after the first reconcile: status %+v", got.Status)
	}
	if n := h.appWrites("web", from); n != 1 {
		t.Errorf("the first reconcile wrote the App %d times, want once", n)
	}

	// The release: the schedule sets image and replicas, which is the
	// second revision, and the status follows — one write.
	clk.set(release.Add(time.Second))
	from = got.Metadata.Revision
	reconcileApp(t, c, "web")
	got = h.getApp("web")
	if got.Spec.Image != "web:2" || *got.Spec.Replicas != 3 || got.Status.Revision != 2 || got.Status.Replicas != 3 || len(got.Status.ScheduleHistory) != 1 {
		t.Fatalf("after the release: spec image %s replicas %d, status %+v", got.Spec.Image, *got.Spec.Replicas, got.Status)
	}
	if n := h.appWrites("web", from); n != 1 {
		t.Errorf("the release's reconcile wrote the App %d times, want once", n)
	}

	// Nothing changed: no write at all.
	from = got.Metadata.Revision
	reconcileApp(t, c, "web")
	if n := h.appWrites("web", from); n != 0 {
		t.Errorf("a reconcile with nothing to change wrote the App %d times", n)
	}
}

// pendingInstance is an instance of no App waiting for a node.
func pendingInstance(name string) *api.Instance {
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: name, Namespace: testNS},
		Spec:     api.InstanceSpec{App: "batch", Template: api.Template{Image: "x", Resources: api.Resources{CPU: "10m", Memory: "1Mi"}}},
		Status:   api.InstanceStatus{Phase: api.PhasePending},
	}
}

// TestBinderCommitsInBatches: N pending instances are bound in
// ceil(N/Batch) transactions (one store revision each), read from the
// controllers' caches.
func TestBinderCommitsInBatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		n := &api.Node{
			TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("node-%d", i)},
			Status:   api.NodeStatus{Capacity: api.NodeResources{MilliCPU: 64000, MemoryBytes: 64 << 30}, Ready: true, LastHeartbeat: time.Now().UTC()},
		}
		if err := h.st.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	const pending, batch = 25, 10
	objs := make([]api.Object, pending)
	for i := range objs {
		objs[i] = pendingInstance(fmt.Sprintf("batch-%02d", i))
	}
	if err := h.st.CreateAll(ctx, objs); err != nil {
		t.Fatal(err)
	}
	caches := NewCaches(h.st)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); caches.Run(cctx, 0, h.log) }()
	defer func() { stop(); <-done }()
	if err := caches.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	b := &Binder{Store: h.st, Log: slog.New(slog.DiscardHandler), Cache: caches, Batch: batch}
	if err := b.Reconcile(ctx, bindKey); err != nil {
		t.Fatal(err)
	}
	commits := map[int64]int{}
	for _, in := range h.instances("batch") {
		if in.Spec.Node == "" || in.Status.Phase != api.PhaseScheduled {
			t.Fatalf("not bound after one round: %s", summary(h.instances("batch")))
		}
		commits[in.Metadata.Revision]++
	}
	if want := (pending + batch - 1) / batch; len(commits) != want {
		t.Errorf("%d instances bound in %d transactions (sizes by revision %v), want %d of at most %d", pending, len(commits), commits, want, batch)
	}
	// The next round reads its own bindings from the cache: nothing is
	// pending, nothing is written.
	var rev int64
	for r := range commits {
		rev = max(rev, r)
	}
	if err := b.Reconcile(ctx, bindKey); err != nil {
		t.Fatal(err)
	}
	for _, in := range h.instances("batch") {
		if in.Metadata.Revision > rev {
			t.Errorf("a second round wrote %s again (revision %d after %d)", in.Metadata.Name, in.Metadata.Revision, rev)
		}
	}
}

// The embedded etcd's transactions take the fence's compare and a
// compare and a put per binding.
func TestBindBatchFitsTheStore(t *testing.T) {
	if got := bindBatch(0); got != 127 {
		t.Errorf("bindBatch(etcd's default 128) = %d, want 127", got)
	}
	if got := bindBatch(store.EmbeddedMaxTxnOps); got != store.EmbeddedMaxTxnOps-1 {
		t.Errorf("bindBatch(%d) = %d", store.EmbeddedMaxTxnOps, got)
	}
}

// A Node's heartbeat or figures do not wake the binder; what placement
// reads of it does.
func TestBinderIgnoresHeartbeats(t *testing.T) {
	base := &api.Node{Metadata: api.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}},
		Status: api.NodeStatus{Ready: true, Capacity: api.NodeResources{MilliCPU: 4000, MemoryBytes: 8 << 30}, LastHeartbeat: time.Unix(100, 0)}}
	change := func(f func(n *api.Node)) *api.Node {
		n := *base
		n.Metadata.Labels = map[string]string{"zone": "a"}
		f(&n)
		return &n
	}
	for _, tc := range []struct {
		name string
		cur  *api.Node
		want bool
	}{
		{"heartbeat", change(func(n *api.Node) { n.Status.LastHeartbeat = time.Unix(103, 0) }), false},
		{"usage", change(func(n *api.Node) { n.Status.Used = api.NodeResources{MilliCPU: 5} }), false},
		{"not ready", change(func(n *api.Node) { n.Status.Ready = false }), true},
		{"cordoned", change(func(n *api.Node) { n.Spec.Unschedulable = true }), true},
		{"capacity", change(func(n *api.Node) { n.Status.Capacity.MilliCPU = 8000 }), true},
		{"reserved", change(func(n *api.Node) { n.Status.Reserved.MemoryBytes = 1 << 30 }), true},
		{"labels", change(func(n *api.Node) { n.Metadata.Labels["zone"] = "b" }), true},
		{"accepts", change(func(n *api.Node) { n.Status.Accepts.Namespaces = []string{"ops"} }), true},
	} {
		if got := placementChanged(base, tc.cur); got != tc.want {
			t.Errorf("%s: wakes the binder %v, want %v", tc.name, got, tc.want)
		}
	}
	if !placementChanged(nil, base) || !placementChanged(base, nil) {
		t.Error("a node joining or leaving must wake the binder")
	}
}

// Bindings are cut by count and by bytes: big instances go in smaller
// transactions, and one bigger than the budget goes alone.
func TestBindChunks(t *testing.T) {
	lens := func(cs [][]int) []int {
		var out []int
		for _, c := range cs {
			out = append(out, len(c))
		}
		return out
	}
	plan := make([]int, 25)
	one := func(int) string { return "app" }
	small := func(int) int { return 1000 }
	if got := lens(chunks(plan, 10, one, small)); fmt.Sprint(got) != "[10 10 5]" {
		t.Errorf("25 small bindings in batches of 10: %v", got)
	}
	big := func(int) int { return bindTxnBytes / 4 } // with the margin, 3 fit
	if got := lens(chunks(plan[:7], 100, one, big)); fmt.Sprint(got) != "[3 3 1]" {
		t.Errorf("7 bindings of a quarter of the budget each: %v", got)
	}
	huge := func(int) int { return 2 * bindTxnBytes }
	if got := lens(chunks(plan[:2], 100, one, huge)); fmt.Sprint(got) != "[1 1]" {
		t.Errorf("2 bindings each over the budget: %v", got)
	}
}
