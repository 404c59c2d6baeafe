package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestNodeLostInstancesReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.heartbeat = 100 * time.Millisecond
	nodes := h.addNodes(3)
	cfg := h.config("server-0")
	cfg.LeaseTimeout, cfg.LostAfter = time.Second, 2*time.Second
	h.runControllers(cfg)

	const replicas = 6
	h.apply(newApp("web", replicas, "web:1"))
	before := h.waitRunning("web", replicas, 15*time.Second)
	const dead = "node-2"
	kept := map[string]string{} // name → uid of instances on healthy nodes
	for _, in := range before {
		if in.Spec.Node != dead {
			kept[in.Metadata.Name] = in.Metadata.UID
		}
	}
	if len(kept) == replicas {
		t.Fatalf("no instance landed on %s: %s", dead, summary(before))
	}

	nodes[2].stop()
	h.eventually(10*time.Second, dead+" not ready", func() (bool, string) {
		n := h.getNode(dead)
		return !n.Status.Ready, fmt.Sprintf("ready=%v message=%q", n.Status.Ready, n.Status.Message)
	})
	if n := h.getNode(dead); !strings.HasPrefix(n.Status.Message, "no heartbeat for ") {
		t.Errorf("not-ready node message: want \"no heartbeat for …\"; got %q", n.Status.Message)
	}

	h.eventually(10*time.Second, "no instance left on "+dead, func() (bool, string) {
		ins := h.instances("web")
		for _, in := range ins {
			if in.Spec.Node == dead {
				return false, summary(ins)
			}
		}
		return true, summary(ins)
	})
	after := h.waitRunning("web", replicas, 20*time.Second)
	for _, in := range after {
		delete(kept, in.Metadata.Name)
	}
	for name := range kept {
		t.Errorf("instance %s on a healthy node was replaced; only the lost node's should be", name)
	}
	checkSlots(t, after)
	if n := h.getNode(dead); n.Status.Ready {
		t.Errorf("lost node became ready again without heartbeats")
	}
}

// TestNodesReconcile drives the node controller with a fake clock.
func TestNodesReconcile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	beat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: "n1"},
		Status:   api.NodeStatus{Ready: true, LastHeartbeat: beat, Capacity: api.NodeResources{MilliCPU: 1000, MemoryBytes: 1 << 30}},
	}
	if err := h.st.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"on-n1", "on-n2", "unbound"} {
		in := &api.Instance{
			TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
			Metadata: api.ObjectMeta{Name: name, Namespace: testNS},
			Spec:     api.InstanceSpec{App: "a", Revision: 1, Node: strings.TrimPrefix(name, "on-")},
		}
		if name == "unbound" {
			in.Spec.Node = ""
		}
		if err := h.st.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	now := beat
	c := &Nodes{Store: h.st, Log: slog.New(slog.DiscardHandler), LeaseTimeout: 10 * time.Second, LostAfter: time.Minute, now: func() time.Time { return now }}
	names := func() []string {
		var out []string
		for _, in := range h.instances("") {
			out = append(out, in.Metadata.Name)
		}
		return out
	}

	steps := []struct {
		at        time.Duration
		wantReady bool
		wantInsts string
	}{
		{5 * time.Second, true, "on-n1 on-n2 unbound"},
		{10 * time.Second, true, "on-n1 on-n2 unbound"}, // exactly the timeout is not late yet
		{11 * time.Second, false, "on-n1 on-n2 unbound"},
		{59 * time.Second, false, "on-n1 on-n2 unbound"},
		{time.Minute, false, "on-n2 unbound"},
	}
	for _, s := range steps {
		now = beat.Add(s.at)
		if err := c.Reconcile(ctx, "n1"); err != nil {
			t.Fatalf("at +%s: Reconcile: %v", s.at, err)
		}
		if got := h.getNode("n1").Status.Ready; got != s.wantReady {
			t.Errorf("at +%s after the last heartbeat: want ready=%v; got %v", s.at, s.wantReady, got)
		}
		if got := strings.Join(names(), " "); got != s.wantInsts {
			t.Errorf("at +%s after the last heartbeat: want instances %q; got %q", s.at, s.wantInsts, got)
		}
	}

	// A node that no longer exists is lost at once.
	if err := c.Reconcile(ctx, "n2"); err != nil {
		t.Fatalf("Reconcile of a deleted node: %v", err)
	}
	if got := strings.Join(names(), " "); got != "unbound" {
		t.Errorf("after reconciling deleted node n2: want instances %q; got %q", "unbound", got)
	}
}

// TestNodesAfterAnOutage: heartbeats could not be written while the
// control plane had no quorum; a new leader gives every node a full grace
// period from when it began leading before it judges any lost.
func TestNodesAfterAnOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: "n1"},
		// Its last heartbeat before a five-minute outage.
		Status: api.NodeStatus{Ready: true, LastHeartbeat: start.Add(-5 * time.Minute), Capacity: api.NodeResources{MilliCPU: 1000, MemoryBytes: 1 << 30}},
	}
	if err := h.st.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	in := &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: "on-n1", Namespace: testNS},
		Spec:     api.InstanceSpec{App: "a", Revision: 1, Node: "n1"},
	}
	if err := h.st.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	now := start
	c := &Nodes{Store: h.st, Log: slog.New(slog.DiscardHandler), LeaseTimeout: 10 * time.Second, LostAfter: 10 * time.Second,
		Since: start, now: func() time.Time { return now }}
	for _, step := range []struct {
		at        time.Duration
		wantReady bool
		wantInsts int
	}{
		{0, true, 1},
		{9 * time.Second, true, 1},
		{11 * time.Second, false, 0},
	} {
		now = start.Add(step.at)
		if err := c.Reconcile(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if n := h.getNode("n1"); n.Status.Ready != step.wantReady {
			t.Errorf("%v after the new leader began: ready %v, want %v", step.at, n.Status.Ready, step.wantReady)
		}
		if got := len(h.instances("")); got != step.wantInsts {
			t.Errorf("%v after the new leader began: %d instances, want %d", step.at, got, step.wantInsts)
		}
	}
}
