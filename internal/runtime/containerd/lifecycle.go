package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Start runs a new process in the container: the previous run's task (if
// any, and exited) is deleted and its log moved to LogPath+".previous".
// Starting a running container returns its status.
func (d *Driver) Start(ctx context.Context, id string) (runtime.Status, error) {
	ctx = d.ctx(ctx)
	defer d.locks.lock(id)()

	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return runtime.Status{}, d.wrap(id, err)
	}
	if t, err := c.Task(ctx, nil); err == nil {
		st, err := t.Status(ctx)
		if err != nil && !isNotFound(err) {
			return runtime.Status{}, fmt.Errorf("container %q: task status: %w", id, err)
		}
		switch st.Status {
		case containerd.Running, containerd.Paused, containerd.Pausing:
			return d.inspect(ctx, id)
		}
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !isNotFound(err) {
			return runtime.Status{}, fmt.Errorf("container %q: delete previous task: %w", id, err)
		}
	} else if !isNotFound(err) {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}

	labels, err := c.Labels(ctx)
	if err != nil {
		return runtime.Status{}, d.wrap(id, err)
	}
	if _, err := os.Stat(d.net.netnsPath(id)); errors.Is(err, os.ErrNotExist) {
		if err := d.reattach(ctx, c, labels); err != nil {
			return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
		}
	}
	logPath := labels[labelLogPath]
	if logPath == "" {
		logPath = d.defaultLogPath(id)
	}
	if err := rotatePrevious(logPath); err != nil {
		return runtime.Status{}, fmt.Errorf("container %q: %w", id, err)
	}

	task, err := c.NewTask(ctx, d.logIO(logPath))
	if err == nil {
		err = task.Start(ctx)
		if err == nil {
			err = d.cpuLimit(ctx, task, labels)
		}
		if err != nil {
			_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		}
	}
	if err != nil {
		reason := startFailure(err)
		_, _ = c.SetLabels(ctx, map[string]string{labelReason: reason, labelStartedAt: ""})
		st, ierr := d.inspect(ctx, id)
		if ierr != nil {
			st = runtime.Status{ID: id, State: runtime.StateCreated}
		}
		st.Reason = reason
		return st, fmt.Errorf("container %q: start: %s", id, reason)
	}
	// The start time is ours to keep: containerd's task status has none.
	_, _ = c.SetLabels(ctx, map[string]string{
		labelStartedAt: time.Now().UTC().Format(time.RFC3339Nano),
		labelReason:    "",
	})
	return d.inspect(ctx, id)
}

// reattach gives a container whose network namespace is gone (the node
// rebooted: /run is a tmpfs) a new one, with the same port mappings and,
// usually, a new IP.
func (d *Driver) reattach(ctx context.Context, c containerd.Container, labels map[string]string) error {
	id := c.ID()
	ports := parsePorts(labels[labelPorts])
	// Release what the old attachment still holds (IP, cached result).
	if err := d.net.teardown(ctx, id, ports); err != nil {
		return err
	}
	if err := d.ports.hold(id, ports); err != nil {
		return err
	}
	ip, err := d.net.setup(ctx, id, ports)
	if err != nil {
		return err
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return err
	}
	if _, err := d.writeHosts(id, spec.Hostname, ip); err != nil {
		return err
	}
	if _, err := c.SetLabels(ctx, map[string]string{labelIP: ip}); err != nil {
		return err
	}
	d.cfg.Logger.Info("re-created missing network namespace", "container", id, "ip", ip)
	return nil
}

// logIO sends the task's stdout and stderr to logPath: the shim appends to
// the file, and the agent rotates it by size.
func (d *Driver) logIO(logPath string) cio.Creator { return cio.LogFile(logPath) }

// rotatePrevious moves the last run's log out of the way for a new run.
func rotatePrevious(logPath string) error {
	if _, err := os.Stat(logPath); err != nil {
		return nil
	}
	if err := os.Rename(logPath, logPath+".previous"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return nil
}

var (
	// runc wraps the real cause in layers of context.
	runcCause  = regexp.MustCompile(`(?:unable to start container process|starting container process caused): (.*)$`)
	grpcSuffix = regexp.MustCompile(`: unknown$`)
)

// startFailure extracts what went wrong from a failed task create or start,
// e.g. `exec: "nope": executable file not found in $PATH`.
func startFailure(err error) string {
	msg := err.Error()
	if m := runcCause.FindStringSubmatch(msg); m != nil {
		msg = m[1]
	}
	msg = grpcSuffix.ReplaceAllString(msg, "")
	return strings.TrimSpace(msg)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and returns once the
// process has exited. Stopping a stopped or missing container succeeds.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = d.ctx(ctx)
	defer d.locks.lock(id)()

	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return d.wrap(id, err)
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("container %q: %w", id, err)
	}
	st, err := t.Status(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("container %q: %w", id, err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}

	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := t.Wait(waitCtx)
	if err != nil {
		return fmt.Errorf("container %q: wait: %w", id, err)
	}
	if err := t.Kill(ctx, syscall.SIGTERM); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("container %q: SIGTERM: %w", id, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	if err := t.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !isNotFound(err) {
		return fmt.Errorf("container %q: SIGKILL: %w", id, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove deletes everything Create made and releases the host ports. A
// missing container succeeds, and leftovers of a half-done Create (netns,
// IP, iptables rules) are cleaned.
func (d *Driver) Remove(ctx context.Context, id string) error {
	ctx = d.ctx(ctx)
	defer d.locks.lock(id)()
	if err := d.cleanup(ctx, id); err != nil {
		// The container or its DNAT rules may still be there: keep the
		// ports until a Remove succeeds.
		return err
	}
	d.ports.release(id)
	return nil
}

// cleanup is Remove without the lock, and without releasing the host ports.
func (d *Driver) cleanup(ctx context.Context, id string) error {
	var (
		errs  []error
		ports []runtime.PortMapping
	)
	c, err := d.client.LoadContainer(ctx, id)
	switch {
	case err == nil:
		if labels, err := c.Labels(ctx); err == nil {
			ports = parsePorts(labels[labelPorts])
		}
		if t, err := c.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !isNotFound(err) {
				return fmt.Errorf("container %q: delete task: %w", id, err)
			}
		} else if !isNotFound(err) {
			return fmt.Errorf("container %q: %w", id, err)
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !isNotFound(err) {
			return fmt.Errorf("container %q: delete: %w", id, err)
		}
	case isNotFound(err):
		// A snapshot prepared by a Create that died before the container
		// record was written.
		if err := d.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("container %q: snapshot: %w", id, err))
		}
	default:
		return fmt.Errorf("container %q: %w", id, err)
	}
	if err := d.net.teardown(ctx, id, ports); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(d.containerDir(id)); err != nil {
		errs = append(errs, err)
	}
	if err := d.removeSecrets(id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d *Driver) wrap(id string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("container %q in namespace %q: %w", id, d.cfg.Namespace, runtime.ErrNotFound)
	}
	return fmt.Errorf("container %q: %w", id, err)
}

// cpuLimit gives a started run its CPU limit. The limit is not in the
// container's spec on purpose: runc sets the container up from inside the
// container's own cgroup (its init process compiles the seccomp profile,
// among other things), and under a small quota that takes seconds — at 10m,
// a start took ~2 s instead of ~0.1 s. So the run starts unthrottled and
// gets its quota right after; a run that cannot get it is not left running.
// New applies it again to running containers, in case the agent died in
// between.
func (d *Driver) cpuLimit(ctx context.Context, task containerd.Task, labels map[string]string) error {
	v := labels[labelCPUQuota]
	if v == "" {
		return nil
	}
	quota, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("cpu quota label %q: %w", v, err)
	}
	period := uint64(cfsPeriod)
	if err := task.Update(ctx, containerd.WithResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}})); err != nil {
		return fmt.Errorf("apply the CPU limit: %w", err)
	}
	return nil
}
