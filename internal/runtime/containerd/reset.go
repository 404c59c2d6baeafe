package containerd

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/hostnet"
	"github.com/shoal-dev/shoal/internal/iptables"
)

// Reset removes from this host everything a driver with cfg made: every
// container of its namespace with its task, snapshot, network namespace,
// IP and port rules; the namespace's images, content and the namespace
// itself; the bridge, its masquerade rule and its egress rules; the state
// directory. It is
// `shoal node reset`'s part for the runtime, like `kubeadm reset`, and safe
// to run again. cfg.Network.Subnet may be empty.
//
// When containerd does not answer, the host side (netns files, bridge,
// rule, state) is still cleaned, and the error says what was left.
func Reset(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	nw, err := newNetwork(cfg)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	var errs []error
	if err := resetContainerd(ctx, cfg, nw); err != nil {
		errs = append(errs, err)
	}
	// Namespaces of containers whose record was already gone.
	prefix := nw.cniID("")
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			id := strings.TrimPrefix(e.Name(), prefix)
			if err := nw.teardown(ctx, id, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := removeMasquerade(ctx, cfg.Network.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := (hostnet.Tables{}).Reset(ctx, cfg.Network.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := removeIdleHostportChains(ctx); err != nil {
		errs = append(errs, err)
	}
	if exec.CommandContext(ctx, "ip", "link", "show", "dev", cfg.Network.Bridge).Run() == nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "del", "dev", cfg.Network.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %v: %s", cfg.Network.Bridge, err, strings.TrimSpace(string(out))))
		}
	}
	if cfg.StateDir != "" {
		if err := unmountSecrets(cfg.StateDir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(cfg.StateDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resetContainerd empties the driver's containerd namespace and deletes it.
func resetContainerd(ctx context.Context, cfg Config, nw *network) error {
	if _, err := os.Stat(cfg.Address); err != nil {
		return fmt.Errorf("containerd at %s: %w: its namespace %q was not reset", cfg.Address, err, cfg.Namespace)
	}
	client, err := containerd.New(cfg.Address, containerd.WithDefaultNamespace(cfg.Namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("containerd at %s: %w: its namespace %q was not reset", cfg.Address, err, cfg.Namespace)
	}
	defer client.Close()
	ctx = namespaces.WithNamespace(ctx, cfg.Namespace)
	known, err := client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", cfg.Address, err)
	}
	found := false
	for _, ns := range known {
		found = found || ns == cfg.Namespace
	}
	if !found {
		return nil
	}
	d := &Driver{cfg: cfg, client: client, net: nw}
	containers, err := client.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range containers {
		if err := d.cleanup(ctx, c.ID()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	is := client.ImageService()
	imgs, err := is.List(ctx)
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	for _, img := range imgs {
		if err := is.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete image %s: %w", img.Name, err))
		}
	}
	ls := client.LeasesService()
	if all, err := ls.List(ctx); err == nil {
		for _, l := range all {
			_ = ls.Delete(ctx, l, leases.SynchronousDelete)
		}
	}
	// What no image or lease holds any more: snapshots, leaves first
	// (a parent cannot go before its children), then content.
	sn := client.SnapshotService(snapshotter)
	for range 64 {
		var leaves []string
		parents := map[string]bool{}
		_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			leaves = append(leaves, info.Name)
			if info.Parent != "" {
				parents[info.Parent] = true
			}
			return nil
		})
		if len(leaves) == 0 {
			break
		}
		for _, name := range leaves {
			if !parents[name] {
				if err := sn.Remove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("remove snapshot %s: %w", name, err))
				}
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	cs := client.ContentStore()
	var blobs []string
	_ = cs.Walk(ctx, func(info content.Info) error { blobs = append(blobs, info.Digest.String()); return nil })
	for _, b := range blobs {
		if err := cs.Delete(ctx, digest.Digest(b)); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete blob %s: %w", b, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := client.NamespaceService().Delete(ctx, cfg.Namespace); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete containerd namespace %q: %w", cfg.Namespace, err)
	}
	return nil
}

// removeMasquerade deletes the rules ensureMasquerade made for bridge.
func removeMasquerade(ctx context.Context, bridge string) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return nil // no iptables: no rules
	}
	out, err := exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return fmt.Errorf("list NAT rules: %w", err)
	}
	mark := fmt.Sprintf(`--comment "shoal %s" -j MASQUERADE`, bridge)
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasSuffix(line, mark) || !strings.HasPrefix(line, "-A POSTROUTING ") {
			continue
		}
		args := append([]string{"-w", "-t", "nat", "-D"}, iptables.SplitRule(strings.TrimPrefix(line, "-A "))...)
		if out, err := exec.CommandContext(ctx, ipt, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("delete masquerade rule of %s: %v: %s", bridge, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// The portmap plugin's shared chains, which it creates on first use and
// never deletes, and the rules that jump to them.
var hostportChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}

// removeIdleHostportChains deletes the portmap plugin's shared chains once
// no container on the host maps a port through them (no CNI-DN-* chain
// left), so a reset host has none of CNI's rules either.
func removeIdleHostportChains(ctx context.Context) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return nil
	}
	defer lockHostports(unix.LOCK_EX)()
	out, err := exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-S").Output()
	if err != nil {
		return fmt.Errorf("list NAT rules: %w", err)
	}
	var jumps []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-N CNI-DN-") {
			return nil // another container still maps a port
		}
		for _, c := range hostportChains {
			if strings.HasPrefix(line, "-A ") && strings.HasSuffix(line, "-j "+c) {
				jumps = append(jumps, line)
			}
		}
	}
	for _, j := range jumps {
		args := append([]string{"-w", "-t", "nat", "-D"}, iptables.SplitRule(strings.TrimPrefix(j, "-A "))...)
		if out, err := exec.CommandContext(ctx, ipt, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("delete rule %q: %v: %s", j, err, strings.TrimSpace(string(out)))
		}
	}
	for _, c := range hostportChains {
		if exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-S", c).Run() != nil {
			continue // not there
		}
		_ = exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-F", c).Run()
		if out, err := exec.CommandContext(ctx, ipt, "-w", "-t", "nat", "-X", c).CombinedOutput(); err != nil {
			if strings.Contains(string(out), "Device or resource busy") {
				return nil // a container that started meanwhile maps a port through it
			}
			return fmt.Errorf("delete chain %s: %v: %s", c, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
