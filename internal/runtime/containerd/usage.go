package containerd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Usage samples every running task of the namespace: one Metrics call to
// containerd for their cgroups (v1 or v2, whichever the shim reports), and
// each task's /proc/PID/net/dev for its network bytes.
func (d *Driver) Usage(ctx context.Context) (map[string]runtime.Usage, error) {
	ctx = d.ctx(ctx)
	tasks, err := d.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	out := map[string]runtime.Usage{}
	var ids []string
	for _, t := range tasks.Tasks {
		if t.Status != tasktypes.Status_RUNNING {
			continue
		}
		u := runtime.Usage{WritableBytes: -1}
		u.RxBytes, u.TxBytes = netDev(t.Pid)
		out[t.ID] = u
		ids = append(ids, "id=="+t.ID)
	}
	if len(ids) == 0 {
		return out, nil
	}
	// One filter per id: containerd ORs the filters given.
	resp, err := d.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: ids})
	if err != nil {
		return nil, fmt.Errorf("task metrics: %w", errgrpc.ToNative(err))
	}
	for _, m := range resp.Metrics {
		u, ok := out[m.ID]
		if !ok || m.Data == nil {
			continue
		}
		v, err := typeurl.UnmarshalAny(m.Data)
		if err != nil {
			continue
		}
		switch s := v.(type) {
		case *v1.Metrics:
			u.CPUNanos = s.GetCPU().GetUsage().GetTotal()
			mem := s.GetMemory()
			u.MemoryBytes = workingSet(mem.GetUsage().GetUsage(), mem.GetTotalInactiveFile())
			u.Pids = int64(s.GetPids().GetCurrent())
		case *v2.Metrics:
			u.CPUNanos = s.GetCPU().GetUsageUsec() * 1000
			mem := s.GetMemory()
			u.MemoryBytes = workingSet(mem.GetUsage(), mem.GetInactiveFile())
			u.Pids = int64(s.GetPids().GetCurrent())
		}
		out[m.ID] = u
	}
	return out, nil
}

func workingSet(usage, inactiveFile uint64) int64 {
	if inactiveFile > usage {
		return 0
	}
	return int64(usage - inactiveFile)
}

// netDev sums the bytes of a process's network namespace's interfaces,
// loopback excepted.
func netDev(pid uint32) (rx, tx uint64) {
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fs[0], 10, 64)
		t, _ := strconv.ParseUint(fs[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}

// WritableBytes asks the container's snapshotter how much its writable
// layer holds (for overlayfs, a walk of the upper directory).
func (d *Driver) WritableBytes(ctx context.Context, id string) (int64, error) {
	ctx = d.ctx(ctx)
	info, err := d.client.ContainerService().Get(ctx, id)
	if err != nil {
		return 0, d.wrap(id, err)
	}
	u, err := d.client.SnapshotService(info.Snapshotter).Usage(ctx, info.SnapshotKey)
	if err != nil {
		return 0, fmt.Errorf("container %q: writable layer: %w", id, errgrpc.ToNative(err))
	}
	return u.Size, nil
}
