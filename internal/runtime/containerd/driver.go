package containerd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// Defaults for Config fields left empty.
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "shoal"
	DefaultStateDir  = "/var/lib/shoal/runtime"
	DefaultBridge    = "shoal0"
	DefaultSubnet    = "10.213.0.0/24"
	DefaultPidsLimit = 1024

	snapshotter = "overlayfs"
)

// DefaultPluginDirs are where Debian and upstream install CNI plugins.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Config says where containerd is and how this driver's containers are
// named, networked and logged. Several drivers can share one containerd and
// one machine when Namespace, StateDir, Bridge and Subnet all differ.
type Config struct {
	// Address is containerd's gRPC socket.
	Address string
	// Namespace is the containerd namespace holding this driver's images
	// and containers.
	Namespace string
	// StateDir holds the driver's bookkeeping on the node: CNI IPAM and
	// cache, per-container files, default log files.
	StateDir string
	Network  NetworkConfig
	// Registries maps a registry host to a base URL that serves it, e.g.
	// "shoal.local" -> "http://127.0.0.1:7070". Other hosts use HTTPS.
	Registries map[string]string
	// RegistryTLS is the TLS config (client certificate, trusted CA) to
	// reach a registry host with.
	RegistryTLS map[string]*tls.Config
	// RegistryMirrors, when set and it returns base URLs for a host of
	// Registries, are tried in order instead of its one base URL: the
	// cluster's servers, the one the agent uses first.
	RegistryMirrors func(host string) []string
	// Logger gets what the driver has to say outside of returned errors
	// (default slog.Default()).
	Logger *slog.Logger
}

// NetworkConfig is the node-local container network.
type NetworkConfig struct {
	Bridge     string // Linux bridge name, at most 15 bytes
	Subnet     string // IPv4 CIDR the containers' addresses come from
	PluginDirs []string
	// ClusterCIDR holds every node's container subnet (the servers'
	// --cluster-cidr): containers reach it past the node. Empty: among
	// the private ranges, only Subnet (see hostnet.EgressPlan).
	ClusterCIDR string
	// NodePorts is the node owner's publish range: the TCP ports of the
	// node itself that its containers reach (published ports the service
	// proxy answers). Zero: none.
	NodePorts hostnet.PortRange
}

func (c *Config) setDefaults() error {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Network.Bridge == "" {
		c.Network.Bridge = DefaultBridge
	}
	if c.Network.Subnet == "" {
		c.Network.Subnet = DefaultSubnet
	}
	if len(c.Network.PluginDirs) == 0 {
		c.Network.PluginDirs = DefaultPluginDirs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := identifiers.Validate(c.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	c.StateDir = dir
	if n := len(c.Network.Bridge); n > 15 {
		return fmt.Errorf("bridge name %q is %d bytes, Linux allows 15", c.Network.Bridge, n)
	}
	p, err := netip.ParsePrefix(c.Network.Subnet)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("subnet %q: want an IPv4 CIDR like 10.213.0.0/24", c.Network.Subnet)
	}
	if p.Bits() > 30 {
		return fmt.Errorf("subnet %q is too small for containers", c.Network.Subnet)
	}
	if c.Network.ClusterCIDR != "" {
		if cl, err := netip.ParsePrefix(c.Network.ClusterCIDR); err != nil || !cl.Addr().Is4() {
			return fmt.Errorf("cluster range %q: want an IPv4 CIDR like 10.244.0.0/16", c.Network.ClusterCIDR)
		}
	}
	return nil
}

// Driver implements runtime.Driver with containerd. Safe for concurrent use:
// calls for one container id are serialized, calls for different ids run in
// parallel.
type Driver struct {
	cfg      Config
	client   *containerd.Client
	net      *network
	cgroupV2 bool
	locks    keyedMutex
	ports    portHolds
	images   imageCache
}

var _ runtime.Driver = (*Driver)(nil)

// New connects to containerd and prepares the driver's state directory and
// network configuration. Of existing containers it only takes the host
// ports (see portHolds).
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	if _, err := os.Stat(cfg.Address); err != nil {
		return nil, fmt.Errorf("cannot reach containerd at %s: %w", cfg.Address, err)
	}
	client, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("cannot reach containerd at %s: %w", cfg.Address, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("cannot reach containerd at %s: %w", cfg.Address, err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	nw, err := newNetwork(cfg)
	if err == nil {
		err = nw.ensureHost(ctx, cfg)
	}
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	d := &Driver{
		cfg:      cfg,
		client:   client,
		net:      nw,
		cgroupV2: isCgroupV2(),
	}
	if err := d.adoptExisting(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	return d, nil
}

// Close releases the host ports and closes the connection to containerd.
// Containers keep running; the next Driver takes their ports again.
func (d *Driver) Close() error {
	d.ports.releaseAll()
	return d.client.Close()
}

// Client is the underlying containerd client, for tests and diagnostics.
func (d *Driver) Client() *containerd.Client { return d.client }

// Namespace is the containerd namespace this driver works in.
func (d *Driver) Namespace() string { return d.cfg.Namespace }

// NetNSPath is where the network namespace of container id is mounted.
func (d *Driver) NetNSPath(id string) string { return d.net.netnsPath(id) }

// IPAMDir is the host-local data directory holding this driver's IPs.
func (d *Driver) IPAMDir() string { return d.net.ipamDir() }

// CNIContainerID is the container id given to CNI plugins for id; it names
// the iptables chains and the IP allocation.
func (d *Driver) CNIContainerID(id string) string { return d.net.cniID(id) }

func (d *Driver) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.cfg.Namespace)
}

func (d *Driver) containerDir(id string) string {
	return filepath.Join(d.cfg.StateDir, "containers", id)
}

func (d *Driver) defaultLogPath(id string) string {
	return filepath.Join(d.cfg.StateDir, "logs", id+".log")
}

func isNotFound(err error) bool { return errdefs.IsNotFound(err) }

func isCgroupV2() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// keyedMutex serializes work on one key while letting different keys run
// concurrently.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
