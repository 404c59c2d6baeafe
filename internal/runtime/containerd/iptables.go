package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// masqRule matches the bridge plugin's masquerade jump in
// `iptables -t nat -S POSTROUTING` output.
var masqRule = regexp.MustCompile(`^-A POSTROUTING -s (\S+) -m comment --comment "((?:[^"\\]|\\.)*)" -j (CNI-\S+)$`)

// sweepMasquerade deletes the bridge plugin's masquerade rules for cniID.
// CNI DEL cannot when the network namespace is already gone (the plugin
// learns the address from the interface in it); left alone, the rule and
// its chain would outlive the container.
//
// Only attachments made before ensureMasquerade existed ("ipMasq": true,
// still in libcni's cache of their ADD) have such rules; see
// perContainerMasq. Once no container of an older version is left, this
// never runs.
func sweepMasquerade(ctx context.Context, cniID string) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return nil // no iptables: the bridge plugin made no rules either
	}
	out, err := exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return fmt.Errorf("list NAT rules: %w", err)
	}
	tag := fmt.Sprintf(`id: \"%s\"`, cniID)
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		m := masqRule.FindStringSubmatch(line)
		if m == nil || !strings.Contains(m[2], tag) {
			continue
		}
		comment := strings.ReplaceAll(m[2], `\"`, `"`)
		chain := m[3]
		if err := exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-D", "POSTROUTING",
			"-s", m[1], "-m", "comment", "--comment", comment, "-j", chain).Run(); err != nil {
			errs = append(errs, fmt.Errorf("delete NAT rule for %s: %w", m[1], err))
			continue
		}
		// The chain goes once nothing jumps to it; a failure here means
		// another rule still does, and its own DEL will remove it.
		_ = exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-F", chain).Run()
		_ = exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-X", chain).Run()
	}
	return errors.Join(errs...)
}

// ensureMasquerade installs, once per node network, the rule that gives
// containers outbound access: traffic from the subnet to anywhere else
// leaves with the node's address.
func ensureMasquerade(ctx context.Context, subnet, bridge string) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return fmt.Errorf("iptables not found: install it (make deps): %w", err)
	}
	rule := []string{"POSTROUTING", "-s", subnet, "!", "-d", subnet,
		"-m", "comment", "--comment", "shoal " + bridge, "-j", "MASQUERADE"}
	check := append([]string{"-w", "-t", "nat", "-C"}, rule...)
	if exec.CommandContext(ctx, ipt, check...).Run() == nil {
		return nil
	}
	add := append([]string{"-w", "-t", "nat", "-A"}, rule...)
	if out, err := exec.CommandContext(ctx, ipt, add...).CombinedOutput(); err != nil {
		return fmt.Errorf("add masquerade rule for %s: %v: %s", subnet, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// perContainerMasq reports whether list has the bridge plugin masquerade
// each container itself, as the conflist of older versions did.
func perContainerMasq(list *libcni.NetworkConfigList) bool {
	for _, p := range list.Plugins {
		if p.Network == nil || p.Network.Type != "bridge" {
			continue
		}
		var conf struct {
			IPMasq bool `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &conf) == nil && conf.IPMasq {
			return true
		}
	}
	return false
}

// ensureBridge creates the node's container bridge with its gateway
// address (the subnet's first address) if it is missing, so that services
// of the node (DNS, the service proxy) can listen there before the first
// container exists. The CNI bridge plugin adopts it as it is.
func ensureBridge(ctx context.Context, bridge, subnet string) error {
	gw, err := GatewayIP(subnet)
	if err != nil {
		return err
	}
	bits := subnet[strings.IndexByte(subnet, '/'):]
	if exec.CommandContext(ctx, "ip", "link", "show", "dev", bridge).Run() != nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "add", "name", bridge, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("create bridge %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
		}
	}
	out, _ := exec.CommandContext(ctx, "ip", "-4", "-o", "addr", "show", "dev", bridge).Output()
	// An address from another subnet (the node's subnet changed) would
	// make the CNI bridge plugin refuse every container: drop it.
	for _, f := range strings.Fields(string(out)) {
		if strings.Count(f, ".") == 3 && strings.Contains(f, "/") && f != gw+bits {
			if o, err := exec.CommandContext(ctx, "ip", "addr", "del", f, "dev", bridge).CombinedOutput(); err != nil {
				return fmt.Errorf("remove stale address %s from bridge %s: %v: %s", f, bridge, err, strings.TrimSpace(string(o)))
			}
		}
	}
	if !strings.Contains(string(out), " "+gw+bits) {
		if out, err := exec.CommandContext(ctx, "ip", "addr", "add", gw+bits, "dev", bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "File exists") {
			return fmt.Errorf("address bridge %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
		}
	}
	// No IPv6 on the bridge: the egress rules are IPv4's, and a link-local
	// IPv6 address would let containers reach the host's services past
	// them. (Containers still talk to each other on the bridge.)
	if err := disableIPv6(bridge); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "ip", "link", "set", bridge, "up").CombinedOutput(); err != nil {
		return fmt.Errorf("bring bridge %s up: %v: %s", bridge, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// disableIPv6 turns IPv6 off on dev, where the kernel has IPv6 at all.
func disableIPv6(dev string) error {
	f := filepath.Join("/proc/sys/net/ipv6/conf", dev, "disable_ipv6")
	if _, err := os.Stat(f); err != nil {
		return nil // no IPv6 in this kernel
	}
	if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("turn IPv6 off on bridge %s: %w", dev, err)
	}
	return nil
}

// GatewayIP is the bridge's own address in subnet: its first host address,
// which is also what host-local IPAM hands out as the gateway.
func GatewayIP(subnet string) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", fmt.Errorf("subnet %q: %w", subnet, err)
	}
	return p.Masked().Addr().Next().String(), nil
}
