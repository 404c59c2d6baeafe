package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// overCommit returns a description of every node whose bound instances ask
// for more than its capacity, or "". Instances being torn down count until
// they are gone: their containers still run.
func overCommit(capacity map[string]api.NodeResources, all []*api.Instance) string {
	type use struct{ cpu, mem int64 }
	used := map[string]use{}
	for _, in := range all {
		if in.Spec.Node == "" || in.Status.Phase.Terminal() {
			continue
		}
		r := RequestOf(in)
		u := used[in.Spec.Node]
		u.cpu += r.MilliCPU
		u.mem += r.MemoryBytes
		used[in.Spec.Node] = u
	}
	var bad []string
	for node, u := range used {
		c := capacity[node]
		if u.cpu > c.MilliCPU || u.mem > c.MemoryBytes {
			bad = append(bad, fmt.Sprintf("%s holds %dm cpu, %d bytes (capacity %dm, %d)", node, u.cpu, u.mem, c.MilliCPU, c.MemoryBytes))
		}
	}
	sort.Strings(bad)
	if len(bad) == 0 {
		return ""
	}
	return strings.Join(bad, "; ") + " with " + summary(all)
}

func TestBinderNeverOverCommits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Stopping takes a while, so the space of removed instances is free
	// only some time after they are marked.
	h.stopDelay = 300 * time.Millisecond
	h.addNodes(3)
	capacity := map[string]api.NodeResources{}
	for i := 0; i < 3; i++ {
		capacity[fmt.Sprintf("node-%d", i)] = api.NodeResources{MilliCPU: 4000, MemoryBytes: 8 << 30}
	}
	tr := h.track("", func(all []*api.Instance) string { return overCommit(capacity, all) })
	h.runControllers(h.config("server-0"))

	// Six apps of two one-core replicas fill the three 4-core nodes exactly;
	// a seventh app does not fit. All are applied at once, from several
	// writers, so the binder sees them arrive in any order.
	var wg sync.WaitGroup
	for i := 0; i < 7; i++ {
		a := newApp(fmt.Sprintf("fill-%d", i), 2, "fill:1")
		a.Spec.Resources = api.Resources{CPU: "1", Memory: "1Gi"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := h.st.Apply(ctx, []api.Object{a}); err != nil {
				t.Errorf("apply %s: %v", a.Metadata.Name, err)
			}
		}()
	}
	wg.Wait()

	const full = "0/3 nodes available: 3 insufficient cpu (needs 1, most free 0)"
	settled := func() (bool, string) {
		ins := h.instances("")
		var running, pending int
		for _, in := range ins {
			switch {
			case in.Spec.Node != "" && in.Status.Phase == api.PhaseRunning:
				running++
			case in.Spec.Node == "" && in.Status.Message == full:
				pending++
			}
		}
		return len(ins) == 14 && running == 12 && pending == 2, summary(ins)
	}
	h.eventually(20*time.Second, "12 of 14 instances Running and 2 Pending saying "+full, settled)
	for node, n := range nodeCounts(liveOnly(h.instances(""))) {
		if node != "" && n != 4 {
			t.Errorf("filled nodes: want 4 one-core instances on each; %s has %d", node, n)
		}
	}

	// Remove one app: the waiting instances take its place, but only once
	// its instances are really gone.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	victim := ""
	for _, in := range h.instances("") {
		if in.Spec.Node != "" {
			victim = in.Spec.App
			break
		}
	}
	if err := h.st.Delete(ctx, appKind, testNS, victim, 0); err != nil {
		t.Fatalf("delete app %s: %v", victim, err)
	}
	h.eventually(20*time.Second, fmt.Sprintf("12 instances Running after deleting %s, none pending", victim), func() (bool, string) {
		ins := h.instances("")
		running := 0
		for _, in := range ins {
			if in.Spec.App == victim {
				return false, summary(ins)
			}
			if in.Spec.Node != "" && in.Status.Phase == api.PhaseRunning {
				running++
			}
		}
		return len(ins) == 12 && running == 12, summary(ins)
	})

	if _, _, _, v := tr.report(); len(v) > 0 {
		t.Errorf("a node was over-committed:\n%s", strings.Join(v, "\n"))
	}
}

// The scheduler's copy of the host-path rule answers as api's does.
func TestHostPathRulesAgree(t *testing.T) {
	allowed := [][]string{nil, {"/"}, {"/var/log"}, {"/var/log", "/srv/data"}, {"/srv/"}}
	for _, p := range []string{"/", "/var", "/var/log", "/var/log/x", "/var/logs", "/srv", "/srv/data/a", "/srvx", "/etc"} {
		for _, a := range allowed {
			if got, want := scheduler.PathAllowed(p, a), api.HostPathAllowed(p, a); got != want {
				t.Errorf("%s under %v: scheduler %v, api %v", p, a, got, want)
			}
		}
	}
}

// RequestOf tells placement what privileges an instance asks of its node:
// privileged, and only the capabilities beyond the default set.
func TestRequestOfPrivileges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sc         *api.SecurityContext
		privileged bool
		caps       []string
	}{
		{"none", nil, false, nil},
		{"dropping only", &api.SecurityContext{Capabilities: api.Capabilities{Drop: []string{"ALL"}}}, false, nil},
		{"a default capability back", &api.SecurityContext{Capabilities: api.Capabilities{Drop: []string{"ALL"}, Add: []string{"chown"}}}, false, nil},
		{"beyond the defaults", &api.SecurityContext{Capabilities: api.Capabilities{Add: []string{"net_admin", "CAP_SYS_TIME", "NET_ADMIN", "KILL"}}}, false, []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}},
		{"all", &api.SecurityContext{Capabilities: api.Capabilities{Add: []string{"ALL"}}}, false, []string{"ALL"}},
		{"privileged", &api.SecurityContext{Privileged: true}, true, nil},
	} {
		in := &api.Instance{Metadata: api.ObjectMeta{Namespace: "ops", Name: "x"}, Spec: api.InstanceSpec{App: "x", Template: api.Template{SecurityContext: tc.sc}}}
		r := RequestOf(in)
		if r.Privileged != tc.privileged || !slices.Equal(r.Capabilities, tc.caps) {
			t.Errorf("%s: privileged %v, capabilities %v; want %v, %v", tc.name, r.Privileged, r.Capabilities, tc.privileged, tc.caps)
		}
	}
}
