package controller

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// A rollout whose new instances never become ready stops after one surge
// instance, keeps every old instance serving, and after the progress
// deadline returns to the last good revision.
func TestRolloutFailsAndRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(3)
	h.runControllers(h.config("server-0"))
	h.apply(newApp("web", 3, "good:1"))
	h.waitRunning("web", 3, 15*time.Second)
	h.eventually(10*time.Second, "revision 1 complete", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Rollout == api.RolloutComplete && a.Status.LastGoodRevision == 1, a.Status.Rollout
	})

	tr := h.track("web", nil)
	bad := newApp("web", 3, "unready:2")
	bad.Spec.Update.ProgressDeadlineSeconds = 2
	h.apply(bad)
	h.eventually(20*time.Second, "automatic rollback to revision 1's template, complete", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Revision == 3 && a.Spec.Image == "good:1" && a.Status.Rollout == api.RolloutComplete,
			a.Status.Rollout + " rev " + itoa(a.Status.Revision) + " " + a.Spec.Image + " " + a.Status.Message
	})
	ins := h.waitRunning("web", 3, 15*time.Second)
	for _, in := range ins {
		if in.Spec.Template.Image != "good:1" {
			t.Errorf("after rollback %s runs %s", in.Metadata.Name, in.Spec.Template.Image)
		}
	}
	maxLive, atMax, minAvail, _ := tr.report()
	if maxLive > 4 {
		t.Errorf("the failing rollout made %d live instances (maxSurge 1): %s", maxLive, atMax)
	}
	if minAvail < 3 {
		t.Errorf("the failing rollout let available instances drop to %d (maxUnavailable 0)", minAvail)
	}
	a := h.getApp("web")
	last := a.Status.History[len(a.Status.History)-1]
	if !strings.Contains(last.Cause, "automatic rollback to revision 1 after revision 2 failed") {
		t.Errorf("history cause of revision 3 = %q", last.Cause)
	}
	if last.RolledBackFrom != 2 {
		t.Errorf("revision 3 rolledBackFrom = %d, want 2", last.RolledBackFrom)
	}
}

// An automatic rollback writes a template the servers' admission must
// pass again (the namespace's policy may have changed since): refused, the
// App stays failed on the bad revision, says why, and writes nothing more.
func TestRollbackPassesAdmission(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(2)
	cfg := h.config("server-0")
	var refuse atomic.Bool
	cfg.Admit = func(ctx context.Context, obj api.Object) error {
		if a, ok := obj.(*api.App); ok && refuse.Load() && a.Spec.Image == "good:1" {
			return errors.New(`spec.image: namespace "default" no longer admits good:1`)
		}
		return nil
	}
	h.runControllers(cfg)
	h.apply(newApp("web", 2, "good:1"))
	h.waitRunning("web", 2, 15*time.Second)
	h.eventually(10*time.Second, "revision 1 complete", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Rollout == api.RolloutComplete && a.Status.LastGoodRevision == 1, a.Status.Rollout
	})
	refuse.Store(true)
	bad := newApp("web", 2, "unready:2")
	bad.Spec.Update.ProgressDeadlineSeconds = 2
	h.apply(bad)
	h.eventually(20*time.Second, "the rollback refused, said so", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Rollout == api.RolloutFailed && strings.Contains(a.Status.Message, "automatic rollback to revision 1 refused: spec.image"),
			a.Status.Rollout + ": " + a.Status.Message
	})
	a := h.getApp("web")
	if a.Spec.Image != "unready:2" || a.Status.Revision != 2 {
		t.Errorf("a refused rollback changed the App: image %s, revision %d", a.Spec.Image, a.Status.Revision)
	}
	// Said once: no write loop.
	rev := a.Metadata.Revision
	time.Sleep(1500 * time.Millisecond) // a loop would have written many times by now
	if got := h.getApp("web").Metadata.Revision; got != rev {
		t.Errorf("the refused rollback keeps writing the App: revision %d -> %d", rev, got)
	}
}

// Undo (setting the template back, as `shoal rollout undo` does) is a new
// revision whose cause names the revision it returns to.
func TestRolloutUndoAndHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(2)
	h.runControllers(h.config("server-0"))
	h.apply(newApp("web", 2, "img:1"))
	h.waitRevision("web", 1, 10*time.Second)
	h.waitRunning("web", 2, 15*time.Second)
	h.apply(newApp("web", 2, "img:2"))
	h.eventually(15*time.Second, "revision 2 complete", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Revision == 2 && a.Status.Rollout == api.RolloutComplete, a.Status.Rollout
	})
	a := h.getApp("web")
	a.Spec.Template = a.Status.History[0].Template
	h.apply(a)
	h.eventually(15*time.Second, "revision 3 (the template of 1) complete", func() (bool, string) {
		a := h.getApp("web")
		return a.Status.Revision == 3 && a.Status.Rollout == api.RolloutComplete, a.Status.Rollout
	})
	a = h.getApp("web")
	if n := len(a.Status.History); n != 3 {
		t.Fatalf("history has %d entries, want 3", n)
	}
	if c := a.Status.History[2].Cause; c != "rollback to the template of revision 1" {
		t.Errorf("cause of revision 3 = %q", c)
	}
	for _, in := range h.waitRunning("web", 2, 15*time.Second) {
		if in.Spec.Template.Image != "img:1" {
			t.Errorf("%s runs %s after undo", in.Metadata.Name, in.Spec.Template.Image)
		}
	}
}

// Apps with ports get distinct, stable service addresses; the address of a
// deleted App is released.
func TestServiceIPs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addNodes(1)
	h.runControllers(h.config("server-0"))
	withPort := func(name string) *api.App {
		a := newApp(name, 1, "img:1")
		a.Spec.Ports = []api.Port{{Name: "http", ContainerPort: 8080, Protocol: api.ProtocolTCP}}
		return a
	}
	h.apply(withPort("a"), withPort("b"), newApp("noports", 1, "img:1"))
	var ipA, ipB string
	h.eventually(10*time.Second, "service IPs for a and b", func() (bool, string) {
		ipA, ipB = h.getApp("a").Status.ServiceIP, h.getApp("b").Status.ServiceIP
		return ipA != "" && ipB != "", ipA + " " + ipB
	})
	if ipA == ipB || !strings.HasPrefix(ipA, "10.96.") {
		t.Fatalf("service IPs a=%s b=%s: want distinct addresses in 10.96.0.0/16", ipA, ipB)
	}
	h.waitRunning("noports", 1, 10*time.Second)
	if ip := h.getApp("noports").Status.ServiceIP; ip != "" {
		t.Errorf("an App without ports got service IP %s", ip)
	}
	// Scaling keeps the address.
	h.setReplicas("a", 2)
	h.waitRunning("a", 2, 10*time.Second)
	if ip := h.getApp("a").Status.ServiceIP; ip != ipA {
		t.Errorf("service IP of a changed from %s to %s", ipA, ip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.st.Delete(ctx, appKind, testNS, "a", 0); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "a's service IP released", func() (bool, string) {
		claims, err := h.st.Claims(ctx, serviceIPClaims)
		if err != nil {
			return false, err.Error()
		}
		_, held := claims[ipA]
		return !held, "still claimed"
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
