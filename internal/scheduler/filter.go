package scheduler

import (
	"slices"
	"strings"
)

// Reasons a filter refuses a node; the keys of UnschedulableError.Reasons.
const (
	ReasonNotReady         = "not ready"
	ReasonUnschedulable    = "unschedulable"
	ReasonSelectorMismatch = "node selector mismatch"
	ReasonOwnerRules       = "refused by the node's owner"
	ReasonHostPortInUse    = "host port in use"
	ReasonPortRange        = "host port outside the node's port range"
	ReasonMaxPerNode       = "max per node reached"
	ReasonInsufficientCPU  = "insufficient cpu"
	ReasonInsufficientMem  = "insufficient memory"
)

// filter refuses nodes that cannot run a request. Check runs for many nodes
// on every placement, so it must not allocate, and its reason must be one of
// the Reason constants so refusals can be counted across nodes.
type filter interface {
	Check(n *node, p *pending) (ok bool, reason string)
}

// filters in the order a refused node is explained: a node is counted under
// the first filter that refuses it, so the causes a user can act on least
// (the node is down, the app asked for other nodes) come first.
var filters = [...]filter{
	readyFilter{},
	selectorFilter{},
	ownerFilter{},
	portRangeFilter{},
	hostPortFilter{},
	maxPerNodeFilter{},
	cpuFilter{},
	memoryFilter{},
}

// refusal returns why n cannot run p, or "" if it can.
func refusal(n *node, p *pending) string {
	for _, f := range filters {
		if ok, reason := f.Check(n, p); !ok {
			return reason
		}
	}
	return ""
}

// readyFilter keeps instances off nodes whose agent is not ready and nodes
// their owner has cordoned.
type readyFilter struct{}

func (readyFilter) Check(n *node, _ *pending) (bool, string) {
	switch {
	case !n.ready:
		return false, ReasonNotReady
	case n.unschedulable:
		return false, ReasonUnschedulable
	}
	return true, ""
}

// selectorFilter requires every label of the request's node selector. The
// match per node is computed once per distinct selector (see
// Snapshot.selectorMatch), so this is a slice lookup.
type selectorFilter struct{}

func (selectorFilter) Check(n *node, p *pending) (bool, string) {
	if p.selector != nil && !p.selector[n.idx] {
		return false, ReasonSelectorMismatch
	}
	return true, ""
}

// ownerFilter keeps instances off nodes whose owner would refuse them:
// another namespace, image registry or signing key than the owner allows,
// or host access or privileges the owner does not grant. The agent
// enforces the same rules; this only keeps the scheduler from choosing a
// node that will say no.
type ownerFilter struct{}

func (ownerFilter) Check(n *node, p *pending) (bool, string) {
	a := n.accepts
	if a == nil {
		if p.hostNamespaces || len(p.hostPaths) > 0 || p.privileged || len(p.capabilities) > 0 {
			return false, ReasonOwnerRules
		}
		return true, ""
	}
	if len(a.namespaces) > 0 && !slices.Contains(a.namespaces, p.namespace) ||
		len(a.registries) > 0 && !slices.Contains(a.registries, p.registry) ||
		len(a.signers) > 0 && !slices.Contains(a.signers, p.signer) ||
		p.hostNamespaces && !a.hostNamespaces ||
		p.privileged && !a.privileged {
		return false, ReasonOwnerRules
	}
	for _, hp := range p.hostPaths {
		if !PathAllowed(hp, a.hostPaths) {
			return false, ReasonOwnerRules
		}
	}
	if !a.privileged && !slices.Contains(a.capabilities, "ALL") {
		for _, c := range p.capabilities {
			if !slices.Contains(a.capabilities, c) {
				return false, ReasonOwnerRules
			}
		}
	}
	return true, ""
}

// PathAllowed says whether path is one of allowed or below one ("/"
// allows every path). It is api.HostPathAllowed, which this package may
// not import; a controller test holds the two to the same answers.
func PathAllowed(path string, allowed []string) bool {
	for _, a := range allowed {
		if a == "/" || path == a || strings.HasPrefix(path, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// portRangeFilter keeps instances off nodes whose owner does not let them
// bind their host ports (--port-range). The agent refuses them too.
type portRangeFilter struct{}

func (portRangeFilter) Check(n *node, p *pending) (bool, string) {
	if n.portMin == 0 && n.portMax == 0 {
		return true, ""
	}
	for _, hp := range p.ports {
		if hp.port < n.portMin || hp.port > n.portMax {
			return false, ReasonPortRange
		}
	}
	return true, ""
}

// hostPortFilter keeps two instances binding the same host port and protocol
// off one node.
type hostPortFilter struct{}

func (hostPortFilter) Check(n *node, p *pending) (bool, string) {
	for _, hp := range p.ports {
		if n.ports[hp] > 0 {
			return false, ReasonHostPortInUse
		}
	}
	return true, ""
}

// maxPerNodeFilter keeps a node from running more than the app's
// placement.maxPerNode of its instances.
type maxPerNodeFilter struct{}

func (maxPerNodeFilter) Check(n *node, p *pending) (bool, string) {
	if p.maxPerNode > 0 && p.perNode != nil && p.perNode[n.idx] >= p.maxPerNode {
		return false, ReasonMaxPerNode
	}
	return true, ""
}

// cpuFilter requires room for the request's CPU. A request for no CPU fits
// anywhere, even on a node that is already over-committed.
type cpuFilter struct{}

func (cpuFilter) Check(n *node, p *pending) (bool, string) {
	if p.milliCPU > 0 && p.milliCPU > n.capMilliCPU-n.milliCPU {
		return false, ReasonInsufficientCPU
	}
	return true, ""
}

// memoryFilter requires room for the request's memory, like cpuFilter.
type memoryFilter struct{}

func (memoryFilter) Check(n *node, p *pending) (bool, string) {
	if p.memoryBytes > 0 && p.memoryBytes > n.capMemoryBytes-n.memoryBytes {
		return false, ReasonInsufficientMem
	}
	return true, ""
}
