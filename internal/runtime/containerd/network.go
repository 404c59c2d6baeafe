package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// network attaches containers to the node's bridge through CNI. Every name
// it uses (netns file, CNI container id) is derived from the container id,
// so teardown works without any record of the setup.
type network struct {
	namespace string
	stateDir  string
	cni       *libcni.CNIConfig
	list      *libcni.NetworkConfigList // bridge + portmap
	noPorts   *libcni.NetworkConfigList // bridge alone, for containers without host ports
	loopback  *libcni.PluginConfig      // only to tear down containers of older versions
}

const (
	netnsDir = "/run/netns"
	ifName   = "eth0"
)

// newNetwork reads the CNI configuration; it changes nothing on the host.
func newNetwork(cfg Config) (*network, error) {
	n := &network{namespace: cfg.Namespace, stateDir: cfg.StateDir}
	// An explicit exec: libcni would otherwise create one lazily on first
	// use, a data race when several containers start at once.
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	n.cni = libcni.NewCNIConfigWithCacheDir(cfg.Network.PluginDirs, filepath.Join(cfg.StateDir, "cni", "cache"), exec)
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := invoke.FindInPath(p, cfg.Network.PluginDirs); err != nil {
			return nil, fmt.Errorf("CNI plugin %q not found in %s", p, strings.Join(cfg.Network.PluginDirs, ", "))
		}
	}
	list, err := libcni.ConfListFromBytes(bridgeConfList(cfg))
	if err != nil {
		return nil, fmt.Errorf("CNI config: %w", err)
	}
	n.list = list
	// Same name as list: libcni's cache then records which plugins a
	// container was added with, and DEL uses exactly those.
	n.noPorts = &libcni.NetworkConfigList{Name: list.Name, CNIVersion: list.CNIVersion, Plugins: list.Plugins[:1], Bytes: list.Bytes}
	lo, err := libcni.ConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"shoal-loopback","type":"loopback"}`))
	if err != nil {
		return nil, fmt.Errorf("CNI loopback config: %w", err)
	}
	n.loopback = lo
	return n, nil
}

// ensureHost makes the node's side of the network: the IPAM directory, the
// bridge with the subnet's gateway address, the masquerade rule, and the
// egress rules (what containers may reach). Reset undoes it.
func (n *network) ensureHost(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(n.ipamDir(), 0o700); err != nil {
		return err
	}
	if err := ensureBridge(ctx, cfg.Network.Bridge, cfg.Network.Subnet); err != nil {
		return err
	}
	if err := ensureMasquerade(ctx, cfg.Network.Subnet, cfg.Network.Bridge); err != nil {
		return err
	}
	ec := hostnet.EgressConfig{Bridge: cfg.Network.Bridge, NodePorts: cfg.Network.NodePorts}
	ec.Subnet, _ = netip.ParsePrefix(cfg.Network.Subnet) // checked by setDefaults
	if cfg.Network.ClusterCIDR != "" {
		ec.Cluster, _ = netip.ParsePrefix(cfg.Network.ClusterCIDR)
	}
	plan, err := hostnet.EgressPlan(ec)
	if err != nil {
		return err
	}
	return hostnet.Tables{}.Apply(ctx, plan)
}

// bridgeConfList is the conflist for the node's bridge: a gateway bridge
// (ensureMasquerade masquerades its outbound traffic), host-local IPAM kept
// under StateDir, and portmap with SNAT so that 127.0.0.1:hostPort reaches
// the container.
func bridgeConfList(cfg Config) []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       networkName(cfg.Network.Bridge),
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    cfg.Network.Bridge,
				"isGateway": true,
				// One masquerade rule for the whole subnet (ensureMasquerade)
				// instead of a chain per container: per-container iptables
				// calls serialize on the xtables lock and dominate start-up.
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": cfg.Network.Subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(cfg.StateDir, "cni", "ipam"),
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
		},
	}
	b, err := json.Marshal(conf)
	if err != nil {
		panic(err) // static shape: cannot fail
	}
	return b
}

func networkName(bridge string) string { return "shoal-" + bridge }

// cniID is the id CNI plugins see: unique per driver namespace, so two
// drivers on one machine never share iptables chains.
func (n *network) cniID(id string) string { return sanitize(n.namespace + "-" + id) }

func (n *network) netnsPath(id string) string { return filepath.Join(netnsDir, n.cniID(id)) }

// ipamDir is where host-local keeps this network's allocations.
func (n *network) ipamDir() string {
	return filepath.Join(n.stateDir, "cni", "ipam", n.list.Name)
}

// setup creates the container's network namespace and attaches it. It
// returns the container's IPv4 address. On error nothing is left behind.
func (n *network) setup(ctx context.Context, id string, ports []runtime.PortMapping) (ip string, err error) {
	path := n.netnsPath(id)
	if err := createNetNS(path); err != nil {
		return "", fmt.Errorf("network namespace for %q: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = n.teardown(context.WithoutCancel(ctx), id, ports)
		}
	}()
	rt := n.runtimeConf(id, path, ports)
	// The loopback interface is brought up by createNetNS, and the portmap
	// plugin is only run for containers with host ports: every plugin is a
	// process to start, and they dominate container start-up.
	list := n.noPorts
	if rt.CapabilityArgs != nil {
		list = n.list
		defer lockHostports(unix.LOCK_SH)()
	}
	res, err := n.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return "", fmt.Errorf("CNI add for %q: %w", id, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("CNI result for %q: %w", id, err)
	}
	for _, c := range r.IPs {
		if c.Address.IP.To4() != nil {
			return c.Address.IP.String(), nil
		}
	}
	return "", fmt.Errorf("CNI gave %q no IPv4 address", id)
}

// teardown detaches the container and deletes its network namespace. It is
// safe to call for a container that was never (or only partly) set up.
// ports is a fallback for when libcni's cache of the ADD is missing: the
// portmap plugin deletes nothing unless told which ports it mapped.
func (n *network) teardown(ctx context.Context, id string, ports []runtime.PortMapping) error {
	path := n.netnsPath(id)
	nsArg := path
	if _, err := os.Stat(path); err != nil {
		// Plugins release the IP and iptables rules without a netns.
		nsArg = ""
	}
	var errs []error
	list, rt := n.list, n.runtimeConf(id, nsArg, ports)
	// Delete with what ADD used (config and port mappings), if cached.
	if b, cached, err := n.cni.GetNetworkListCachedConfig(n.list, rt); err == nil && cached != nil {
		if l, err := libcni.ConfListFromBytes(b); err == nil {
			list = l
		}
		if cached.CapabilityArgs != nil {
			rt.CapabilityArgs = cached.CapabilityArgs
		}
	}
	if err := n.cni.DelNetworkList(ctx, list, rt); err != nil {
		errs = append(errs, fmt.Errorf("CNI del for %q: %w", id, err))
	}
	if nsArg == "" && perContainerMasq(list) {
		if err := sweepMasquerade(ctx, rt.ContainerID); err != nil {
			errs = append(errs, fmt.Errorf("CNI del for %q: %w", id, err))
		}
	}
	// Containers made by older versions ran the loopback plugin too.
	loRT := &libcni.RuntimeConf{ContainerID: rt.ContainerID, NetNS: nsArg, IfName: "lo"}
	if cached, err := n.cni.GetNetworkCachedResult(n.loopback, loRT); err == nil && cached != nil {
		if err := n.cni.DelNetwork(ctx, n.loopback, loRT); err != nil {
			errs = append(errs, fmt.Errorf("CNI loopback del for %q: %w", id, err))
		}
	}
	// Remove the namespace only after CNI DEL: the bridge plugin deletes
	// the veth in it, and for attachments with per-container masquerading
	// reads the address from it to delete the rule.
	if len(errs) == 0 {
		if err := removeNetNS(path); err != nil {
			errs = append(errs, fmt.Errorf("network namespace for %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (n *network) runtimeConf(id, netns string, ports []runtime.PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: n.cniID(id),
		NetNS:       netns,
		IfName:      ifName,
	}
	var pm []map[string]any
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		pm = append(pm, map[string]any{
			"hostPort":      p.HostPort,
			"containerPort": p.ContainerPort,
			"protocol":      protocol(p),
		})
	}
	if len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

func protocol(p runtime.PortMapping) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(p.Protocol)
}

// formatPorts and parsePorts store published ports in a container label,
// so a later Create can see which host ports this driver already uses and
// a new Driver which ones to hold.
func formatPorts(ports []runtime.PortMapping) string {
	var parts []string
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, protocol(p)))
	}
	return strings.Join(parts, ",")
}

func parsePorts(s string) []runtime.PortMapping {
	var out []runtime.PortMapping
	for _, part := range strings.Split(s, ",") {
		var p runtime.PortMapping
		if _, err := fmt.Sscanf(strings.Replace(part, "/", " ", 1), "%d:%d %s", &p.HostPort, &p.ContainerPort, &p.Protocol); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseHostPorts(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		host, rest, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		_, proto, _ := strings.Cut(rest, "/")
		out = append(out, host+"/"+proto)
	}
	return out
}

// sanitize maps an id to the characters CNI and file names accept.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 0 && (b[0] == '-' || b[0] == '.' || b[0] == '_') {
		b[0] = 'x'
	}
	return string(b)
}
