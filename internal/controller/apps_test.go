package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestAppScaleUpDownAndDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	h.runControllers(h.config("server-0"))
	tr := h.track("web", nil)

	h.apply(newApp("web", 3, "web:1"))
	got := h.waitRunning("web", 3, 15*time.Second)
	if nodes := nodeCounts(got); len(nodes) != 3 {
		t.Errorf("3 replicas on 3 empty nodes: want one per node; got %v", nodes)
	}
	if maxLive, atMax, _, _ := tr.report(); maxLive > 3 {
		t.Errorf("scaling 0→3 made %d live instances at once (%s)", maxLive, atMax)
	}

	h.setReplicas("web", 5)
	got = h.waitRunning("web", 5, 15*time.Second)
	for node, n := range nodeCounts(got) {
		if n < 1 || n > 2 {
			t.Errorf("5 replicas on 3 nodes: want 1 or 2 per node; %s has %d (%s)", node, n, summary(got))
		}
	}
	if maxLive, atMax, _, _ := tr.report(); maxLive > 5 {
		t.Errorf("scaling 3→5 made %d live instances at once (%s)", maxLive, atMax)
	}
	checkSlots(t, got)

	h.setReplicas("web", 1)
	// waitRunning counts every stored instance, so this also waits for the
	// agent to have deleted the four removed.
	h.waitRunning("web", 1, 15*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.st.Delete(ctx, appKind, testNS, "web", 0); err != nil {
		t.Fatalf("delete app: %v", err)
	}
	h.eventually(15*time.Second, "no instances left after the App was deleted", func() (bool, string) {
		ins := h.instances("web")
		return len(ins) == 0, summary(ins)
	})
}

func TestAppUnplaceableExplainsWhy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	h.runControllers(h.config("server-0"))

	big := newApp("big", 2, "big:1")
	big.Spec.Resources.CPU = "64"
	h.apply(big)

	const why = "0/3 nodes available: 3 insufficient cpu (needs 64, most free 4)"
	h.eventually(15*time.Second, fmt.Sprintf("2 Pending unbound instances saying %q and the app saying 0/2 placed", why), func() (bool, string) {
		a := h.getApp("big")
		ins := h.instances("big")
		seen := fmt.Sprintf("%s; app status message %q", summary(ins), a.Status.Message)
		if len(ins) != 2 || a.Status.Message != "0/2 placed: "+why {
			return false, seen
		}
		for _, in := range ins {
			if in.Spec.Node != "" || in.Status.Phase != api.PhasePending || in.Status.Message != why {
				return false, seen
			}
		}
		return true, seen
	})
	if a := h.getApp("big"); !strings.HasPrefix(a.Status.Message, "0/2 placed:") || a.Status.Placed != 0 || a.Status.Running != 0 {
		t.Errorf("app status: want 0 placed, 0 running, message starting %q; got %+v", "0/2 placed:", a.Status)
	}

	// Nothing binds them later either (resync and heartbeats keep waking the
	// binder).
	time.Sleep(time.Second)
	for _, in := range h.instances("big") {
		if in.Spec.Node != "" {
			t.Errorf("instance asking for 64 cores was bound: %s", summary([]*api.Instance{in}))
		}
	}

	// Asking for what fits makes a new revision whose instances place and
	// run; the app's message clears.
	big = h.getApp("big")
	big.Spec.Resources.CPU = "1"
	h.apply(big)
	h.waitRevision("big", 2, 10*time.Second)
	got := h.waitRunning("big", 2, 15*time.Second)
	for _, in := range got {
		if in.Spec.Template.Resources.CPU != "1" {
			t.Errorf("instance %s runs the old template (cpu %q)", in.Metadata.Name, in.Spec.Template.Resources.CPU)
		}
	}
}

func TestAppRollingReplacement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Starting takes a while, so the rollout has steps to observe.
	h.startDelay = 150 * time.Millisecond
	h.addNodes(3)
	h.runControllers(h.config("server-0"))

	const replicas = 3
	h.apply(newApp("web", replicas, "web:1"))
	before := h.waitRunning("web", replicas, 15*time.Second)
	if a := h.getApp("web"); a.Status.Revision != 1 {
		t.Fatalf("new app: want status.revision 1; got %d", a.Status.Revision)
	}

	tr := h.track("web", nil)
	tr.resetMinAvailable()
	h.apply(newApp("web", replicas, "web:2"))
	h.waitRevision("web", 2, 10*time.Second)
	after := h.waitRunning("web", replicas, 20*time.Second)

	a := h.getApp("web")
	if a.Status.Revision != 2 {
		t.Errorf("after changing the image: want status.revision 2; got %d", a.Status.Revision)
	}
	for _, in := range after {
		if in.Spec.Revision != 2 || in.Spec.Template.Image != "web:2" || in.Metadata.Labels["shoal.hash"] != a.Status.TemplateHash {
			t.Errorf("after the rollout %s is revision %d, image %s, hash %s; want revision 2, web:2, %s",
				in.Metadata.Name, in.Spec.Revision, in.Spec.Template.Image, in.Metadata.Labels["shoal.hash"], a.Status.TemplateHash)
		}
		for _, old := range before {
			if old.Metadata.Name == in.Metadata.Name {
				t.Errorf("instance %s of revision 1 is still there", in.Metadata.Name)
			}
		}
	}
	checkSlots(t, after)
	maxLive, atMax, minAvail, _ := tr.report()
	if maxLive > replicas+1 {
		t.Errorf("rollout surged to %d live instances; want at most %d. At the peak: %s", maxLive, replicas+1, atMax)
	}
	if minAvail < replicas {
		t.Errorf("rollout dropped to %d available instances; want never below %d", minAvail, replicas)
	}
	t.Logf("rollout: at most %d live, at least %d available", maxLive, minAvail)
}

// nodeCounts counts instances per node.
func nodeCounts(ins []*api.Instance) map[string]int {
	m := map[string]int{}
	for _, in := range ins {
		m[in.Spec.Node]++
	}
	return m
}

// checkSlots fails if two live instances of one revision share a slot.
func checkSlots(t *testing.T, ins []*api.Instance) {
	t.Helper()
	seen := map[string]string{}
	for _, in := range liveOnly(ins) {
		hash, slot := slotOf(t, in.Metadata.Name)
		k := fmt.Sprintf("%s/%d", hash, slot)
		if other, dup := seen[k]; dup {
			t.Errorf("instances %s and %s share revision %s slot %d", other, in.Metadata.Name, hash, slot)
		}
		seen[k] = in.Metadata.Name
	}
}

// TestDrainMovesInstancesLikeARollout: a draining node's instances are
// replaced on other nodes, each new one ready before an old one stops,
// within maxSurge and maxUnavailable; nothing new goes to the node.
func TestDrainMovesInstancesLikeARollout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startDelay = 150 * time.Millisecond
	h.addNodes(3)
	h.runControllers(h.config("server-0"))
	const replicas = 4
	h.apply(newApp("web", replicas, "web:1"))
	before := h.waitRunning("web", replicas, 15*time.Second)
	if nodeCounts(before)["node-0"] == 0 {
		t.Fatalf("nothing on node-0 to drain: %s", summary(before))
	}

	tr := h.track("web", nil)
	tr.resetMinAvailable()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.st.Mutate(ctx, nodeKind, "", "node-0", func(o api.Object) error {
		n := o.(*api.Node)
		n.Spec.Unschedulable, n.Spec.Draining = true, true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.eventually(20*time.Second, "node-0 empty and web back at 4 running elsewhere", func() (bool, string) {
		ins := h.instances("web")
		running := 0
		for _, in := range ins {
			if in.Spec.Node == "node-0" {
				return false, summary(ins)
			}
			if in.Status.Phase == api.PhaseRunning && live(in) {
				running++
			}
		}
		return running == replicas && len(ins) == replicas, summary(ins)
	})
	checkSlots(t, h.instances("web"))
	maxLive, atMax, minAvail, _ := tr.report()
	if maxLive > replicas+1 {
		t.Errorf("the drain surged to %d live instances; want at most %d. At the peak: %s", maxLive, replicas+1, atMax)
	}
	if minAvail < replicas {
		t.Errorf("the drain dropped to %d available instances; want never below %d", minAvail, replicas)
	}
	// Uncordoned, the node takes instances again.
	if _, err := h.st.Mutate(ctx, nodeKind, "", "node-0", func(o api.Object) error {
		n := o.(*api.Node)
		n.Spec.Unschedulable, n.Spec.Draining = false, false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.setReplicas("web", 6)
	got := h.waitRunning("web", 6, 15*time.Second)
	if nodeCounts(got)["node-0"] == 0 {
		t.Errorf("an uncordoned node got nothing when web grew to 6: %s", summary(got))
	}
}
