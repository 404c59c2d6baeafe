package scheduler

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strings"
)

// Request is one instance to place.
type Request struct {
	// Key is the Instance's "namespace/name", for messages.
	Key string
	// App is "namespace/app"; replicas of one App spread across nodes.
	App string
	// MilliCPU and MemoryBytes are what the instance reserves; zero reserves
	// nothing but still counts for spread.
	MilliCPU    int64
	MemoryBytes int64
	// HostPorts are bound on the node; two instances using the same port and
	// protocol never share a node. Port 0 binds nothing.
	HostPorts []HostPort
	// NodeSelector lists node labels that must all match.
	NodeSelector map[string]string
	// Namespace, Registry and Signer are matched against nodes' owner
	// rules (NodeInfo.Accepts*): the instance's namespace, its image's
	// registry ("docker.io") and the key that signed its template.
	Namespace, Registry, Signer string
	// HostNamespaces (hostPID, hostIPC) and HostPaths (volumes) are host
	// access, which a node allows only when its owner says so.
	HostNamespaces bool
	HostPaths      []string
	// Privileged and Capabilities (those added beyond the hardened
	// default set: "CAP_NET_ADMIN", "ALL") are privileges, which a node
	// grants only when its owner says so.
	Privileged   bool
	Capabilities []string
	// MaxPerNode, when above zero, is the most instances of App one node
	// runs.
	MaxPerNode int32
	// SpreadBy is a node label ("zone"): App's instances go first to the
	// value with the fewest of them (nodes without the label are one
	// group), then to the node with the fewest.
	SpreadBy string
}

// HostPort is a port bound on the node itself.
type HostPort struct {
	Port int32
	// Protocol is "TCP" or "UDP" (api.Protocol); empty means TCP.
	Protocol string
}

// NodeInfo is what placement needs to know of a node.
type NodeInfo struct {
	Name          string
	Labels        map[string]string
	Ready         bool
	Unschedulable bool
	// MilliCPU and MemoryBytes are the node's capacity.
	MilliCPU    int64
	MemoryBytes int64
	// AcceptsNamespaces, AcceptsRegistries and AcceptsSigners are the
	// owner's rules; an empty list allows any.
	AcceptsNamespaces, AcceptsRegistries, AcceptsSigners []string
	// AcceptsHostNamespaces and AcceptsHostPaths are the host access the
	// owner allows; unlike the lists above, empty allows none.
	AcceptsHostNamespaces bool
	AcceptsHostPaths      []string
	// AcceptsPrivileged and AcceptsCapabilities are the privileges the
	// owner grants (privileged implies every capability); empty grants
	// none.
	AcceptsPrivileged   bool
	AcceptsCapabilities []string
	// AcceptsPortMin and AcceptsPortMax are the host ports the owner lets
	// instances bind, both included; both zero allow any.
	AcceptsPortMin, AcceptsPortMax int32
}

// Placed is an instance already bound to a node; it counts against the
// node's capacity, host ports and spread.
type Placed struct {
	Node    string
	Request Request
}

// Snapshot is the cluster as placement sees it during one controller round.
// Place and Release change it; nothing else does. The maps inside the
// NodeInfos and Requests given to it are read, never written, and must not
// change while it is in use.
type Snapshot struct {
	nodes  []node // sorted by name: a node's index is its number everywhere below
	scores []nodeScore
	byName map[string]int32
	apps   map[string]*appCounts
	zeros  []int32 // per-node counts of an App with no instances yet

	// selectors caches, per distinct node selector, which nodes match it;
	// nodes do not change during a Snapshot's life, so entries never go stale.
	selectors map[string][]bool

	// Scratch reused by every call so that placing allocates nothing.
	p    pending
	keys []string
	buf  []byte
}

// node is one node's capacity and what is allocated on it.
type node struct {
	milliCPU, memoryBytes       int64 // allocated
	capMilliCPU, capMemoryBytes int64
	count                       int // instances of any App
	ready                       bool
	unschedulable               bool
	idx                         int32
	ports                       map[hostPortKey]int32 // instances binding each host port; nil until one does
	name                        string
	labels                      map[string]string
	accepts                     *accepts // nil: the owner allows anything but host access and privileges
	portMin, portMax            int32    // host ports the owner allows; both zero: any
}

// accepts are a node's owner rules.
type accepts struct {
	namespaces, registries, signers []string
	hostNamespaces                  bool
	hostPaths                       []string
	privileged                      bool
	capabilities                    []string
}

// nodeScore is what the placement loop reads of every node, kept apart from
// node and small so that a thousand of them stay in the L1 cache.
type nodeScore struct {
	// load is the fraction of cpu plus the fraction of memory allocated.
	load float64
	// invCPU and invMem are 1/capacity (0 for no capacity), so scoring
	// multiplies instead of divides.
	invCPU, invMem float64
	count          int
}

// fracAfter is load after placing a request of cpu millicores and mem bytes.
func (sc *nodeScore) fracAfter(cpu, mem float64) float64 {
	return sc.load + cpu*sc.invCPU + mem*sc.invMem
}

type hostPortKey struct {
	port  int32
	proto string
}

// appCounts is how many instances of one App each node runs.
type appCounts struct {
	perNode []int32
	total   int
}

// pending is a Request made ready for the filters: quantities clamped,
// ports normalised, selector resolved to a per-node match.
type pending struct {
	milliCPU, memoryBytes       int64
	ports                       []hostPortKey
	selector                    []bool // nil when the request has no selector
	namespace, registry, signer string
	hostNamespaces              bool
	hostPaths                   []string
	privileged                  bool
	capabilities                []string
	maxPerNode                  int32
	perNode                     []int32 // the app's instances per node; nil when it has none
}

// NewSnapshot builds a snapshot of nodes with placed already bound to them.
// Instances placed on a node that is not in nodes are ignored: their node is
// gone and they will be replaced elsewhere. Of two nodes with one name, the
// first is kept.
func NewSnapshot(nodes []NodeInfo, placed []Placed) *Snapshot {
	sorted := slices.Clone(nodes)
	slices.SortStableFunc(sorted, func(a, b NodeInfo) int { return cmp.Compare(a.Name, b.Name) })
	sorted = slices.CompactFunc(sorted, func(a, b NodeInfo) bool { return a.Name == b.Name })

	s := &Snapshot{
		nodes:     make([]node, len(sorted)),
		scores:    make([]nodeScore, len(sorted)),
		byName:    make(map[string]int32, len(sorted)),
		apps:      make(map[string]*appCounts),
		zeros:     make([]int32, len(sorted)),
		selectors: make(map[string][]bool),
	}
	for i, ni := range sorted {
		s.nodes[i] = node{
			capMilliCPU:    ni.MilliCPU,
			capMemoryBytes: ni.MemoryBytes,
			ready:          ni.Ready,
			unschedulable:  ni.Unschedulable,
			idx:            int32(i),
			name:           ni.Name,
			labels:         ni.Labels,
			portMin:        ni.AcceptsPortMin,
			portMax:        ni.AcceptsPortMax,
		}
		if len(ni.AcceptsNamespaces)+len(ni.AcceptsRegistries)+len(ni.AcceptsSigners)+len(ni.AcceptsHostPaths)+len(ni.AcceptsCapabilities) > 0 ||
			ni.AcceptsHostNamespaces || ni.AcceptsPrivileged {
			s.nodes[i].accepts = &accepts{ni.AcceptsNamespaces, ni.AcceptsRegistries, ni.AcceptsSigners, ni.AcceptsHostNamespaces, ni.AcceptsHostPaths,
				ni.AcceptsPrivileged, ni.AcceptsCapabilities}
		}
		s.scores[i] = nodeScore{invCPU: inverse(ni.MilliCPU), invMem: inverse(ni.MemoryBytes)}
		s.byName[ni.Name] = int32(i)
	}
	for i := range placed {
		if idx, ok := s.byName[placed[i].Node]; ok {
			s.add(int(idx), &placed[i].Request)
		}
	}
	return s
}

func inverse(capacity int64) float64 {
	if capacity <= 0 {
		return 0
	}
	return 1 / float64(capacity)
}

// Place picks a node for r and records r on it, so later calls see it. When
// no node can take r it returns an *UnschedulableError and records nothing.
func (s *Snapshot) Place(r Request) (node string, err error) {
	p := s.prepare(&r)
	p.selector = s.selectorMatch(r.NodeSelector)

	counts := s.zeros
	if a := s.apps[r.App]; a != nil {
		counts = a.perNode
	}
	counts = counts[:len(s.nodes)]
	scores := s.scores[:len(s.nodes)]
	cpu, mem := float64(p.milliCPU), float64(p.memoryBytes)

	// With SpreadBy, the app's instances per label value come first.
	var groups map[string]int32
	if r.SpreadBy != "" {
		groups = make(map[string]int32)
		for i := range s.nodes {
			groups[s.nodes[i].labels[r.SpreadBy]] += counts[i]
		}
	}

	// Score first and filter only nodes that would beat the best so far: a
	// node that loses costs a slice lookup and a few multiplications, not
	// every filter.
	best := -1
	bestGroup, bestCount, bestFrac, bestTotal := int32(math.MaxInt32), int32(math.MaxInt32), 0.0, 0
	for i := range scores {
		var g int32
		if groups != nil {
			g = groups[s.nodes[i].labels[r.SpreadBy]]
			if g > bestGroup {
				continue
			}
		}
		c := counts[i]
		if g == bestGroup && c > bestCount {
			continue
		}
		sc := &scores[i]
		frac := sc.fracAfter(cpu, mem)
		if g == bestGroup && c == bestCount && (frac > bestFrac || frac == bestFrac && sc.count >= bestTotal) {
			continue // ties go to the earlier node, which has the smaller name
		}
		if refusal(&s.nodes[i], p) != "" {
			continue
		}
		best, bestGroup, bestCount, bestFrac, bestTotal = i, g, c, frac, sc.count
	}
	if best < 0 {
		return "", s.explain(p)
	}
	s.add(best, &r)
	return s.nodes[best].name, nil
}

// Release undoes the accounting of r on the named node, as when an instance
// is removed. r must be what was placed there (by Place or NewSnapshot); an
// unknown node is ignored.
func (s *Snapshot) Release(node string, r Request) {
	idx, ok := s.byName[node]
	if !ok {
		return
	}
	n := &s.nodes[idx]
	p := s.prepare(&r)
	// Clamp at zero so a mistaken Release cannot make a node look emptier
	// than empty, which would let Place over-commit it.
	n.milliCPU = max(n.milliCPU-p.milliCPU, 0)
	n.memoryBytes = max(n.memoryBytes-p.memoryBytes, 0)
	n.count = max(n.count-1, 0)
	s.rescore(int(idx))
	for _, hp := range p.ports {
		if n.ports[hp] <= 1 {
			delete(n.ports, hp)
		} else {
			n.ports[hp]--
		}
	}
	if a := s.apps[r.App]; a != nil && a.perNode[idx] > 0 {
		a.perNode[idx]--
		a.total--
		if a.total == 0 {
			delete(s.apps, r.App)
		}
	}
}

// Allocated returns the CPU and memory reserved on the named node and how
// many instances it runs; zeros for an unknown node.
func (s *Snapshot) Allocated(node string) (milliCPU, memoryBytes int64, count int) {
	idx, ok := s.byName[node]
	if !ok {
		return 0, 0, 0
	}
	n := &s.nodes[idx]
	return n.milliCPU, n.memoryBytes, n.count
}

// add records r on node idx.
func (s *Snapshot) add(idx int, r *Request) {
	n := &s.nodes[idx]
	p := s.prepare(r)
	n.milliCPU += p.milliCPU
	n.memoryBytes += p.memoryBytes
	n.count++
	s.rescore(idx)
	for _, hp := range p.ports {
		if n.ports == nil {
			n.ports = make(map[hostPortKey]int32)
		}
		n.ports[hp]++
	}
	a := s.apps[r.App]
	if a == nil {
		a = &appCounts{perNode: make([]int32, len(s.nodes))}
		s.apps[r.App] = a
	}
	a.perNode[idx]++
	a.total++
}

// rescore recomputes node idx's score from its allocation, never
// incrementally, so equal nodes always score exactly equal.
func (s *Snapshot) rescore(idx int) {
	n, sc := &s.nodes[idx], &s.scores[idx]
	sc.load = float64(n.milliCPU)*sc.invCPU + float64(n.memoryBytes)*sc.invMem
	sc.count = n.count
}

// prepare fills the scratch pending from r, without its selector.
func (s *Snapshot) prepare(r *Request) *pending {
	p := &s.p
	p.milliCPU = max(r.MilliCPU, 0)
	p.memoryBytes = max(r.MemoryBytes, 0)
	p.selector = nil
	p.namespace, p.registry, p.signer = r.Namespace, r.Registry, r.Signer
	p.hostNamespaces, p.hostPaths = r.HostNamespaces, r.HostPaths
	p.privileged, p.capabilities = r.Privileged, r.Capabilities
	p.maxPerNode, p.perNode = r.MaxPerNode, nil
	if a := s.apps[r.App]; a != nil {
		p.perNode = a.perNode
	}
	p.ports = p.ports[:0]
	for _, hp := range r.HostPorts {
		if hp.Port == 0 {
			continue
		}
		proto := strings.ToUpper(hp.Protocol) // no allocation when already upper case
		if proto == "" {
			proto = "TCP"
		}
		p.ports = append(p.ports, hostPortKey{port: hp.Port, proto: proto})
	}
	return p
}

// selectorMatch returns which nodes carry every label of sel, or nil for an
// empty selector. Results are cached by the selector's sorted contents.
func (s *Snapshot) selectorMatch(sel map[string]string) []bool {
	if len(sel) == 0 {
		return nil
	}
	s.keys = s.keys[:0]
	for k := range sel {
		s.keys = append(s.keys, k)
	}
	slices.Sort(s.keys)
	// Length-prefixed, so no label text can make two selectors collide.
	s.buf = s.buf[:0]
	for _, k := range s.keys {
		v := sel[k]
		s.buf = binary.AppendUvarint(s.buf, uint64(len(k)))
		s.buf = append(s.buf, k...)
		s.buf = binary.AppendUvarint(s.buf, uint64(len(v)))
		s.buf = append(s.buf, v...)
	}
	if m, ok := s.selectors[string(s.buf)]; ok {
		return m
	}
	m := make([]bool, len(s.nodes))
	for i := range s.nodes {
		m[i] = matches(s.nodes[i].labels, sel)
	}
	s.selectors[string(s.buf)] = m
	return m
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
