package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controller"
	"github.com/shoal-dev/shoal/internal/netproxy"
	"github.com/shoal-dev/shoal/internal/registry"
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
	leaseTimeout  time.Duration
	lostAfter     time.Duration
	serviceCIDR   string
	clusterCIDR   string
}

func (o *serverOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir, "directory for etcd data, images and the client config")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7070", "API listen address")
	fs.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "use an external etcd cluster instead of the embedded one")
	fs.DurationVar(&o.leaseTimeout, "node-lease-timeout", 15*time.Second, "mark a node not ready after this long without a heartbeat")
	fs.DurationVar(&o.lostAfter, "node-lost-after", 60*time.Second, "replace a node's instances elsewhere after this long without a heartbeat")
	fs.StringVar(&o.serviceCIDR, "service-cidr", controller.DefaultServiceCIDR, "range Apps' stable service addresses come from")
	fs.StringVar(&o.clusterCIDR, "cluster-cidr", controller.DefaultClusterCIDR, "range nodes' container subnets (a /24 each) come from")
}

// runServer runs the control plane until ctx ends; ready receives the API
// URL once it serves.
func runServer(ctx context.Context, o serverOptions, log *slog.Logger, ready func(url string)) error {
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	var st *store.Store
	if len(o.etcdEndpoints) > 0 {
		cli, err := store.Connect(o.etcdEndpoints)
		if err != nil {
			return fmt.Errorf("connect to etcd %v: %w", o.etcdEndpoints, err)
		}
		defer cli.Close()
		st = store.New(cli)
	} else {
		e, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: filepath.Join(dataDir, "etcd"), Log: log})
		if err != nil {
			return err
		}
		defer e.Close()
		st = store.New(e.Client)
	}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = server.EnsureDefaultNamespace(ictx, st)
	cancel()
	if err != nil {
		return fmt.Errorf("create the default namespace: %w", err)
	}
	reg, err := registry.New(filepath.Join(dataDir, "images"), log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	url := "http://" + l.Addr().String()
	if err := writeClientConfig(filepath.Join(dataDir, "admin.conf"), ClientConfig{Server: url}); err != nil {
		return fmt.Errorf("write admin.conf: %w", err)
	}
	srv := server.New(server.Config{Store: st, Images: reg, Log: log, Version: version})
	host, _ := os.Hostname()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = controller.Run(ctx, controller.Config{Store: st, Log: log, Identity: host + ":" + dataDir, LeaseTimeout: o.leaseTimeout, LostAfter: o.lostAfter, ServiceCIDR: o.serviceCIDR, ClusterCIDR: o.clusterCIDR})
	}()
	log.Info("shoal server listening", "url", url, "data", dataDir, "config", filepath.Join(dataDir, "admin.conf"))
	if ready != nil {
		ready(url)
	}
	err = server.Serve(ctx, l, srv.Handler(), log)
	wg.Wait()
	return err
}

// agentOptions configure a node agent.
type agentOptions struct {
	server            string
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
	insecure          []string
	nodeIP            string
	routes            bool
}

func (o *agentOptions) flags(fs *pflag.FlagSet, standalone bool) {
	host, _ := os.Hostname()
	if standalone {
		fs.StringVar(&o.server, "server", "", "API server URL")
		fs.StringVar(&o.dataDir, "data-dir", filepath.Join(defaultDataDir, "agent"), "directory for the agent's state and logs")
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
	fs.StringSliceVar(&o.insecure, "insecure-registry", nil, "registry hosts (host:port) to pull from over plain HTTP")
	fs.StringVar(&o.nodeIP, "node-ip", "", "address other nodes reach this node's containers through (default: the default route's source address)")
	fs.BoolVar(&o.routes, "routes", true, "route other nodes' container subnets through their node IPs (nodes on one link)")
}

// runAgent runs a node agent against the server at serverURL until ctx ends.
func runAgent(ctx context.Context, o agentOptions, serverURL string, log *slog.Logger) error {
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	apiClient := client.New(serverURL)
	if o.subnet == "" {
		if o.subnet, err = agent.Subnet(ctx, apiClient, o.name, o.labels, dataDir); err != nil {
			return err
		}
		log.Info("container subnet from the server", "subnet", o.subnet)
	}
	regHost := strings.TrimPrefix(strings.TrimPrefix(serverURL, "http://"), "https://")
	registries := map[string]string{"shoal.local": "http://" + regHost}
	for _, h := range o.insecure {
		registries[h] = "http://" + h
	}
	drv, err := rtcontainerd.New(ctx, rtcontainerd.Config{
		Address:    o.containerdAddress,
		Namespace:  o.runtimeNamespace,
		StateDir:   filepath.Join(dataDir, "runtime"),
		Network:    rtcontainerd.NetworkConfig{Bridge: o.bridge, Subnet: o.subnet},
		Registries: registries,
		// No logger process per container: the shim appends to the log
		// file and the agent rotates it (a shoal logger costs ~28 MB RSS
		// per container).
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	gw, err := rtcontainerd.GatewayIP(o.subnet)
	if err != nil {
		return err
	}
	proxy, err := netproxy.New(netproxy.Config{Client: apiClient, Log: log, BridgeIP: gw, Bridge: o.bridge})
	if err != nil {
		return err
	}
	cfg := agent.Config{
		DNSServers: []string{gw},
		Subnet:     o.subnet,
		InternalIP: o.nodeIP,
		Routes:     o.routes,
		NodeName:   o.name,
		Labels:     o.labels,
		Client:     apiClient,
		Driver:     drv,
		DataDir:    dataDir,
		Listen:     o.listen,
		Log:        log,
		Version:    version,
	}
	if o.cpu != "" {
		if cfg.MilliCPU, err = parseCPUFlag(o.cpu); err != nil {
			return err
		}
	}
	if o.memory != "" {
		if cfg.MemoryBytes, err = parseMemoryFlag(o.memory); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- proxy.Run(ctx) }()
	err = agent.New(cfg).Run(ctx)
	cancel()
	if perr := <-proxyDone; err == nil && perr != nil && !errors.Is(perr, context.Canceled) {
		err = fmt.Errorf("service proxy: %w", perr)
	}
	return err
}

// lockDataDir makes sure one server at a time uses a data directory: two
// would fight over the same etcd data.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "shoal.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another shoal server is using %s (see %s); stop it first or pick another --data-dir", dir, path)
	}
	return func() { f.Close() }, nil
}
