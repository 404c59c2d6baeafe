package netproxy

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// fakeIsolation records the isolation plans the proxy writes.
type fakeIsolation struct {
	plans chan hostnet.IsolationPlan
	reset chan string
}

func (f *fakeIsolation) ApplyIsolation(_ context.Context, p hostnet.IsolationPlan) error {
	f.plans <- p
	return nil
}

func (f *fakeIsolation) ResetIsolation(_ context.Context, bridge string) error {
	f.reset <- bridge
	return nil
}

func testNamespace(name, isolation string) *api.Namespace {
	return &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.NamespaceSpec{Policy: api.NamespacePolicy{Isolation: isolation}}}
}

// TestIsolationFollowsMembership: the proxy writes the isolation rules
// from what it watches — an isolated namespace's instances (added,
// removed, ended, outside their node's subnet), another namespace's
// (left out), the namespace's policy toggled — and removes them when it
// stops.
func TestIsolationFollowsMembership(t *testing.T) {
	f, srv := newFakeAPI(t)
	f.nodes = []*api.Node{testNode(testNodeName, "10.244.1.0/24"), testNode("other", "10.244.2.0/24")}
	a1 := testInstance("a", "web", "web-1", "10.244.1.5:8080")
	stray := testInstance("a", "web", "web-stray", "192.168.1.9:8080") // outside its node's subnet
	f.insts = []*api.Instance{a1, stray, testInstance("b", "web", "web-1", "10.244.1.6:8080")}
	f.nss = []*api.Namespace{testNamespace("a", api.IsolationNamespace), testNamespace("b", "")}

	p, err := newProxy(Config{Client: client.New(srv.URL), BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t),
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	iso := &fakeIsolation{plans: make(chan hostnet.IsolationPlan, 16), reset: make(chan string, 1)}
	p.iso = iso
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// next waits for a plan whose isolated members are want.
	next := func(step string, want map[string][]string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case plan := <-iso.plans:
				if got := members(t, plan); maps.EqualFunc(got, want, slices.Equal) {
					return
				} else if len(iso.plans) == 0 {
					t.Logf("%s: plan for %v, waiting for %v", step, got, want)
				}
			case <-deadline:
				t.Fatalf("%s: no plan isolating %v", step, want)
			}
		}
	}
	next("listed", map[string][]string{"a": {"10.244.1.5"}})
	p.mu.Lock()
	in, ok := p.isolationInputLocked()
	p.mu.Unlock()
	if wantNodes := []netip.Addr{netip.MustParseAddr("10.244.1.1"), netip.MustParseAddr("10.244.2.1")}; !ok ||
		!slices.Equal(in.Cluster, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}) || !slices.Equal(in.Nodes, wantNodes) {
		t.Errorf("plan input: cluster %v, nodes %v (ok %v), want the cluster range and nodes %v", in.Cluster, in.Nodes, ok, wantNodes)
	}

	a2 := testInstance("a", "web", "web-2", "10.244.2.7:8080")
	a2.Spec.Node = "other"
	f.event(t, "ADDED", a2)
	next("instance added on another node", map[string][]string{"a": {"10.244.1.5", "10.244.2.7"}})

	f.event(t, "DELETED", a1)
	next("instance removed", map[string][]string{"a": {"10.244.2.7"}})

	ended := *a2
	ended.Status.Phase = api.PhaseFailed
	f.event(t, "MODIFIED", &ended)
	next("instance ended", map[string][]string{"a": {}})

	f.event(t, "MODIFIED", testNamespace("b", api.IsolationNamespace))
	next("namespace b isolated", map[string][]string{"a": {}, "b": {"10.244.1.6"}})

	f.event(t, "MODIFIED", testNamespace("a", ""))
	next("namespace a no longer isolated", map[string][]string{"b": {"10.244.1.6"}})

	f.event(t, "DELETED", testNamespace("b", api.IsolationNamespace))
	next("namespace b deleted", map[string][]string{})

	cancel()
	select {
	case b := <-iso.reset:
		if b != "lo" {
			t.Errorf("reset bridge %q, want lo", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the isolation rules were not removed when the proxy stopped")
	}
}

// members reads a plan back into namespace -> member addresses: the
// addresses its namespace chains let through.
func members(t *testing.T, plan hostnet.IsolationPlan) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range plan.Chains[1:] {
		if c.Name[len(c.Name)-1] != 'S' {
			continue
		}
		var ips []string
		for _, r := range c.Rules {
			if !r.Reject {
				ips = append(ips, r.Dst.Addr().String())
			}
		}
		out[nsOfChain(t, plan.Bridge, c.Name)] = append([]string{}, ips...)
	}
	return out
}

func nsOfChain(t *testing.T, bridge, chain string) string {
	t.Helper()
	for _, ns := range []string{"a", "b"} {
		p, err := hostnet.PlanIsolation(hostnet.IsolationConfig{Bridge: bridge, Cluster: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			Isolated: map[string][]netip.Addr{ns: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if p.Chains[1].Name == chain {
			return ns
		}
	}
	t.Fatalf("chain %s of no known namespace", chain)
	return ""
}
