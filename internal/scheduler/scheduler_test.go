package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

// ready returns a ready node with cores CPUs and gib GiB of memory.
func ready(name string, cores, gib int64, labels ...string) NodeInfo {
	n := NodeInfo{Name: name, Ready: true, MilliCPU: cores * 1000, MemoryBytes: gib * gi}
	if len(labels) > 0 {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			n.Labels[labels[i]] = labels[i+1]
		}
	}
	return n
}

func req(app string, milliCPU, memBytes int64) Request {
	return Request{Key: app + "-x", App: app, MilliCPU: milliCPU, MemoryBytes: memBytes}
}

// placeAll places reqs in order and returns where each went, "" for a
// failure, and the last error.
func placeAll(s *Snapshot, reqs []Request) ([]string, error) {
	var got []string
	var last error
	for _, r := range reqs {
		n, err := s.Place(r)
		if err != nil {
			last = err
		}
		got = append(got, n)
	}
	return got, last
}

func repeat(r Request, n int) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = r
		out[i].Key = fmt.Sprintf("%s-%d", r.App, i)
	}
	return out
}

// TestOwnerPrivileges: a privileged instance, or one adding capabilities
// beyond the default set, goes only to a node whose owner grants that.
func TestOwnerPrivileges(t *testing.T) {
	grants := func(privileged bool, caps ...string) NodeInfo {
		n := ready("n", 8, 8)
		n.AcceptsPrivileged, n.AcceptsCapabilities = privileged, caps
		return n
	}
	netAdmin := Request{App: "ops/x", Capabilities: []string{"CAP_NET_ADMIN"}}
	for _, tc := range []struct {
		name string
		node NodeInfo
		req  Request
		want bool
	}{
		{"nothing asked, nothing granted", ready("n", 8, 8), Request{App: "ops/x"}, true},
		{"privileged, nothing granted", ready("n", 8, 8), Request{App: "ops/x", Privileged: true}, false},
		{"a capability, nothing granted", ready("n", 8, 8), netAdmin, false},
		{"privileged, granted", grants(true), Request{App: "ops/x", Privileged: true}, true},
		{"privileged, only capabilities granted", grants(false, "ALL"), Request{App: "ops/x", Privileged: true}, false},
		{"a capability, privileged granted", grants(true), netAdmin, true},
		{"a capability, that one granted", grants(false, "CAP_SYS_TIME", "CAP_NET_ADMIN"), netAdmin, true},
		{"a capability, another granted", grants(false, "CAP_SYS_TIME"), netAdmin, false},
		{"two capabilities, one granted", grants(false, "CAP_NET_ADMIN"), Request{App: "ops/x", Capabilities: []string{"CAP_NET_ADMIN", "CAP_BPF"}}, false},
		{"a capability, ALL granted", grants(false, "ALL"), netAdmin, true},
		{"ALL, some granted", grants(false, "CAP_NET_ADMIN"), Request{App: "ops/x", Capabilities: []string{"ALL"}}, false},
		{"ALL, ALL granted", grants(false, "ALL"), Request{App: "ops/x", Capabilities: []string{"ALL"}}, true},
		{"privileged granted, other rules still apply", func() NodeInfo { n := grants(true); n.AcceptsNamespaces = []string{"web"}; return n }(), Request{App: "ops/x", Namespace: "ops", Privileged: true}, false},
	} {
		_, err := NewSnapshot([]NodeInfo{tc.node}, nil).Place(tc.req)
		switch {
		case tc.want && err != nil:
			t.Errorf("%s: %v, want it placed", tc.name, err)
		case !tc.want && (err == nil || !strings.Contains(err.Error(), "1 refused by the node's owner")):
			t.Errorf("%s: %v, want it refused by the node's owner", tc.name, err)
		}
	}
}

func TestPlace(t *testing.T) {
	web := req("ns/web", 0, 0)
	tests := []struct {
		name    string
		nodes   []NodeInfo
		placed  []Placed
		reqs    []Request
		want    []string // node per request, "" when it must fail
		wantErr string   // message of the last failure, if any
	}{
		{
			name:  "cpu: only the node with room",
			nodes: []NodeInfo{ready("a", 2, 8), ready("b", 4, 8)},
			reqs:  []Request{req("ns/big", 3000, 0)},
			want:  []string{"b"},
		},
		{
			name:    "cpu: too big for any node",
			nodes:   []NodeInfo{ready("a", 2, 8), ready("b", 4, 8)},
			reqs:    []Request{req("ns/big", 5000, 0)},
			want:    []string{""},
			wantErr: "0/2 nodes available: 2 insufficient cpu (needs 5, most free 4)",
		},
		{
			name:  "cpu: fills exactly, then refuses",
			nodes: []NodeInfo{ready("a", 1, 8)},
			reqs:  repeat(req("ns/half", 500, 0), 3),
			want:  []string{"a", "a", ""},
		},
		{
			name:  "memory: only the node with room",
			nodes: []NodeInfo{ready("a", 8, 1), ready("b", 8, 4)},
			reqs:  []Request{req("ns/db", 100, 2*gi)},
			want:  []string{"b"},
		},
		{
			name:    "memory: too big for any node",
			nodes:   []NodeInfo{ready("a", 8, 1), ready("b", 8, 2)},
			placed:  []Placed{{Node: "b", Request: req("ns/other", 0, 768*mi)}},
			reqs:    []Request{req("ns/db", 100, 3*gi/2)},
			want:    []string{""},
			wantErr: "0/2 nodes available: 2 insufficient memory (needs 1.5Gi, most free 1.25Gi)",
		},
		{
			name:  "node selector",
			nodes: []NodeInfo{ready("a", 8, 8, "zone", "x"), ready("b", 8, 8, "zone", "y", "disk", "ssd"), ready("c", 8, 8, "zone", "y")},
			reqs: []Request{
				{App: "ns/db", NodeSelector: map[string]string{"zone": "y", "disk": "ssd"}},
				{App: "ns/db", NodeSelector: map[string]string{"zone": "y", "disk": "ssd"}},
				{App: "ns/web", NodeSelector: map[string]string{"zone": "x"}},
			},
			want: []string{"b", "b", "a"},
		},
		{
			name:    "node selector matches nothing",
			nodes:   []NodeInfo{ready("a", 8, 8, "zone", "x"), ready("b", 8, 8)},
			reqs:    []Request{{App: "ns/db", NodeSelector: map[string]string{"zone": "z"}}},
			want:    []string{""},
			wantErr: "0/2 nodes available: 2 node selector mismatch",
		},
		{
			name: "owners' rules: namespaces, registries, signing keys",
			nodes: func() []NodeInfo {
				a, b, c := ready("a", 8, 8), ready("b", 8, 8), ready("c", 8, 8)
				a.AcceptsNamespaces = []string{"batch"}
				b.AcceptsRegistries, b.AcceptsSigners = []string{"shoal.local"}, []string{"ed25519:alice"}
				c.AcceptsNamespaces = []string{"web"}
				return []NodeInfo{a, b, c}
			}(),
			reqs: []Request{
				{App: "batch/job", Namespace: "batch", Registry: "docker.io"},
				{App: "web/site", Namespace: "web", Registry: "docker.io"},
				{App: "other/x", Namespace: "other", Registry: "shoal.local", Signer: "ed25519:alice"},
				{App: "other/y", Namespace: "other", Registry: "shoal.local"},
			},
			want:    []string{"a", "c", "b", ""},
			wantErr: "0/3 nodes available: 3 refused by the node's owner",
		},
		{
			name: "owners' rules: host access only where the owner allows it",
			nodes: func() []NodeInfo {
				a, b, c := ready("a", 8, 8), ready("b", 8, 8), ready("c", 8, 8)
				b.AcceptsHostNamespaces = true
				c.AcceptsHostPaths = []string{"/var/log", "/srv"}
				return []NodeInfo{a, b, c}
			}(),
			reqs: []Request{
				{App: "ops/top", HostNamespaces: true},
				{App: "ops/logs", HostPaths: []string{"/var/log/nginx", "/srv"}},
				{App: "ops/etc", HostPaths: []string{"/etc"}},
				{App: "ops/both", HostNamespaces: true, HostPaths: []string{"/srv"}},
				{App: "ops/plain"},
			},
			want:    []string{"b", "c", "", "", "a"},
			wantErr: "0/3 nodes available: 3 refused by the node's owner",
		},
		{
			name:    "maxPerNode: at most one per node, then none",
			nodes:   []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			reqs:    repeat(Request{App: "ns/db", MaxPerNode: 1}, 3),
			want:    []string{"a", "b", ""},
			wantErr: "0/2 nodes available: 2 max per node reached",
		},
		{
			name:  "maxPerNode: two per node",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			reqs:  repeat(Request{App: "ns/db", MaxPerNode: 2}, 4),
			want:  []string{"a", "b", "a", "b"},
		},
		{
			name: "spreadBy zone: across zones first, even when a zone has more nodes",
			nodes: []NodeInfo{
				ready("a1", 8, 8, "zone", "a"), ready("a2", 8, 8, "zone", "a"), ready("a3", 8, 8, "zone", "a"),
				ready("b1", 8, 8, "zone", "b"),
			},
			reqs: repeat(Request{App: "ns/web", SpreadBy: "zone"}, 4),
			// Zones tie at one each after a1 and b1; then the node with
			// none (a2); then zone b, which has fewer.
			want: []string{"a1", "b1", "a2", "b1"},
		},
		{
			name:  "spreadBy: nodes without the label are one more group",
			nodes: []NodeInfo{ready("a1", 8, 8, "zone", "a"), ready("x", 8, 8), ready("y", 8, 8)},
			reqs:  repeat(Request{App: "ns/web", SpreadBy: "zone"}, 4),
			want:  []string{"a1", "x", "y", "a1"},
		},
		{
			name: "not ready and unschedulable nodes are skipped",
			nodes: []NodeInfo{
				{Name: "a", MilliCPU: 8000, MemoryBytes: 8 * gi},
				{Name: "b", Ready: true, Unschedulable: true, MilliCPU: 8000, MemoryBytes: 8 * gi},
				ready("c", 1, 1),
			},
			reqs: repeat(web, 3),
			want: []string{"c", "c", "c"},
		},
		{
			name: "mixed reasons, most common first",
			nodes: []NodeInfo{
				{Name: "a", MilliCPU: 8000, MemoryBytes: 8 * gi},
				ready("b", 2, 8), ready("c", 1, 8),
			},
			reqs:    []Request{req("ns/big", 4000, 0)},
			want:    []string{""},
			wantErr: "0/3 nodes available: 2 insufficient cpu (needs 4, most free 2), 1 not ready",
		},
		{
			name:    "no nodes",
			reqs:    []Request{web},
			want:    []string{""},
			wantErr: "no nodes registered",
		},
		{
			name:  "spread: 3 replicas on 3 nodes",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8), ready("c", 8, 8)},
			reqs:  repeat(req("ns/web", 100, 64*mi), 3),
			want:  []string{"a", "b", "c"},
		},
		{
			name:  "spread: 6 replicas on 3 nodes, 2 each",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8), ready("c", 8, 8)},
			reqs:  repeat(req("ns/web", 100, 64*mi), 6),
			want:  []string{"a", "b", "c", "a", "b", "c"},
		},
		{
			name:  "spread beats least allocated",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			placed: []Placed{
				{Node: "a", Request: req("ns/web", 100, 0)},
				{Node: "b", Request: req("ns/batch", 7000, 0)},
			},
			reqs: []Request{req("ns/web", 100, 0)},
			want: []string{"b"},
		},
		{
			name:  "spread counts zero-request instances",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8), ready("c", 8, 8)},
			reqs:  repeat(web, 4),
			want:  []string{"a", "b", "c", "a"},
		},
		{
			name:  "zero-request instances of different apps still spread",
			nodes: []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			reqs:  []Request{req("ns/one", 0, 0), req("ns/two", 0, 0), req("ns/three", 0, 0)},
			want:  []string{"a", "b", "a"},
		},
		{
			name:   "least allocated",
			nodes:  []NodeInfo{ready("a", 4, 8), ready("b", 4, 8), ready("c", 4, 8)},
			placed: []Placed{{Node: "a", Request: req("ns/x", 1000, 0)}, {Node: "b", Request: req("ns/y", 0, gi)}, {Node: "c", Request: req("ns/z", 1000, gi)}},
			// after: a 2/4+0/8 = .5, b 1/4+1/8 = .375, c 2/4+1/8 = .625
			reqs: []Request{req("ns/web", 1000, 0)},
			want: []string{"b"},
		},
		{
			name:  "least allocated prefers the bigger node",
			nodes: []NodeInfo{ready("a", 2, 4), ready("b", 16, 64)},
			reqs:  []Request{req("ns/one", 1000, gi), req("ns/two", 1000, gi)},
			want:  []string{"b", "b"},
		},
		{
			name:    "host port: a second instance needs another node",
			nodes:   []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			reqs:    repeat(Request{App: "ns/lb", HostPorts: []HostPort{{Port: 80}}}, 3),
			want:    []string{"a", "b", ""},
			wantErr: "0/2 nodes available: 2 host port in use",
		},
		{
			name:   "host port: other apps conflict too, empty protocol is TCP",
			nodes:  []NodeInfo{ready("a", 8, 8), ready("b", 8, 8)},
			placed: []Placed{{Node: "a", Request: Request{App: "ns/lb", HostPorts: []HostPort{{Port: 80, Protocol: "TCP"}}}}},
			reqs:   []Request{{App: "ns/web", HostPorts: []HostPort{{Port: 8080}, {Port: 80}}}},
			want:   []string{"b"},
		},
		{
			name:   "host port: same number, other protocol, no conflict",
			nodes:  []NodeInfo{ready("a", 8, 8)},
			placed: []Placed{{Node: "a", Request: Request{App: "ns/dns", HostPorts: []HostPort{{Port: 53, Protocol: "UDP"}}}}},
			reqs:   []Request{{App: "ns/dns-tcp", HostPorts: []HostPort{{Port: 53, Protocol: "TCP"}}}},
			want:   []string{"a"},
		},
		{
			name: "host port: only on a node whose owner's range has it",
			nodes: []NodeInfo{
				func() NodeInfo { n := ready("a", 8, 8); n.AcceptsPortMin, n.AcceptsPortMax = 30000, 30099; return n }(),
				func() NodeInfo { n := ready("b", 8, 8); n.AcceptsPortMin, n.AcceptsPortMax = 30000, 32767; return n }(),
				ready("c", 8, 8), // an older agent: no range declared
			},
			reqs:    []Request{{App: "ns/lb", HostPorts: []HostPort{{Port: 30100}}}, {App: "ns/lb", HostPorts: []HostPort{{Port: 30100}}}, {App: "ns/lb", HostPorts: []HostPort{{Port: 30100}}}, {App: "ns/ok", HostPorts: []HostPort{{Port: 30099}}}},
			want:    []string{"b", "c", "", "a"},
			wantErr: "0/3 nodes available: 2 host port in use, 1 host port outside the node's port range",
		},
		{
			name:   "placed on a node that is gone is ignored",
			nodes:  []NodeInfo{ready("a", 1, 1)},
			placed: []Placed{{Node: "gone", Request: req("ns/web", 1000, gi)}},
			reqs:   []Request{req("ns/web", 1000, gi)},
			want:   []string{"a"},
		},
		{
			name:   "zero request fits an over-committed node",
			nodes:  []NodeInfo{ready("a", 1, 1)},
			placed: []Placed{{Node: "a", Request: req("ns/x", 2000, 2*gi)}},
			reqs:   []Request{req("ns/web", 0, 0), req("ns/web", 1, 0)},
			want:   []string{"a", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSnapshot(tt.nodes, tt.placed)
			got, err := placeAll(s, tt.reqs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("placed on %q, want %q (last error: %v)", got, tt.want, err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
			}
		})
	}
}

func TestPlaceError(t *testing.T) {
	s := NewSnapshot([]NodeInfo{ready("a", 1, 1), {Name: "b"}}, nil)
	_, err := s.Place(req("ns/web", 2000, 0))
	var ue *UnschedulableError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an *UnschedulableError", err, err)
	}
	if !errors.Is(err, ErrUnschedulable) {
		t.Errorf("errors.Is(%v, ErrUnschedulable) = false", err)
	}
	want := map[string]int{ReasonInsufficientCPU: 1, ReasonNotReady: 1}
	if ue.Nodes != 2 || len(ue.Reasons) != len(want) || ue.Reasons[ReasonInsufficientCPU] != 1 || ue.Reasons[ReasonNotReady] != 1 {
		t.Errorf("got Nodes=%d Reasons=%v, want Nodes=2 Reasons=%v", ue.Nodes, ue.Reasons, want)
	}
	if _, _, count := s.Allocated("a"); count != 0 {
		t.Errorf("failed Place recorded %d instances on a, want 0", count)
	}
}

func TestReleaseFreesCapacity(t *testing.T) {
	s := NewSnapshot([]NodeInfo{ready("a", 2, 2)}, []Placed{{Node: "a", Request: Request{App: "ns/old", MilliCPU: 2000, MemoryBytes: gi, HostPorts: []HostPort{{Port: 80}}}}})
	next := Request{App: "ns/new", MilliCPU: 1000, MemoryBytes: gi, HostPorts: []HostPort{{Port: 80, Protocol: "tcp"}}}
	if n, err := s.Place(next); err == nil {
		t.Fatalf("placed on full node %q, want an error", n)
	}
	s.Release("a", Request{App: "ns/old", MilliCPU: 2000, MemoryBytes: gi, HostPorts: []HostPort{{Port: 80}}})
	if cpu, mem, count := s.Allocated("a"); cpu != 0 || mem != 0 || count != 0 {
		t.Fatalf("after Release Allocated = %d, %d, %d, want 0, 0, 0", cpu, mem, count)
	}
	if n, err := s.Place(next); err != nil || n != "a" {
		t.Fatalf("Place after Release = %q, %v, want a", n, err)
	}
	if cpu, mem, count := s.Allocated("a"); cpu != 1000 || mem != gi || count != 1 {
		t.Errorf("Allocated = %d, %d, %d, want 1000, %d, 1", cpu, mem, count, gi)
	}
	// Releasing what was never there must not make the node look emptier.
	s.Release("a", req("ns/ghost", 5000, 5*gi))
	s.Release("nowhere", next)
	if cpu, mem, count := s.Allocated("a"); cpu != 0 || mem != 0 || count != 0 {
		t.Errorf("after over-release Allocated = %d, %d, %d, want clamped to 0, 0, 0", cpu, mem, count)
	}
}

func TestReleaseUndoesSpread(t *testing.T) {
	s := NewSnapshot([]NodeInfo{ready("a", 8, 8), ready("b", 8, 8)}, nil)
	web := req("ns/web", 100, 0)
	placeAll(s, repeat(web, 2)) // a, b
	s.Release("a", web)
	if n, err := s.Place(web); err != nil || n != "a" {
		t.Errorf("Place after releasing a's replica = %q, %v, want a", n, err)
	}
}

// TestNoOverCommit places many random requests, releasing some on the way,
// and checks that no node ever holds more than its capacity or two users of
// one host port.
func TestNoOverCommit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []NodeInfo
	for i := range 20 {
		n := ready(fmt.Sprintf("n%02d", i), 1+rng.Int64N(8), 1+rng.Int64N(16), "zone", string(rune('a'+i%3)))
		n.Ready = rng.IntN(10) > 0
		nodes = append(nodes, n)
	}
	s := NewSnapshot(nodes, nil)
	type bound struct {
		node string
		r    Request
	}
	var live []bound
	failures := 0
	for i := range 2000 {
		r := req(fmt.Sprintf("ns/app%d", rng.IntN(15)), rng.Int64N(2000), rng.Int64N(3*gi))
		if rng.IntN(5) == 0 {
			r.NodeSelector = map[string]string{"zone": string(rune('a' + rng.IntN(3)))}
		}
		if rng.IntN(4) == 0 {
			r.HostPorts = []HostPort{{Port: 8000 + int32(rng.IntN(3))}}
		}
		if n, err := s.Place(r); err == nil {
			live = append(live, bound{n, r})
		} else {
			failures++
		}
		if i%3 == 0 && len(live) > 0 {
			j := rng.IntN(len(live))
			s.Release(live[j].node, live[j].r)
			live = slices.Delete(live, j, j+1)
		}
	}
	if failures == 0 || len(live) == 0 {
		t.Fatalf("%d placed, %d failed: the test should fill nodes", len(live), failures)
	}
	type use struct {
		cpu, mem int64
		count    int
		ports    map[int32]int
	}
	uses := map[string]*use{}
	for _, n := range nodes {
		uses[n.Name] = &use{ports: map[int32]int{}}
	}
	for _, b := range live {
		u := uses[b.node]
		u.cpu += b.r.MilliCPU
		u.mem += b.r.MemoryBytes
		u.count++
		for _, hp := range b.r.HostPorts {
			u.ports[hp.Port]++
		}
	}
	for _, n := range nodes {
		u := uses[n.Name]
		if u.cpu > n.MilliCPU || u.mem > n.MemoryBytes {
			t.Errorf("node %s holds cpu %d/%d memory %d/%d: over-committed", n.Name, u.cpu, n.MilliCPU, u.mem, n.MemoryBytes)
		}
		if !n.Ready && u.count > 0 {
			t.Errorf("node %s is not ready but holds %d instances", n.Name, u.count)
		}
		for port, c := range u.ports {
			if c > 1 {
				t.Errorf("node %s has %d instances on host port %d", n.Name, c, port)
			}
		}
		if cpu, mem, count := s.Allocated(n.Name); cpu != u.cpu || mem != u.mem || count != u.count {
			t.Errorf("Allocated(%s) = %d, %d, %d, want %d, %d, %d", n.Name, cpu, mem, count, u.cpu, u.mem, u.count)
		}
	}
}

// TestPlaceMatchesReference checks the pruned placement loop against a
// plain one: run every filter on every node, then take the best score.
func TestPlaceMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var nodes []NodeInfo
		for i := range 2 + rng.IntN(30) {
			n := ready(fmt.Sprintf("n%02d", i), 1+rng.Int64N(4), 1+rng.Int64N(4), "zone", string(rune('a'+rng.IntN(2))))
			n.Ready = rng.IntN(8) > 0
			n.Unschedulable = rng.IntN(8) == 0
			nodes = append(nodes, n)
		}
		s := NewSnapshot(nodes, nil)
		for i := range 200 {
			r := req(fmt.Sprintf("ns/app%d", rng.IntN(6)), rng.Int64N(3)*250, rng.Int64N(3)*256*mi)
			if rng.IntN(4) == 0 {
				r.NodeSelector = map[string]string{"zone": string(rune('a' + rng.IntN(2)))}
			}
			if rng.IntN(6) == 0 {
				r.HostPorts = []HostPort{{Port: 9000}}
			}
			want := referencePlace(s, r)
			got, err := s.Place(r)
			if got != want || (err == nil) != (want != "") {
				t.Fatalf("round %d, request %d %+v: Place = %q, %v; reference = %q", round, i, r, got, err, want)
			}
		}
	}
}

func referencePlace(s *Snapshot, r Request) string {
	p := s.prepare(&r)
	p.selector = s.selectorMatch(r.NodeSelector)
	best := -1
	var bestKey [3]float64
	for i := range s.nodes {
		n := &s.nodes[i]
		ok := true
		for _, f := range filters {
			if pass, _ := f.Check(n, p); !pass {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var c int32
		if a := s.apps[r.App]; a != nil {
			c = a.perNode[i]
		}
		frac := s.scores[i].fracAfter(float64(p.milliCPU), float64(p.memoryBytes))
		key := [3]float64{float64(c), frac, float64(n.count)}
		if best < 0 || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = i, key
		}
	}
	if best < 0 {
		return ""
	}
	return s.nodes[best].name
}

func TestDeterministic(t *testing.T) {
	var nodes []NodeInfo
	for i := range 12 {
		nodes = append(nodes, ready(fmt.Sprintf("node-%02d", i), 4, 8, "zone", string(rune('a'+i%2))))
	}
	var reqs []Request
	for i := range 60 {
		r := req(fmt.Sprintf("ns/app%d", i%5), int64(i%4)*250, int64(i%3)*gi/2)
		if i%7 == 0 {
			r.NodeSelector = map[string]string{"zone": "b"}
		}
		reqs = append(reqs, r)
	}
	first, _ := placeAll(NewSnapshot(nodes, nil), reqs)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5 {
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, _ := placeAll(NewSnapshot(shuffled, nil), reqs)
		if !slices.Equal(got, first) {
			t.Fatalf("placements depend on node order:\n got %q\nwant %q", got, first)
		}
	}
}

func TestPlaceDoesNotAllocate(t *testing.T) {
	var nodes []NodeInfo
	for i := range 100 {
		nodes = append(nodes, ready(fmt.Sprintf("n%03d", i), 1000, 1000, "zone", "a"))
	}
	s := NewSnapshot(nodes, nil)
	r := Request{App: "ns/web", MilliCPU: 1, MemoryBytes: 1, NodeSelector: map[string]string{"zone": "a"}, HostPorts: []HostPort{{Port: 0}}}
	s.Place(r) // creates the App's counts and caches the selector
	if allocs := testing.AllocsPerRun(100, func() { s.Place(r) }); allocs != 0 {
		t.Errorf("Place allocates %.1f times per call, want 0", allocs)
	}
}

func TestFormat(t *testing.T) {
	cores := []struct {
		milli int64
		want  string
	}{{0, "0"}, {4000, "4"}, {500, "0.5"}, {1250, "1.25"}, {1, "0.001"}, {12345, "12.345"}}
	for _, tt := range cores {
		if got := formatCores(tt.milli); got != tt.want {
			t.Errorf("formatCores(%d) = %q, want %q", tt.milli, got, tt.want)
		}
	}
	bytes := []struct {
		b    int64
		up   bool
		want string
	}{
		{0, false, "0"},
		{1000, false, "1000"},
		{512 * mi, false, "512Mi"},
		{gi, false, "1Gi"},
		{3 * gi / 2, true, "1.5Gi"},
		{gi - 1, false, "1023.99Mi"},
		{gi - 1, true, "1024Mi"},
		{100*mi + 1, true, "100.01Mi"},
		{100*mi + 1, false, "100Mi"},
		{2048 * gi, false, "2Ti"},
	}
	for _, tt := range bytes {
		if got := formatBytes(tt.b, tt.up); got != tt.want {
			t.Errorf("formatBytes(%d, %v) = %q, want %q", tt.b, tt.up, got, tt.want)
		}
	}
}
