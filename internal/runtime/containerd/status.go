package containerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Inspect returns the container's current status.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	return d.inspect(d.ctx(ctx), id)
}

func (d *Driver) inspect(ctx context.Context, id string) (runtime.Status, error) {
	info, err := d.client.ContainerService().Get(ctx, id)
	if err != nil {
		return runtime.Status{}, d.wrap(id, err)
	}
	var proc *tasktypes.Process
	resp, err := d.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	err = errgrpc.ToNative(err)
	switch {
	case err == nil:
		proc = resp.Process
	case isNotFound(err):
	default:
		return runtime.Status{}, fmt.Errorf("container %q: task: %w", id, err)
	}
	return d.status(info, proc), nil
}

// List returns every container in the driver's namespace, with two calls to
// containerd whatever the number of containers.
func (d *Driver) List(ctx context.Context) ([]runtime.Status, error) {
	ctx = d.ctx(ctx)
	cs, err := d.client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	resp, err := d.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		err = errgrpc.ToNative(err)
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	procs := map[string]*tasktypes.Process{}
	for _, p := range resp.Tasks {
		// containerd 1.6 leaves ContainerID empty here; the task's ID is
		// its container's.
		id := p.ContainerID
		if id == "" {
			id = p.ID
		}
		procs[id] = p
	}
	out := make([]runtime.Status, 0, len(cs))
	for _, c := range cs {
		out = append(out, d.status(c, procs[c.ID]))
	}
	return out, nil
}

// status merges the container record and its task (nil: no task).
func (d *Driver) status(c containers.Container, p *tasktypes.Process) runtime.Status {
	st := runtime.Status{
		ID:     c.ID,
		Image:  c.Image,
		Labels: map[string]string{},
		State:  runtime.StateCreated,
		IP:     c.Labels[labelIP],
		Reason: c.Labels[labelReason],
	}
	for k, v := range c.Labels {
		if !strings.HasPrefix(k, labelPrefix) {
			st.Labels[k] = v
		}
	}
	if p == nil {
		return st
	}
	if t, err := time.Parse(time.RFC3339Nano, c.Labels[labelStartedAt]); err == nil {
		st.StartedAt = t
	}
	st.Pid = p.Pid
	switch p.Status {
	case tasktypes.Status_CREATED:
		st.State = runtime.StateCreated
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		st.State = runtime.StateRunning
	case tasktypes.Status_STOPPED:
		st.State = runtime.StateExited
		st.ExitCode = int32(p.ExitStatus)
		if p.ExitedAt != nil {
			st.ExitedAt = p.ExitedAt.AsTime()
		}
		st.OOMKilled = d.oomKilled(c)
	default:
		st.State = runtime.StateUnknown
	}
	return st
}

// oomKilled reports whether the kernel OOM killer killed a process in the
// container's memory cgroup. The cgroup lives until the task is deleted,
// i.e. until the next Start or Remove.
func (d *Driver) oomKilled(c containers.Container) bool {
	if c.Spec == nil {
		return false
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec.GetValue(), &spec); err != nil || spec.Linux == nil {
		return false
	}
	return oomKills(d.cgroupV2, spec.Linux.CgroupsPath) > 0
}

// oomKills reads the oom_kill counter of a cgroupfs-style cgroup path:
// memory.events on cgroup v2, memory.oom_control on v1.
func oomKills(v2 bool, cgroupsPath string) int {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") { // systemd-style: not ours
		return 0
	}
	file := filepath.Join("/sys/fs/cgroup/memory", cgroupsPath, "memory.oom_control")
	if v2 {
		file = filepath.Join("/sys/fs/cgroup", cgroupsPath, "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == "oom_kill" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
