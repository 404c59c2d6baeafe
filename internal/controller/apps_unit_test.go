package controller

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestAppsConcurrentDecisionsMakeNoDuplicates: two controllers that read the
// same state and both decide to add the missing replicas (a leader whose
// session expired while its successor starts, or one restarted while its
// last writes land) must together create each replica once.
func TestAppsConcurrentDecisionsMakeNoDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.apply(newApp("web", 3, "web:1"))
	c := &Apps{Store: h.st, Log: slog.New(slog.DiscardHandler)}
	ch, err := newAppChange(h.getApp("web"))
	if err != nil {
		t.Fatal(err)
	}
	c.ensureRevision(ctx, ch)
	a := ch.app
	// Both decide from the same (empty) list of instances.
	for i := 0; i < 2; i++ {
		if _, err := c.scale(ctx, a, nil); err != nil {
			t.Fatalf("scale %d: %v", i, err)
		}
	}
	if got := h.instances("web"); len(got) != 3 {
		t.Errorf("two controllers each adding 3 replicas from the same state: want 3 instances; got %s", summary(got))
	}
}

// TestAppsTruncatedNamesOfTwoApps: Apps whose names share their first 45
// characters and run the same template would name their instances alike;
// the second App takes the next free slots instead of counting the first
// App's instances as its own.
func TestAppsTruncatedNamesOfTwoApps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	long := strings.Repeat("a", 45)
	h.apply(newApp(long+"-x", 2, "web:1"), newApp(long+"-y", 2, "web:1"))
	c := &Apps{Store: h.st, Log: slog.New(slog.DiscardHandler)}
	for _, name := range []string{long + "-x", long + "-y"} {
		if err := c.Reconcile(ctx, nsKey(testNS, name)); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	for _, name := range []string{long + "-x", long + "-y"} {
		if got := h.instances(name); len(got) != 2 {
			t.Errorf("app %s: want 2 instances; got %s", name, summary(got))
		}
	}
	if got := h.instances(""); len(got) != 4 {
		t.Errorf("want 4 instances in all; got %s", summary(got))
	}
}

func TestScaleDownRemovesTheHighestSlotsFirst(t *testing.T) {
	var ins []*api.Instance
	for _, slot := range []string{"0", "9", "10", "11", "2"} {
		ins = append(ins, &api.Instance{
			Metadata: api.ObjectMeta{Name: "web-abcde-" + slot},
			Spec:     api.InstanceSpec{Node: "n1"},
			Status:   api.InstanceStatus{Phase: api.PhaseRunning, Ready: true},
		})
	}
	sortForRemoval(ins)
	var got []string
	for _, in := range ins {
		got = append(got, in.Metadata.Name[len("web-abcde-"):])
	}
	if want := "11 10 9 2 0"; strings.Join(got, " ") != want {
		t.Fatalf("removal order %v, want %s", got, want)
	}
}
