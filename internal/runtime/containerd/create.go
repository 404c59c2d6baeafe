package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// Labels the driver keeps on each container for itself; List and Inspect
// strip them from the labels they return.
const (
	labelPrefix    = "io.shoal.runtime."
	labelIP        = labelPrefix + "ip"
	labelLogPath   = labelPrefix + "log-path"
	labelPorts     = labelPrefix + "ports"
	labelStartedAt = labelPrefix + "started-at"
	labelReason    = labelPrefix + "reason"
	// labelCPUQuota is the CFS quota (µs per cfsPeriod) Start applies to
	// each run once its process runs; see cpuLimit.
	labelCPUQuota = labelPrefix + "cpu-quota"
)

const cfsPeriod = 100_000 // µs

// Create makes the container with its network namespace, IP and port
// mappings. The process starts with Start.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) (st runtime.Status, err error) {
	ctx = d.ctx(ctx)
	id := spec.ID
	if err := identifiers.Validate(id); err != nil {
		return runtime.Status{}, fmt.Errorf("container id: %w", err)
	}
	defer d.locks.lock(id)()

	if _, err := d.client.ContainerService().Get(ctx, id); err == nil {
		return runtime.Status{}, fmt.Errorf("container %q in namespace %q: %w", id, d.cfg.Namespace, runtime.ErrAlreadyExists)
	} else if !isNotFound(err) {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}

	ref, err := normalizeRef(spec.Image)
	if err != nil {
		return runtime.Status{}, err
	}
	img, err := d.image(ctx, ref)
	if err != nil {
		return runtime.Status{}, err
	}
	if err := d.holdPorts(ctx, id, spec.Ports); err != nil {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}
	defer func() {
		if err != nil {
			d.ports.release(id)
		}
	}()
	logPath := spec.LogPath
	if logPath == "" {
		logPath = d.defaultLogPath(id)
	}
	if logPath, err = filepath.Abs(logPath); err != nil {
		return runtime.Status{}, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return runtime.Status{}, fmt.Errorf("log dir: %w", err)
	}

	// Leftovers of a Create that crashed half-way: the container record
	// is missing, so nothing else can be in use. The netns is made first,
	// so without it there is at most a snapshot.
	if _, err := os.Stat(d.net.netnsPath(id)); err == nil {
		if err := d.cleanup(ctx, id); err != nil {
			return runtime.Status{}, err
		}
	} else if err := d.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !isNotFound(err) {
		return runtime.Status{}, fmt.Errorf("container %q: stale snapshot: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = d.cleanup(context.WithoutCancel(ctx), id)
		}
	}()

	ip, err := d.net.setup(ctx, id, spec.Ports)
	if err != nil {
		return runtime.Status{}, err
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = defaultHostname(id)
	}
	hostsFile, err := d.writeHosts(id, hostname, ip)
	if err != nil {
		return runtime.Status{}, err
	}
	resolvFile, err := d.writeResolvConf(id, spec.DNSServers, spec.DNSSearch)
	if err != nil {
		return runtime.Status{}, err
	}

	labels := map[string]string{}
	for k, v := range spec.Labels {
		if !strings.HasPrefix(k, labelPrefix) {
			labels[k] = v
		}
	}
	labels[labelIP] = ip
	labels[labelLogPath] = logPath
	if p := formatPorts(spec.Ports); p != "" {
		labels[labelPorts] = p
	}
	if q := cfsQuota(spec.MilliCPU); q > 0 {
		labels[labelCPUQuota] = strconv.FormatInt(q, 10)
	}

	specOpts, err := d.specOpts(ctx, img, spec, hostname, hostsFile, resolvFile)
	if err != nil {
		return runtime.Status{}, err
	}
	c, err := d.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}
	return d.status(info, nil), nil
}

// specOpts builds the OCI spec: the image's config, then the Spec's
// overrides, limits and hardening.
func (d *Driver) specOpts(ctx context.Context, img containerd.Image, spec runtime.Spec, hostname, hostsFile, resolvFile string) ([]oci.SpecOpts, error) {
	ic, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name(), err)
	}
	opts := []oci.SpecOpts{oci.WithImageConfig(img)}

	// Command replaces the entrypoint and drops the image's cmd, Args
	// replaces the cmd (Kubernetes semantics).
	if len(spec.Command) > 0 || len(spec.Args) > 0 {
		var args []string
		if len(spec.Command) > 0 {
			args = append(append(args, spec.Command...), spec.Args...)
		} else {
			args = append(append(args, ic.Config.Entrypoint...), spec.Args...)
		}
		opts = append(opts, oci.WithProcessArgs(args...))
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	opts = append(opts,
		oci.WithHostname(hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: d.net.netnsPath(spec.ID)}),
		oci.WithMounts([]specs.Mount{
			{Destination: "/etc/hosts", Type: "bind", Source: hostsFile, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: resolvFile, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
		}),
	)
	if spec.HostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if spec.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if len(spec.Mounts) > 0 {
		mounts, err := hostMounts(spec.Mounts)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithMounts(mounts))
	}
	if len(spec.Secrets) > 0 {
		m, err := d.writeSecrets(spec.ID, spec.Secrets, spec.Security)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithMounts([]specs.Mount{m}))
	}
	opts = append(opts, securityOpts(spec.Security)...)
	// No CPU quota here: see cpuLimit.
	if spec.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryBytes)))
		if d.swapAccounting() {
			// memory+swap = memory: the limit is not escaped by swapping.
			opts = append(opts, oci.WithMemorySwap(spec.MemoryBytes))
		}
	}
	pids := spec.PidsLimit
	if pids <= 0 {
		pids = DefaultPidsLimit
	}
	opts = append(opts, oci.WithPidsLimit(pids))
	return opts, nil
}

// hostMounts are the OCI bind mounts of paths of the node. Each must
// exist (runc would otherwise create it as root on the host) and be a
// resolved path, as the agent checked it: one that leads elsewhere
// through a symbolic link now was changed since. A read-only mount is
// read-only with everything mounted below it ("rro": runc >= 1.1 on
// Linux >= 5.12; plain "ro" leaves submounts writable).
func hostMounts(ms []runtime.Mount) ([]specs.Mount, error) {
	out := make([]specs.Mount, 0, len(ms))
	for _, m := range ms {
		real, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return nil, fmt.Errorf("volume %s: the path does not exist on this node: %w", m.Source, err)
		}
		if real != m.Source {
			return nil, fmt.Errorf("volume %s: the path leads to %s through a symbolic link (changed since the agent checked it?); only resolved paths are mounted", m.Source, real)
		}
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro", "rro")
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return out, nil
}

// securityOpts are the container's user and privileges. containerd's
// default spec already masks /proc and /sys paths and mounts cgroups
// read-only; these set the capabilities, then the seccomp profile (which
// allows syscalls by capability, so it comes after them).
func securityOpts(sec runtime.Security) []oci.SpecOpts {
	var opts []oci.SpecOpts
	switch {
	case sec.UID != nil && sec.GID != nil:
		opts = append(opts, oci.WithUIDGID(*sec.UID, *sec.GID))
	case sec.UID != nil:
		opts = append(opts, oci.WithUserID(*sec.UID))
	case sec.GID != nil:
		opts = append(opts, withGID(*sec.GID))
	}
	if sec.ReadOnlyRoot {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sec.Privileged {
		return append(opts, oci.WithPrivileged, oci.WithNewPrivileges, oci.WithHostDevices, oci.WithAllDevicesAllowed)
	}
	caps := sec.Capabilities
	if caps == nil {
		caps = api.DefaultCapabilities
	}
	return append(opts,
		oci.WithCapabilities(caps),
		oci.WithAmbientCapabilities(nil),
		oci.WithNoNewPrivileges,
		seccomp.WithDefaultProfile(),
	)
}

// withGID sets the process's group and keeps the image's user.
func withGID(gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process != nil {
			s.Process.User.GID = gid
		}
		return nil
	}
}

// writeHosts writes the container's /etc/hosts: localhost and its own name.
func (d *Driver) writeHosts(id, hostname, ip string) (string, error) {
	dir := d.containerDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "hosts")
	content := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", ip, hostname)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// writeResolvConf writes the container's /etc/resolv.conf: the given
// servers and search domains, or, without servers, the node's own file.
func (d *Driver) writeResolvConf(id string, servers, search []string) (string, error) {
	if len(servers) == 0 {
		return "/etc/resolv.conf", nil
	}
	dir := d.containerDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	b.WriteString("options ndots:3\n")
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return p, nil
}

func (d *Driver) swapAccounting() bool {
	if d.cgroupV2 {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// defaultHostname makes a valid host name (letters, digits, inner
// hyphens, at most 63 bytes) from id.
func defaultHostname(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	h := strings.Trim(string(b), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return "container"
	}
	return h
}

// cfsQuota is the CFS quota of a CPU limit in millicores (0: none).
func cfsQuota(milliCPU int64) int64 {
	if milliCPU <= 0 {
		return 0
	}
	return max(milliCPU*cfsPeriod/1000, 1000) // the kernel's minimum quota is 1 ms
}
