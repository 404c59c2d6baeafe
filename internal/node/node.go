// Package node assembles one machine of the cluster from its parts, in
// order: its identity (join, or the credentials it has), the container
// runtime, the host network, the overlay to other nodes, the service
// proxy, and the agent that supervises instances. cmd/shoal turns flags
// into a Config; everything a node does when it starts is here.
package node

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/netproxy"
	"github.com/shoal-dev/shoal/internal/overlay"
	rtcontainerd "github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/runtime/fake"
)

// Runtimes a node runs its containers with.
const (
	RuntimeContainerd = "containerd"
	// RuntimeHollow keeps containers in memory only: a hollow node, for
	// scale tests, registers and heartbeats like a real one.
	RuntimeHollow = "fake"
)

// Config is one node, as its flags say.
type Config struct {
	// Server is the API server's URL; Token is asked for only when the
	// node has not joined yet.
	Server string
	Token  func() (string, error)
	// DataDir keeps the node's credentials, state and logs.
	DataDir string
	Name    string
	Labels  map[string]string
	Runtime string // RuntimeContainerd (default) or RuntimeHollow

	ContainerdAddress string
	RuntimeNamespace  string
	Bridge            string
	// Subnet is the node's container range; empty: the server assigns one.
	Subnet string
	// Listen is where the agent serves logs, exec and metrics.
	Listen string
	// MilliCPU and MemoryBytes are what the node offers (0: the machine's
	// all); Reserved is what it keeps for itself.
	MilliCPU, MemoryBytes int64
	Reserved              api.NodeResources
	// InsecureRegistries are hosts pulled from over plain HTTP.
	InsecureRegistries []string
	// NodeIP is where other nodes reach this node (empty: detected).
	NodeIP string
	// Network is agent.NetworkWireGuard, NetworkHostGW or NetworkNone.
	Network         string
	OverlayPort     int
	OverlayEndpoint string // IP:PORT, "none", or empty (NodeIP:port)
	// ClusterCIDR is the servers' range ("": none checked).
	ClusterCIDR string
	Owner       agent.OwnerPolicy
	// Forget, when set, removes a stale Node of this name so the node can
	// join again: `shoal up`, whose server and node are one machine.
	Forget  func(ctx context.Context, name string) error
	Version string
	Log     *slog.Logger
}

// Run runs the node until ctx ends.
func Run(ctx context.Context, c Config) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	if c.Runtime == "" {
		c.Runtime = RuntimeContainerd
	}
	if c.Runtime != RuntimeContainerd && c.Runtime != RuntimeHollow {
		return fmt.Errorf("--runtime %q: use containerd or fake", c.Runtime)
	}
	id, err := joinedIdentity(ctx, c, filepath.Join(dataDir, "pki"))
	if err != nil {
		return err
	}
	go id.RotateLoop(ctx, c.Server, log)
	apiClient := client.NewTLS(c.Server, id.ClientTLS())
	go agent.FollowServers(ctx, apiClient, dataDir, log)
	if c.Runtime == RuntimeHollow {
		return runHollow(ctx, c, apiClient, id, dataDir, log)
	}
	declared := c.Subnet
	if c.Subnet, err = agent.Subnet(ctx, apiClient, c.Name, c.Labels, dataDir, declared); err != nil {
		return err
	}
	if declared == "" {
		log.Info("container subnet from the server", "subnet", c.Subnet)
	}
	regHost := strings.TrimPrefix(strings.TrimPrefix(c.Server, "http://"), "https://")
	registries := map[string]string{"shoal.local": "https://" + regHost}
	for _, h := range c.InsecureRegistries {
		registries[h] = "http://" + h
	}
	// What containers reach: other containers, not the host beyond DNS
	// and published ports, not private ranges outside the cluster.
	ports := c.Owner.PortRange
	network := rtcontainerd.NetworkConfig{Bridge: c.Bridge, Subnet: c.Subnet, ClusterCIDR: c.ClusterCIDR,
		NodePorts: hostnet.PortRange{First: uint16(ports.Min), Last: uint16(ports.Max)}}
	drv, err := rtcontainerd.New(ctx, rtcontainerd.Config{
		Address:    c.ContainerdAddress,
		Namespace:  c.RuntimeNamespace,
		StateDir:   filepath.Join(dataDir, "runtime"),
		Network:    network,
		Registries: registries,
		// The cluster's own registry is the server: the node's certificate
		// pulls from it.
		RegistryTLS: map[string]*tls.Config{"shoal.local": id.ClientTLS()},
		// Any server of the cluster serves every image.
		RegistryMirrors: func(host string) []string {
			if host != "shoal.local" {
				return nil
			}
			return apiClient.Servers()
		},
		// No logger process per container: the shim appends to the log
		// file and the agent rotates it (a shoal logger costs ~28 MB RSS
		// per container).
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	gw, err := rtcontainerd.GatewayIP(c.Subnet)
	if err != nil {
		return err
	}
	if c.NodeIP == "" {
		c.NodeIP = agent.DetectInternalIP()
	}
	ov, endpoint, err := openOverlay(c, dataDir, gw, id, log)
	if err != nil {
		return err
	}
	if ov != nil {
		defer ov.Close()
	}
	clusterCIDR, _ := netip.ParsePrefix(c.ClusterCIDR) // checked below, before anything runs
	proxy, err := netproxy.New(netproxy.Config{Client: apiClient, Log: log, BridgeIP: gw, Bridge: c.Bridge, NodeName: c.Name, PortRange: ports, ClusterCIDR: clusterCIDR})
	if err != nil {
		return err
	}
	cfg := agent.Config{
		Traffic:     proxy.Traffic,
		DNSServers:  []string{gw},
		Subnet:      c.Subnet,
		InternalIP:  c.NodeIP,
		Routes:      c.Network == agent.NetworkHostGW,
		NodeName:    c.Name,
		Labels:      c.Labels,
		Client:      apiClient,
		Driver:      drv,
		DataDir:     dataDir,
		Listen:      c.Listen,
		TLS:         id.ServerTLS(),
		Owner:       c.Owner,
		Log:         log,
		Version:     c.Version,
		MilliCPU:    c.MilliCPU,
		MemoryBytes: c.MemoryBytes,
		Reserved:    c.Reserved,
	}
	if ov != nil {
		cfg.Overlay, cfg.OverlayEndpoint = ov, endpoint
	}
	if c.ClusterCIDR != "" {
		if cfg.ClusterCIDR, err = netip.ParsePrefix(c.ClusterCIDR); err != nil {
			return fmt.Errorf("--cluster-cidr %q: %w", c.ClusterCIDR, err)
		}
		// Other nodes' subnets outside it are ignored: a range that is
		// not the servers' would cut this node off from every other.
		if sn, err := netip.ParsePrefix(c.Subnet); err == nil && (sn.Bits() < cfg.ClusterCIDR.Bits() || !cfg.ClusterCIDR.Contains(sn.Addr())) {
			return fmt.Errorf("this node's subnet %s is outside --cluster-cidr %s: give the agent the servers' --cluster-cidr", sn, cfg.ClusterCIDR)
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

// openOverlay opens the node's WireGuard device when the network is
// wireguard, and says where other nodes reach it. Its key is kept in the
// node's pki directory and replaced whenever the node's certificate is.
func openOverlay(c Config, dataDir, gw string, id *agent.Identity, log *slog.Logger) (*overlay.Device, string, error) {
	switch c.Network {
	case agent.NetworkWireGuard:
	case agent.NetworkHostGW, agent.NetworkNone:
		return nil, "", nil
	default:
		return nil, "", fmt.Errorf("--network %q: use wireguard, host-gw or none", c.Network)
	}
	if c.OverlayEndpoint != "" && c.OverlayEndpoint != "none" {
		if _, err := netip.ParseAddrPort(c.OverlayEndpoint); err != nil {
			return nil, "", fmt.Errorf("--overlay-endpoint %q: want IP:PORT or none", c.OverlayEndpoint)
		}
	}
	keyFile := filepath.Join(dataDir, "pki", "wireguard.key")
	key, err := overlay.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("overlay key: %w", err)
	}
	dev, err := overlay.Open(overlay.Config{Name: OverlayDevice(c.Bridge), Port: c.OverlayPort, PrivateKey: key, Address: netip.MustParseAddr(gw), Log: log})
	if err != nil {
		return nil, "", fmt.Errorf("%w (or run with --network host-gw on one trusted link)", err)
	}
	id.OnRenew(func() {
		k, err := overlay.NewKey()
		if err == nil {
			err = overlay.SaveKey(keyFile, k)
		}
		if err == nil {
			err = dev.SetPrivateKey(k)
		}
		if err != nil {
			log.Warn("overlay key rotation", "err", err)
			return
		}
		log.Info("overlay key rotated with the node's certificate", "publicKey", k.Public())
	})
	endpoint := c.OverlayEndpoint
	switch {
	case endpoint == "none":
		endpoint = ""
	case endpoint == "" && c.NodeIP != "":
		endpoint = net.JoinHostPort(c.NodeIP, strconv.Itoa(dev.Port()))
	}
	log.Info("overlay up", "device", dev.Name(), "port", dev.Port(), "endpoint", endpoint, "publicKey", dev.PublicKey())
	return dev, endpoint, nil
}

// OverlayDevice names the node's WireGuard device after its bridge, so
// that agents sharing a machine (tests) do not share one.
func OverlayDevice(bridge string) string {
	if n := "wg-" + bridge; len(n) <= 15 {
		return n
	}
	h := sha256.Sum256([]byte(bridge))
	return "wg-" + hex.EncodeToString(h[:6])
}

// joinedIdentity returns the node's credentials, joining the cluster with
// a token first when the node has none.
func joinedIdentity(ctx context.Context, c Config, dir string) (*agent.Identity, error) {
	tok := ""
	if _, err := os.Stat(filepath.Join(dir, "node.crt")); errors.Is(err, os.ErrNotExist) && c.Token != nil {
		var err error
		if tok, err = c.Token(); err != nil {
			return nil, err
		}
	}
	req := api.JoinRequest{Token: tok, Node: c.Name, Labels: c.Labels, Subnet: c.Subnet, Accepts: c.Owner.Accepts()}
	id, err := agent.LoadOrJoin(ctx, c.Server, req, dir)
	if errors.Is(err, agent.ErrAlreadyJoined) && c.Forget != nil {
		// This machine's own node from an earlier `shoal up` whose agent
		// state was reset: the server is ours, so the old Node goes.
		if err := c.Forget(ctx, c.Name); err != nil {
			return nil, err
		}
		id, err = agent.LoadOrJoin(ctx, c.Server, req, dir)
	}
	return id, err
}

// runHollow runs a node whose runtime is in memory: it registers,
// heartbeats, and reports its instances Running like a real node, with no
// container, network or proxy, so one machine can stand in for many.
func runHollow(ctx context.Context, c Config, cl *client.Client, id *agent.Identity, dataDir string, log *slog.Logger) error {
	return agent.New(agent.Config{
		NodeName: c.Name, Labels: c.Labels, Client: cl, Driver: fake.NewHollow(), DataDir: dataDir,
		Listen: c.Listen, TLS: id.ServerTLS(), Log: log, Version: c.Version, DrainDelay: -1,
		MilliCPU: c.MilliCPU, MemoryBytes: c.MemoryBytes, Reserved: c.Reserved,
	}).Run(ctx)
}

// ResetConfig names what a node's agent ran with, for Reset.
type ResetConfig struct {
	DataDir           string
	ContainerdAddress string
	RuntimeNamespace  string
	Bridge            string
	// Routes also removes the routes to other nodes' subnets.
	Routes bool
}

// Reset undoes what a node made on this host, as kubeadm reset does: every
// container of its containerd namespace (tasks, snapshots, network
// namespaces, IPs, port rules), the namespace's images and the namespace,
// the bridge and its rules, the service proxy's chains, the overlay's
// masquerade rule, the routes agents install, and the data directory. Run
// it after the agent has stopped; it is safe to run again.
func Reset(ctx context.Context, c ResetConfig) error {
	var errs []error
	errs = append(errs, rtcontainerd.Reset(ctx, rtcontainerd.Config{
		Address:   c.ContainerdAddress,
		Namespace: c.RuntimeNamespace,
		StateDir:  filepath.Join(c.DataDir, "runtime"),
		Network:   rtcontainerd.NetworkConfig{Bridge: c.Bridge},
	}))
	errs = append(errs, netproxy.Reset(ctx, c.Bridge, ""))
	// The overlay device goes with its agent's process; its masquerade
	// rule stays if the agent was killed.
	errs = append(errs, overlay.Reset(OverlayDevice(c.Bridge)))
	if c.Routes {
		errs = append(errs, agent.ResetRoutes(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node reset left something behind: %w", err)
	}
	return os.RemoveAll(c.DataDir)
}
