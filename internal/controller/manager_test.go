package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// noDuplicateSlots is a tracker check: two live instances of one revision
// never share a slot.
func noDuplicateSlots(all []*api.Instance) string {
	seen := map[string]string{}
	for _, in := range liveOnly(all) {
		hash, slot, ok := parseSlot(in.Metadata.Name)
		if !ok {
			return fmt.Sprintf("instance name %q is not APP-HASH-SLOT", in.Metadata.Name)
		}
		k := fmt.Sprintf("%s/%d", hash, slot)
		if other, dup := seen[k]; dup {
			return fmt.Sprintf("%s and %s share a slot: %s", other, in.Metadata.Name, summary(all))
		}
		seen[k] = in.Metadata.Name
	}
	return ""
}

// checkSlotsExactly fails unless the live instances hold slots 0..n-1 of
// one revision.
func checkSlotsExactly(t *testing.T, ins []*api.Instance, n int) {
	t.Helper()
	checkSlots(t, ins)
	hashes := map[string]bool{}
	slots := map[int]bool{}
	for _, in := range liveOnly(ins) {
		hash, slot := slotOf(t, in.Metadata.Name)
		hashes[hash] = true
		slots[slot] = true
	}
	for i := 0; i < n; i++ {
		if !slots[i] {
			t.Errorf("want slots 0..%d in use; slot %d is free (%s)", n-1, i, summary(ins))
		}
	}
	if len(hashes) != 1 {
		t.Errorf("want one revision's instances; got hashes %v", hashes)
	}
}

func TestRestartMidReconcileConverges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	tr := h.track("web", noDuplicateSlots)

	const replicas = 20
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	h.apply(newApp("web", replicas, "web:1"))
	// The first cut: as soon as the third instance is created.
	stop := h.runControllers(h.config("server-0"))
	h.cutAfter(stop, "web", 3, api.WatchAdded)
	firstCut := len(h.instances("web"))

	// Then a few more, each with work to do: some instances vanish (as if
	// deleted by hand), and the server is cut after a random number of
	// changes to instances (creations, bindings, starts).
	for i := 1; i <= 4; i++ {
		ins := liveOnly(h.instances("web"))
		rng.Shuffle(len(ins), func(a, b int) { ins[a], ins[b] = ins[b], ins[a] })
		for _, in := range ins[:min(len(ins), 5)] {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := h.st.Delete(ctx, instanceKind, testNS, in.Metadata.Name, 0)
			cancel()
			if err != nil {
				t.Fatalf("delete instance %s: %v", in.Metadata.Name, err)
			}
		}
		n := 1 + rng.IntN(15)
		stop = h.runControllers(h.config(fmt.Sprintf("server-%d", i)))
		h.cutAfter(stop, "web", n, "")
		t.Logf("restart %d: cut after %d changes, with %d instances", i, n, len(h.instances("web")))
	}
	h.runControllers(h.config("server-final"))
	got := h.waitRunning("web", replicas, 20*time.Second)
	checkSlotsExactly(t, got, replicas)

	maxLive, atMax, _, v := tr.report()
	if len(v) > 0 {
		t.Errorf("duplicate slots seen:\n%s", strings.Join(v, "\n"))
	}
	if maxLive > replicas {
		t.Errorf("want at most %d live instances at any time; saw %d: %s", replicas, maxLive, atMax)
	}
	t.Logf("first cut at %d instances; most live at once %d", firstCut, maxLive)
}

func TestTwoServersOneLeader(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	tr := h.track("web", noDuplicateSlots)

	stops := map[string]func(){}
	for _, id := range []string{"server-a", "server-b"} {
		stops[id] = h.runControllers(h.config(id))
	}
	const replicas = 10
	h.apply(newApp("web", replicas, "web:1"))
	got := h.waitRunning("web", replicas, 20*time.Second)
	checkSlotsExactly(t, got, replicas)
	if maxLive, atMax, _, _ := tr.report(); maxLive > replicas {
		t.Errorf("two servers: want at most %d live instances at any time; saw %d: %s", replicas, maxLive, atMax)
	}

	// The leader goes away; the other takes over and carries on.
	first := h.leader()
	stop, ok := stops[first]
	if !ok {
		t.Fatalf("leader is %q; want one of the two servers", first)
	}
	stop()
	h.eventually(10*time.Second, "the other server leading", func() (bool, string) {
		l := h.leader()
		return l != "" && l != first, fmt.Sprintf("leader %q", l)
	})
	h.setReplicas("web", replicas+5)
	got = h.waitRunning("web", replicas+5, 20*time.Second)
	checkSlotsExactly(t, got, replicas+5)
	maxLive, atMax, _, v := tr.report()
	if maxLive > replicas+5 {
		t.Errorf("after failover: want at most %d live instances at any time; saw %d: %s", replicas+5, maxLive, atMax)
	}
	if len(v) > 0 {
		t.Errorf("duplicate slots seen:\n%s", strings.Join(v, "\n"))
	}
}

// TestLeaderLosesSession: when the leader's election session expires under
// it (its lease revoked, as after a partition), the other server takes
// over, and the old one campaigns again and can lead later.
func TestLeaderLosesSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	tr := h.track("web", nil)
	stops := map[string]func(){}
	for _, id := range []string{"server-a", "server-b"} {
		stops[id] = h.runControllers(h.config(id))
	}
	h.apply(newApp("web", 4, "web:1"))
	h.waitRunning("web", 4, 20*time.Second)

	held := h.holder()
	first := held.Identity
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.st.Election(electionPrefix).Evict(ctx, held); err != nil {
		t.Fatalf("revoke the leader's lease: %v", err)
	}
	// The old leader learns of it only at its next keep-alive, so for a
	// moment both servers run controllers: a change now is acted on by
	// both, and must still make each replica once.
	h.setReplicas("web", 6)
	h.eventually(10*time.Second, "the other server leading after "+first+" lost its session", func() (bool, string) {
		l := h.leader()
		return l != "" && l != first, fmt.Sprintf("leader %q", l)
	})
	second := h.leader()
	h.waitRunning("web", 6, 20*time.Second)

	stops[second]()
	h.eventually(15*time.Second, first+" leading again once "+second+" stopped", func() (bool, string) {
		l := h.leader()
		return l == first, fmt.Sprintf("leader %q", l)
	})
	h.setReplicas("web", 3)
	got := h.waitRunning("web", 3, 20*time.Second)
	checkSlots(t, got)
	if maxLive, atMax, _, _ := tr.report(); maxLive > 6 {
		t.Errorf("want at most 6 live instances at any time; saw %d: %s", maxLive, atMax)
	}
}

// TestRestartedServerReclaimsItsLeadership: a server killed while leading
// leaves its election key behind until its lease expires; started again
// under the same identity it leads at once instead of waiting that out.
func TestRestartedServerReclaimsItsLeadership(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The killed run: it won a campaign on a 120 s session, then stopped
	// renewing it without resigning.
	killed, kill := context.WithCancel(ctx)
	term, err := h.st.Election(electionPrefix).Campaign(killed, "server-0", 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stale := term.Key()
	kill()

	start := time.Now()
	h.runControllers(h.config("server-0"))
	h.apply(newApp("web", 3, "web:1"))
	h.waitRunning("web", 3, 15*time.Second)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("restarted server took %s to lead; its stale lease had 120s left", d.Round(time.Second))
	}
	cands, err := h.st.Election(electionPrefix).Candidates(ctx)
	if err != nil || slices.ContainsFunc(cands, func(c store.Candidate) bool { return c.Key == stale }) {
		t.Errorf("the stale election key of the killed run is still there (err %v)", err)
	}
}

// cutAfter calls stop once n changes of type typ ("" for any) to the
// App's instances were seen, or after 5s.
func (h *harness) cutAfter(stop func(), appName string, n int, typ api.WatchEventType) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer stop()
	for ev := range h.st.Watch(ctx, instanceKind, testNS, 0) {
		if ev.Type == api.WatchError {
			return
		}
		if ev.Object.(*api.Instance).Spec.App != appName || typ != "" && ev.Type != typ {
			continue
		}
		if n--; n == 0 {
			return
		}
	}
}

// leader returns the identity holding the controllers' election, or "".
func (h *harness) leader() string {
	h.t.Helper()
	return h.holder().Identity
}

// holder returns the candidate holding the controllers' election (zero
// when nobody campaigns).
func (h *harness) holder() store.Candidate {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cands, err := h.st.Election(electionPrefix).Candidates(ctx)
	if err != nil {
		h.t.Fatalf("read election: %v", err)
	}
	if len(cands) == 0 {
		return store.Candidate{}
	}
	return cands[0]
}
