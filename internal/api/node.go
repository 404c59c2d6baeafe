package api

import "time"

// Node is a machine running the agent.
type Node struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   NodeStatus `json:"status,omitzero"`
}

// GetMeta returns the object's metadata.
func (o *Node) GetMeta() *ObjectMeta { return &o.Metadata }

// DefaultNodeGracePeriod is how long a node may be silent before servers
// mark it NotReady and replace its instances elsewhere (Swarm takes about
// 15 s; Kubernetes 40-50 s, then 300 s more before pods move). Agents
// renew their lease several times within it.
const DefaultNodeGracePeriod = 10 * time.Second

// NodeSpec is what the node's owner declares.
type NodeSpec struct {
	// Unschedulable keeps new instances off the node (`shoal node
	// cordon`).
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Draining moves the node's instances to other nodes as a rollout
	// would, new ones ready before old ones stop, within each App's
	// maxSurge and maxUnavailable (`shoal node drain`); it keeps new
	// instances off the node too.
	Draining bool `json:"draining,omitempty"`
	// Subnet is the IPv4 range the node's containers get addresses from:
	// declared by the agent (--subnet) or assigned by the server from its
	// cluster range, so that no two nodes share one.
	Subnet string `json:"subnet,omitempty"`
	// Relay marks the node, set by a cluster-admin (`shoal node relay`),
	// as one that forwards overlay traffic between nodes that are both
	// behind NAT. A relay decrypts what it forwards: only nodes marked so
	// are ever one.
	Relay bool `json:"relay,omitempty"`
	// Capacity caps what placement offers the node, whatever its agent
	// reports later: the servers record the capacity it reports first
	// (at its join), and from then on only a cluster-admin changes it
	// (apply the Node). A node that reports more is offered no more; one
	// that reports less is offered what it reports.
	Capacity NodeResources `json:"capacity,omitzero"`
}

// NodeAccepts restricts a node to some namespaces, image registries and
// signing keys; an empty list allows any.
type NodeAccepts struct {
	Namespaces []string `json:"namespaces,omitempty"`
	Registries []string `json:"registries,omitempty"`
	SignedBy   []string `json:"signedBy,omitempty"`
	// HostNamespaces and HostPaths are the host access the owner allows
	// (hostPID/hostIPC; volumes below these paths). Unlike the lists
	// above, empty allows none.
	HostNamespaces bool     `json:"hostNamespaces,omitempty"`
	HostPaths      []string `json:"hostPaths,omitempty"`
	// Privileged allows privileged containers (and so every capability);
	// Capabilities are the ones beyond DefaultCapabilities the owner
	// grants ("CAP_NET_ADMIN", "ALL"). Empty allows none, as above.
	Privileged   bool     `json:"privileged,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	// PortRange ("30000-32767") is the node ports the owner lets
	// published ports and hostPorts use (--port-range); empty: the
	// cluster's range.
	PortRange string `json:"portRange,omitempty"`
}

// NodeResources is an amount of CPU and memory.
type NodeResources struct {
	MilliCPU    int64 `json:"milliCPU"`
	MemoryBytes int64 `json:"memoryBytes"`
}

// NodeStatus is what the agent and node controller observed.
type NodeStatus struct {
	// Accepts is what the node's owner lets run on it, as its agent
	// declares (and enforces) at join and with every heartbeat: the
	// scheduler places nothing else there. It is the owner's, so it is
	// status, which the node writes; the spec is the cluster's.
	Accepts  NodeAccepts `json:"accepts,omitzero"`
	Hostname string      `json:"hostname,omitempty"`
	// Address is where the node's agent serves logs (host:port).
	Address string `json:"address,omitempty"`
	// InternalIP is the node's address other nodes route its container
	// subnet through.
	InternalIP string `json:"internalIP,omitempty"`
	// Overlay is the node's end of the encrypted overlay between nodes;
	// empty when the node routes its subnet some other way.
	Overlay  *NodeOverlay  `json:"overlay,omitempty"`
	Capacity NodeResources `json:"capacity"`
	// Reserved is what the node's owner keeps for the machine itself
	// (--reserve): placement offers Capacity minus Reserved.
	Reserved  NodeResources `json:"reserved,omitzero"`
	Allocated NodeResources `json:"allocated"`
	// Used is what the node's instances use, summed, as last sampled.
	Used NodeResources `json:"used,omitzero"`
	// Usage is each running instance's use, as last sampled (UsageAt).
	Usage   []InstanceUsage `json:"usage,omitempty"`
	UsageAt time.Time       `json:"usageAt,omitzero"`
	// Traffic is what the node's proxy sent each App, as last sampled.
	Traffic []AppTraffic `json:"traffic,omitempty"`
	Ready   bool         `json:"ready"`
	// LastHeartbeat is when the agent last renewed its lease.
	LastHeartbeat time.Time `json:"lastHeartbeat,omitzero"`
	Message       string    `json:"message,omitempty"`
	AgentVersion  string    `json:"agentVersion,omitempty"`
	Instances     int32     `json:"instances"`
}

// NodeOverlay is what other nodes need to reach a node's containers
// through the WireGuard overlay.
type NodeOverlay struct {
	// PublicKey is the node's WireGuard key (base64); it changes when the
	// node's certificate is renewed.
	PublicKey string `json:"publicKey"`
	// Endpoint is where other nodes send to the node (host:port); empty
	// when nothing can reach it (behind NAT): it dials the others, and
	// nodes behind NAT reach each other through a node with an endpoint.
	Endpoint string `json:"endpoint,omitempty"`
}

// Allocatable is what placement may reserve on the node: the capacity it
// reports, no more than its spec's cap, less what its owner keeps.
func (n *Node) Allocatable() NodeResources {
	capped := func(reported, limit int64) int64 {
		if limit > 0 && limit < reported {
			return limit
		}
		return reported
	}
	st := &n.Status
	return NodeResources{
		MilliCPU:    max(capped(st.Capacity.MilliCPU, n.Spec.Capacity.MilliCPU)-st.Reserved.MilliCPU, 0),
		MemoryBytes: max(capped(st.Capacity.MemoryBytes, n.Spec.Capacity.MemoryBytes)-st.Reserved.MemoryBytes, 0),
	}
}

// InstanceUsage is what one instance's container uses: CPU as a rate over
// the last sample period, memory's working set, processes, and the bytes
// through its network interfaces since it started.
type InstanceUsage struct {
	Namespace   string `json:"namespace"`
	Instance    string `json:"instance"`
	App         string `json:"app,omitempty"`
	Job         string `json:"job,omitempty"`
	MilliCPU    int64  `json:"milliCPU"`
	MemoryBytes int64  `json:"memoryBytes"`
	Pids        int64  `json:"pids"`
	RxBytes     int64  `json:"rxBytes"`
	TxBytes     int64  `json:"txBytes"`
}

// AppTraffic is one App's traffic through one node's proxy: new
// connections per second to its service address and published ports (in
// kernel mode the kernel counts them, each its first packet), and how many
// wait for an instance to start (an App scaled to zero).
type AppTraffic struct {
	Namespace         string  `json:"namespace"`
	App               string  `json:"app"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Waiting           int32   `json:"waiting,omitempty"`
}
