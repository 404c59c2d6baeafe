package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"github.com/shoal-dev/shoal/internal/node"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/controller"
	"github.com/shoal-dev/shoal/internal/controlplane"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/pki"
	rtcontainerd "github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/spf13/pflag"
)

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("SHOAL_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// serverOptions configure the control plane.
type serverOptions struct {
	dataDir       string
	listen        string
	etcdEndpoints []string
	etcdCA        string
	etcdCert      string
	etcdKey       string
	etcdQuota     int64
	gracePeriod   time.Duration
	serviceCIDR   string
	clusterCIDR   string
	nodeCertTTL   time.Duration
	caPassphrase  string
	auditMaxMB    int
	auditBackups  int
	name          string
	advertise     string
	join          string
	token         string
	portRange     string
	// changed says whether a flag was given (not its default).
	changed func(name string) bool
}

func (o *serverOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir, "directory for etcd data, images and the client config")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7070", "API listen address")
	fs.StringVar(&o.name, "name", "", "this server's name among the cluster's servers (default: the host name)")
	fs.StringVar(&o.advertise, "advertise-address", "", "this machine's IP address, where the other servers reach it (default 127.0.0.1: one machine)")
	fs.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "use an external etcd cluster instead of the embedded one")
	fs.StringVar(&o.etcdCA, "etcd-cafile", "", "CA of an external etcd's certificates (PEM)")
	fs.StringVar(&o.etcdCert, "etcd-certfile", "", "client certificate this server presents to an external etcd (PEM)")
	fs.StringVar(&o.etcdKey, "etcd-keyfile", "", "the key of --etcd-certfile (PEM)")
	fs.Int64Var(&o.etcdQuota, "etcd-quota-bytes", store.DefaultQuotaBackendBytes, "the embedded etcd's database may grow to this many bytes; past it the store takes only reads and deletes until space is freed (etcd advises at most 8 GiB)")
	fs.DurationVar(&o.gracePeriod, "node-grace-period", api.DefaultNodeGracePeriod, "a node silent this long is NotReady and its instances are replaced on other nodes")
	fs.StringVar(&o.serviceCIDR, "service-cidr", controller.DefaultServiceCIDR, "range Apps' stable service addresses come from")
	fs.StringVar(&o.clusterCIDR, "cluster-cidr", controller.DefaultClusterCIDR, "range nodes' container subnets (a /24 each) come from")
	fs.StringVar(&o.portRange, "port-range", api.DefaultPortRange.String(), "node ports that published ports and hostPorts may use, for the whole cluster: the first server stores it, and a server given this flag changes it for all")
	o.changed = fs.Changed
	fs.DurationVar(&o.nodeCertTTL, "node-cert-ttl", server.DefaultNodeCertTTL, "how long a node certificate lasts (agents renew at two thirds)")
	fs.IntVar(&o.auditMaxMB, "audit-log-max-size", 100, "rotate DATA_DIR/audit.log when it reaches this many MiB (0: never)")
	fs.IntVar(&o.auditBackups, "audit-log-backups", 5, "rotated audit logs to keep (audit.log.1 is the newest)")
	fs.StringVar(&o.caPassphrase, "ca-passphrase-file", "", "a file whose content seals the cluster CA's key on disk (given when the CA is made, needed at every start)")
}

// runServer runs the control plane until ctx ends; ready receives the
// running server once it serves.
func runServer(ctx context.Context, o serverOptions, log *slog.Logger, ready func(*controlplane.Server)) error {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Etcd.Endpoints = o.dataDir, o.listen, o.etcdEndpoints
	cfg.Etcd.CAFile, cfg.Etcd.CertFile, cfg.Etcd.KeyFile = o.etcdCA, o.etcdCert, o.etcdKey
	cfg.Etcd.QuotaBytes = o.etcdQuota
	cfg.Name, cfg.AdvertiseAddress = o.name, o.advertise
	cfg.Join = controlplane.JoinConfig{URL: o.join, Token: o.token}
	cfg.Nodes = controlplane.NodesConfig{LeaseTimeout: o.gracePeriod, LostAfter: o.gracePeriod}
	cfg.ServiceCIDR, cfg.ClusterCIDR, cfg.NodeCertTTL = o.serviceCIDR, o.clusterCIDR, o.nodeCertTTL
	ports, err := api.ParsePortRange(o.portRange)
	if err != nil {
		return fmt.Errorf("--port-range: %w", err)
	}
	cfg.PortRange, cfg.PortRangeSet = ports, o.changed != nil && o.changed("port-range")
	if o.auditMaxMB < 0 || o.auditBackups < 1 {
		return fmt.Errorf("--audit-log-max-size %d, --audit-log-backups %d: want a size of 0 or more and at least one backup", o.auditMaxMB, o.auditBackups)
	}
	cfg.AuditMaxBytes, cfg.AuditBackups = int64(o.auditMaxMB)<<20, o.auditBackups
	if o.caPassphrase != "" {
		b, err := os.ReadFile(o.caPassphrase)
		if err != nil {
			return fmt.Errorf("--ca-passphrase-file: %w", err)
		}
		if cfg.CAPassphrase = bytes.TrimRight(b, "\r\n"); len(cfg.CAPassphrase) == 0 {
			return fmt.Errorf("--ca-passphrase-file %s is empty", o.caPassphrase)
		}
	}
	cfg.Log, cfg.Version = log, version
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(srv)
	}
	return srv.Wait()
}

// agentOptions configure a node agent.
type agentOptions struct {
	server            string
	token             string
	dataDir           string
	name              string
	labels            map[string]string
	containerdAddress string
	runtimeNamespace  string
	bridge            string
	subnet            string
	listen            string
	cpu               string
	memory            string
	reserve           map[string]string
	insecure          []string
	nodeIP            string
	network           string
	overlayPort       int
	overlayEndpoint   string
	clusterCIDR       string
	runtime           string
	requireSignedBy   []string
	allowNamespaces   []string
	allowRegistries   []string
	allowHostNS       bool
	allowHostPaths    []string
	allowPrivileged   bool
	allowCaps         []string
	portRange         string
	// forget, when set, removes a stale Node of this name so the node can
	// join again: `shoal up`, whose server and node are one machine.
	forget func(ctx context.Context, name string) error
}

func (o *agentOptions) flags(fs *pflag.FlagSet, standalone bool) {
	host, _ := os.Hostname()
	if standalone {
		fs.StringVar(&o.server, "server", "", "API server URL (https://HOST:PORT)")
		fs.StringVar(&o.token, "token", "", "join token from `shoal token create` (needed the first time only)")
		fs.StringVar(&o.dataDir, "data-dir", filepath.Join(defaultDataDir, "agent"), "directory for the agent's state and logs")
		// shoal up takes the server's --cluster-cidr.
		fs.StringVar(&o.clusterCIDR, "cluster-cidr", controller.DefaultClusterCIDR, "the servers' --cluster-cidr: other nodes' subnets outside it are ignored, and with --network wireguard it is routed into the overlay as a whole so that nothing for a container leaves in the clear; empty: no range is checked, only the known nodes' subnets are routed")
		// shoal up takes the server's --port-range.
		fs.StringVar(&o.portRange, "port-range", api.DefaultPortRange.String(), "node ports this node opens for published ports and hostPorts (the cluster's range, or a narrower one); whatever the servers say, no other port is opened")
	}
	fs.StringVar(&o.name, "node-name", strings.ToLower(host), "this node's name")
	fs.StringToStringVar(&o.labels, "labels", nil, "node labels, e.g. zone=a,disk=ssd")
	fs.StringVar(&o.containerdAddress, "containerd-address", rtcontainerd.DefaultAddress, "containerd socket")
	fs.StringVar(&o.runtimeNamespace, "runtime-namespace", rtcontainerd.DefaultNamespace, "containerd namespace for this agent's containers")
	fs.StringVar(&o.bridge, "bridge", rtcontainerd.DefaultBridge, "Linux bridge for container networking")
	fs.StringVar(&o.subnet, "subnet", "", "container address range on this node (default: one the server assigns from its --cluster-cidr)")
	fs.StringVar(&o.listen, "agent-listen", "127.0.0.1:0", "where the agent serves logs to the server")
	fs.StringVar(&o.cpu, "cpu", "", "CPU to offer (default: all cores)")
	fs.StringVar(&o.memory, "memory", "", "memory to offer (default: all memory)")
	fs.StringToStringVar(&o.reserve, "reserve", nil, "what the machine keeps for itself, offered to no instance: cpu=500m,memory=512Mi")
	fs.StringSliceVar(&o.insecure, "insecure-registry", nil, "registry hosts (host:port) to pull from over plain HTTP")
	fs.StringVar(&o.nodeIP, "node-ip", "", "address other nodes reach this node's containers through (default: the default route's source address)")
	fs.StringVar(&o.network, "network", agent.NetworkWireGuard, "how containers reach other nodes' containers: wireguard (an encrypted overlay), host-gw (routes through the nodes' IPs, in the clear: one trusted link) or none")
	fs.IntVar(&o.overlayPort, "overlay-port", overlay.DefaultPort, "UDP port of the WireGuard overlay (0: any free one)")
	fs.StringVar(&o.overlayEndpoint, "overlay-endpoint", "", "IP:PORT where other nodes reach this node's overlay port (default: --node-ip and --overlay-port; behind NAT, the router's forwarded port, or none: this node dials the others)")
	fs.StringVar(&o.runtime, "runtime", "containerd", "containerd, or fake: a hollow node whose containers exist only in memory (scale tests)")
	fs.StringSliceVar(&o.requireSignedBy, "require-signed-by", nil, "run only Apps signed by one of these keys (ed25519:… or a .pub file from `shoal key create`), whatever the servers say")
	fs.StringSliceVar(&o.allowNamespaces, "allow-namespaces", nil, "run only instances of these namespaces")
	fs.StringSliceVar(&o.allowRegistries, "allow-registries", nil, "pull only from these registries (e.g. shoal.local,docker.io)")
	fs.BoolVar(&o.allowHostNS, "allow-host-namespaces", false, "let instances share this machine's PID and IPC namespaces (hostPID, hostIPC)")
	fs.StringSliceVar(&o.allowHostPaths, "allow-host-paths", nil, "let instances mount these paths of this machine, and what is below them (volumes; / for any)")
	fs.BoolVar(&o.allowPrivileged, "allow-privileged", false, "let instances run privileged (securityContext.privileged: every capability, the host's devices, no seccomp filter)")
	fs.StringSliceVar(&o.allowCaps, "allow-capabilities", nil, "let instances add these capabilities beyond the default set (e.g. NET_ADMIN,SYS_TIME; ALL for any)")
}

// ownerPolicy reads the node owner's flags; keys may be given inline or as
// .pub files.
func (o *agentOptions) ownerPolicy() (agent.OwnerPolicy, error) {
	p := agent.OwnerPolicy{AllowNamespaces: o.allowNamespaces, AllowRegistries: o.allowRegistries, AllowHostNamespaces: o.allowHostNS, AllowPrivileged: o.allowPrivileged}
	for _, c := range o.allowCaps {
		name, ok := api.CapabilityName(c)
		if !ok {
			return p, fmt.Errorf("--allow-capabilities %s: not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN; ALL for any)", c)
		}
		p.AllowCapabilities = append(p.AllowCapabilities, name)
	}
	var err error
	if p.PortRange, err = api.ParsePortRange(cmp.Or(o.portRange, api.DefaultPortRange.String())); err != nil {
		return p, fmt.Errorf("--port-range: %w", err)
	}
	for _, hp := range o.allowHostPaths {
		if !strings.HasPrefix(hp, "/") || filepath.Clean(hp) != hp {
			return p, fmt.Errorf("--allow-host-paths %s: want a clean absolute path", hp)
		}
		p.AllowHostPaths = append(p.AllowHostPaths, hp)
	}
	for _, k := range o.requireSignedBy {
		if !strings.HasPrefix(k, "ed25519:") {
			b, err := os.ReadFile(k)
			if err != nil {
				return p, fmt.Errorf("--require-signed-by %s: neither ed25519:… nor a readable file: %w", k, err)
			}
			k = strings.TrimSpace(string(b))
		}
		if _, err := pki.ParseVerifyKey(k); err != nil {
			return p, fmt.Errorf("--require-signed-by: %w", err)
		}
		p.RequireSignedBy = append(p.RequireSignedBy, k)
	}
	return p, nil
}

// runAgent runs a node agent against the server at serverURL until ctx ends.
// token is asked for only when the node has not joined yet.
func runAgent(ctx context.Context, o agentOptions, serverURL string, token func() (string, error), log *slog.Logger) error {
	c, err := o.config(serverURL, token, log)
	if err != nil {
		return err
	}
	return node.Run(ctx, c)
}

// config turns the agent's flags into the node's Config.
func (o *agentOptions) config(serverURL string, token func() (string, error), log *slog.Logger) (node.Config, error) {
	owner, err := o.ownerPolicy()
	if err != nil {
		return node.Config{}, err
	}
	c := node.Config{
		Server: serverURL, Token: token, DataDir: o.dataDir, Name: o.name, Labels: o.labels, Runtime: o.runtime,
		ContainerdAddress: o.containerdAddress, RuntimeNamespace: o.runtimeNamespace, Bridge: o.bridge,
		Subnet: o.subnet, Listen: o.listen, InsecureRegistries: o.insecure, NodeIP: o.nodeIP,
		Network: o.network, OverlayPort: o.overlayPort, OverlayEndpoint: o.overlayEndpoint,
		ClusterCIDR: o.clusterCIDR, Owner: owner, Forget: o.forget, Version: version, Log: log,
	}
	if o.cpu != "" {
		if c.MilliCPU, err = parseCPUFlag(o.cpu); err != nil {
			return c, err
		}
	}
	if o.memory != "" {
		if c.MemoryBytes, err = parseMemoryFlag(o.memory); err != nil {
			return c, err
		}
	}
	if c.Reserved, err = parseReserve(o.reserve); err != nil {
		return c, err
	}
	return c, nil
}

// parseReserve reads --reserve cpu=…,memory=….
func parseReserve(m map[string]string) (api.NodeResources, error) {
	var r api.NodeResources
	for k, v := range m {
		var err error
		switch k {
		case "cpu":
			r.MilliCPU, err = api.ParseCPU(v)
		case "memory":
			r.MemoryBytes, err = api.ParseMemory(v)
		default:
			return r, fmt.Errorf("--reserve %s=%s: reserve cpu or memory", k, v)
		}
		if err != nil {
			return r, fmt.Errorf("--reserve %s=%s: %w", k, v, err)
		}
	}
	return r, nil
}
