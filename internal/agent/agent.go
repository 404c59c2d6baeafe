package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/listwatch"
	"github.com/shoal-dev/shoal/internal/runtime"
)

var (
	nodeKind     = api.MustKind(api.KindNode)
	instanceKind = api.MustKind(api.KindInstance)
)

// Config wires an Agent.
type Config struct {
	NodeName string
	Labels   map[string]string
	Client   *client.Client
	Driver   runtime.Driver
	// DataDir keeps the agent's instance cache and log files.
	DataDir string
	// Listen is where the agent serves logs to the server ("127.0.0.1:0").
	Listen string
	// TLS, when set, serves Listen over TLS and admits only clients with a
	// certificate of the cluster's servers or admins.
	TLS *tls.Config
	// Advertise is the address the server uses to reach Listen; empty
	// means the listener's own address.
	Advertise string
	Log       *slog.Logger
	Version   string
	// Heartbeat is how often the node's lease is renewed.
	Heartbeat time.Duration
	// MilliCPU and MemoryBytes override the detected capacity.
	MilliCPU    int64
	MemoryBytes int64
	// Reserved is kept for the machine itself: the scheduler offers the
	// capacity less this.
	Reserved api.NodeResources
	// MaxLogBytes is the size past which an instance's log is rotated
	// (default MaxLogBytes).
	MaxLogBytes int64
	// DrainDelay is how long a deleted instance's container keeps running
	// after the instance was reported not ready, so that every node's
	// proxy drops it before SIGTERM (default DefaultDrainDelay; negative:
	// no delay).
	DrainDelay time.Duration
	// Subnet is the node's container subnet, declared on the Node.
	Subnet string
	// InternalIP is where other nodes route this node's subnet; empty
	// detects it from the default route.
	InternalIP string
	// Routes installs host-gw routes to the other nodes' subnets (when
	// Overlay is nil).
	Routes bool
	// Overlay, when set, is the node's WireGuard device: the agent
	// publishes its key and keeps its peers and routes in step with the
	// Node list.
	Overlay Overlay
	// OverlayEndpoint is where other nodes reach Overlay (IP:PORT); empty
	// when nothing can (behind NAT).
	OverlayEndpoint string
	// ClusterCIDR is the range every node's subnet lies inside: another
	// node's subnet outside it is never routed. With Overlay it is routed
	// into the device as a whole, so that a packet for a node not yet
	// known is dropped there rather than sent in the clear through the
	// default route.
	ClusterCIDR netip.Prefix
	// Resync is how often each instance's container is inspected without
	// a prompt (default DefaultResync). Exits are seen from the runtime's
	// events at once; this only covers a lost event.
	Resync time.Duration
	// Owner is what the node's owner accepts (checked before every start).
	Owner OwnerPolicy
	// SampleEvery is how often containers' use is read (default
	// DefaultSampleEvery).
	SampleEvery time.Duration
	// Traffic, when set, is the node proxy's traffic per App, published
	// on the Node with the usage.
	Traffic func() []api.AppTraffic
	// DNSServers are the containers' nameservers (the node's shoal DNS);
	// empty gives containers the node's own resolv.conf.
	DNSServers []string
}

// DefaultHeartbeat is the default Config.Heartbeat: three or more renewals
// within the servers' grace period (api.DefaultNodeGracePeriod), so one
// slow write does not make a node lost.
const DefaultHeartbeat = 3 * time.Second

// DefaultResync is the default Config.Resync.
const DefaultResync = 10 * time.Second

// DefaultDrainDelay covers a proxy's watch delivering the not-ready
// instance and its endpoint update, with room to spare.
const DefaultDrainDelay = 2 * time.Second

// Agent runs one node's instances.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	desired    map[string]*api.Instance // by namespace/name; the last view from the server
	synced     bool                     // desired came from a successful list
	workers    map[string]*worker
	save       chan struct{} // the instance cache needs writing
	addr       string
	metrics    *metrics
	nsPolicies nsPolicies
	usage      []api.InstanceUsage // the latest sample (usageLoop)
	// labelsWarned: the warning that --labels differ from the Node's
	// was logged.
	labelsWarned bool
	usageAt      time.Time
	beat         chan struct{}

	wg sync.WaitGroup
}

// New returns an agent; call Run.
func New(cfg Config) *Agent {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.InternalIP == "" {
		cfg.InternalIP = DetectInternalIP()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.DrainDelay == 0 {
		cfg.DrainDelay = DefaultDrainDelay
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	a := &Agent{cfg: cfg, log: cfg.Log.With("node", cfg.NodeName), desired: map[string]*api.Instance{}, workers: map[string]*worker{}, save: make(chan struct{}, 1), beat: make(chan struct{}, 1)}
	a.metrics = newMetrics(a)
	return a
}

func (a *Agent) logDir(ns, name string) string {
	return filepath.Join(a.cfg.DataDir, "logs", ns, name)
}

func (a *Agent) cachePath() string { return filepath.Join(a.cfg.DataDir, "instances.json") }

// Run serves logs, registers the node and runs instances until ctx ends.
// Containers keep running after Run returns.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return err
	}
	l, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent log server: %w", err)
	}
	a.addr = l.Addr().String()
	if a.cfg.Advertise != "" {
		a.addr = a.cfg.Advertise
	}
	srv := &http.Server{
		Handler:           a.guard(a.logHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute, // lifted by log follows and exec sessions
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if a.cfg.TLS != nil {
		srv.TLSConfig = a.cfg.TLS
		l = tls.NewListener(l, a.cfg.TLS)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	a.loadCache()
	if err := a.adopt(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(6)
	go func() { defer wg.Done(); a.saveLoop(ctx) }()
	go func() { defer wg.Done(); a.usageLoop(ctx) }()
	if a.cfg.Traffic != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.trafficLoop(ctx) }()
	}
	if a.cfg.Routes || a.cfg.Overlay != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.routeLoop(ctx) }()
	}
	go func() { defer wg.Done(); a.rotateLoop(ctx) }()
	go func() { defer wg.Done(); a.heartbeatLoop(ctx) }()
	go func() { defer wg.Done(); a.watchLoop(ctx) }()
	go func() { defer wg.Done(); a.exitLoop(ctx) }()
	wg.Wait()
	a.wg.Wait()
	return nil
}

// adopt starts a worker for every container found in the runtime and every
// cached instance, so nothing waits for the server to be reachable.
func (a *Agent) adopt(ctx context.Context) error {
	list, err := a.cfg.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range list {
		if key := st.Labels[labelInstance]; key != "" {
			a.ensureWorker(ctx, key)
		}
	}
	for key := range a.desired {
		a.ensureWorker(ctx, key)
	}
	a.log.Info("agent started", "containers", len(list), "cached instances", len(a.desired), "logs", a.addr)
	return nil
}

// ensureWorker starts the worker of key if none runs; callers hold a.mu.
func (a *Agent) ensureWorker(ctx context.Context, key string) *worker {
	if w, ok := a.workers[key]; ok {
		return w
	}
	w := newWorker(a, key)
	a.workers[key] = w
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		w.run(ctx)
		a.mu.Lock()
		if a.workers[key] == w {
			delete(a.workers, key)
		}
		a.mu.Unlock()
	}()
	return w
}

// want returns the instance the server wants for key, and whether the
// agent knows for sure (a list has succeeded since start).
func (a *Agent) want(key string) (*api.Instance, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired[key], a.synced
}

// noteStatus records a status the worker of key wrote for in. Instances in
// desired are shared with other goroutines and never changed in place: the
// entry is replaced by a copy, and only if the server has not sent a newer
// one meanwhile.
func (a *Agent) noteStatus(key string, in *api.Instance, st api.InstanceStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.desired[key] != in {
		return
	}
	out := *in
	out.Status = st
	a.desired[key] = &out
}

func (a *Agent) setDesired(ctx context.Context, items map[string]*api.Instance, full bool) {
	a.mu.Lock()
	if full {
		for key := range a.desired {
			if _, ok := items[key]; !ok {
				delete(a.desired, key)
				if w, ok := a.workers[key]; ok {
					w.kick()
				}
			}
		}
		a.synced = true
	}
	for key, in := range items {
		if in == nil {
			delete(a.desired, key)
		} else {
			a.desired[key] = in
		}
		a.ensureWorker(ctx, key).kick()
	}
	a.mu.Unlock()
	select {
	case a.save <- struct{}{}:
	default: // a save is already due
	}
}

// saveInterval spaces the writes of the instance cache: a burst of changes
// is one write.
const saveInterval = 500 * time.Millisecond

// saveLoop writes the instance cache after changes, at most once per
// saveInterval, and once more when the agent stops.
func (a *Agent) saveLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.saveCache()
			return
		case <-a.save:
		}
		a.saveCache()
		sleep(ctx, saveInterval)
	}
}

// exitLoop wakes the worker of every container whose process exits, so a
// crash is handled in milliseconds without polling every container.
func (a *Agent) exitLoop(ctx context.Context) {
	for id := range a.cfg.Driver.Events(ctx) {
		key := keyOfContainer(id)
		a.mu.Lock()
		if w, ok := a.workers[key]; ok {
			w.kick()
		}
		a.mu.Unlock()
	}
}

// watchLoop keeps desired in step with the instances bound to this node.
// Containers keep running while the server is away.
func (a *Agent) watchLoop(ctx context.Context) {
	l := &listwatch.Loop{
		Name:   "instances of node " + a.cfg.NodeName,
		Source: a.cfg.Client.Source(instanceKind, "", client.ListOptions{Node: a.cfg.NodeName}),
		Replace: func(objs []api.Object, _ int64) {
			items := make(map[string]*api.Instance, len(objs))
			for _, o := range objs {
				in := o.(*api.Instance)
				items[keyOf(in)] = in
			}
			a.setDesired(ctx, items, true)
		},
		Update: func(events []api.WatchEvent) {
			items := make(map[string]*api.Instance, len(events))
			for _, ev := range events {
				in := ev.Object.(*api.Instance)
				key := keyOf(in)
				if ev.Type == api.WatchDeleted || in.Spec.Node != a.cfg.NodeName {
					in = nil
				}
				items[key] = in
			}
			a.setDesired(ctx, items, false)
		},
		Expired: client.Expired,
		Log:     a.log,
	}
	l.Run(ctx)
}

func keyOf(in *api.Instance) string { return in.Metadata.Namespace + "/" + in.Metadata.Name }

func (a *Agent) loadCache() {
	b, err := os.ReadFile(a.cachePath())
	if err != nil {
		return
	}
	var list []*api.Instance
	if err := json.Unmarshal(b, &list); err != nil {
		a.log.Warn("instance cache unreadable; ignoring it", "err", err)
		return
	}
	for _, in := range list {
		a.desired[keyOf(in)] = in
	}
}

func (a *Agent) saveCache() {
	a.mu.Lock()
	list := make([]*api.Instance, 0, len(a.desired))
	for _, in := range a.desired {
		list = append(list, in)
	}
	a.mu.Unlock()
	b, err := json.Marshal(list)
	if err != nil {
		return
	}
	tmp := a.cachePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		_ = os.Rename(tmp, a.cachePath())
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		if err := a.heartbeat(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.beat: // the load moved: the autoscaler should know now
		}
	}
}

func (a *Agent) capacity() api.NodeResources {
	r := api.NodeResources{MilliCPU: a.cfg.MilliCPU, MemoryBytes: a.cfg.MemoryBytes}
	if r.MilliCPU == 0 {
		r.MilliCPU = int64(goruntime.NumCPU()) * 1000
	}
	if r.MemoryBytes == 0 {
		r.MemoryBytes = memTotal()
	}
	return r
}

func (a *Agent) heartbeat(ctx context.Context) error {
	hostname, _ := os.Hostname()
	var alloc api.NodeResources
	var count int32
	a.mu.Lock()
	for _, in := range a.desired {
		if in.Status.Phase.Terminal() {
			continue
		}
		req := in.Spec.Template.Resources.Request()
		alloc.MilliCPU += req.MilliCPU
		alloc.MemoryBytes += req.MemoryBytes
		count++
	}
	a.mu.Unlock()
	used, usage, usageAt := a.usageStatus()
	var traffic []api.AppTraffic
	if a.cfg.Traffic != nil {
		traffic = a.cfg.Traffic()
	}
	status := api.NodeStatus{
		Accepts:       a.cfg.Owner.Accepts(),
		Traffic:       traffic,
		Used:          used,
		Usage:         usage,
		UsageAt:       usageAt,
		Hostname:      hostname,
		Address:       a.addr,
		Capacity:      a.capacity(),
		Reserved:      a.cfg.Reserved,
		Allocated:     alloc,
		Ready:         true,
		LastHeartbeat: time.Now().UTC(),
		InternalIP:    a.cfg.InternalIP,
		AgentVersion:  a.cfg.Version,
		Overlay:       a.overlayStatus(),
		Instances:     count,
	}
	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: a.cfg.NodeName, Labels: a.cfg.Labels},
		Spec:     api.NodeSpec{Subnet: a.cfg.Subnet},
		Status:   status,
	}
	err := a.cfg.Client.UpdateStatus(ctx, node)
	if errors.Is(err, client.ErrInvalid) && (len(status.Usage) > 0 || len(status.Traffic) > 0) {
		// The figures must not cost the node its lease: send the rest.
		a.log.Warn("the server refused the node's usage figures; heartbeat without them", "err", err)
		node.Status.Usage, node.Status.Traffic = nil, nil
		err = a.cfg.Client.UpdateStatus(ctx, node)
	}
	if errors.Is(err, client.ErrNotFound) {
		if err = a.cfg.Client.Create(ctx, node); err == nil {
			a.log.Info("node registered", "cpu", api.FormatMilliCPU(status.Capacity.MilliCPU), "memory", api.FormatBytes(status.Capacity.MemoryBytes))
			node.Status = status
			err = a.cfg.Client.UpdateStatus(ctx, node)
		}
	} else if err == nil && a.cfg.Labels != nil && !labelsEqual(node.Metadata.Labels, a.cfg.Labels) && !a.labelsWarned {
		// Labels are the cluster's to set once the node has joined (a
		// node that relabels itself could attract what is not meant
		// for it): say so once, and leave them.
		a.labelsWarned = true
		a.log.Warn("the node's labels differ from --labels; after the join a cluster-admin sets them (apply the Node with new metadata.labels)",
			"node", node.Metadata.Labels, "flags", a.cfg.Labels)
	}
	return err
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range splitLines(string(b)) {
		if n, _ := fmt.Sscanf(line, "MemTotal: %d kB", &kb); n == 1 {
			return kb * 1024
		}
	}
	return 0
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// overlayStatus is what the Node publishes of the overlay device.
func (a *Agent) overlayStatus() *api.NodeOverlay {
	if a.cfg.Overlay == nil {
		return nil
	}
	return &api.NodeOverlay{PublicKey: a.cfg.Overlay.PublicKey().String(), Endpoint: a.cfg.OverlayEndpoint}
}
