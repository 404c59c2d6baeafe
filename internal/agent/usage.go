package agent

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// DefaultSampleEvery is how often the agent reads its containers' use.
const DefaultSampleEvery = 2 * time.Second

// sample is one reading of a container, kept to make rates with the next.
type sample struct {
	at time.Time
	u  runtime.Usage
}

// usageLoop samples every running container's cgroups (one call to the
// runtime for all of them) and keeps, per instance, its CPU rate over
// the period and its latest figures; the heartbeat publishes them on the
// Node, and /metrics serves them.
func (a *Agent) usageLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.SampleEvery)
	defer t.Stop()
	prev := map[string]sample{}
	var lastCPU int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		got, err := a.cfg.Driver.Usage(ctx)
		if err != nil {
			a.log.Debug("usage sample", "err", err)
			continue
		}
		a.mu.Lock()
		var out []api.InstanceUsage
		next := map[string]sample{}
		for key, in := range a.desired {
			id := containerID(in)
			u, ok := got[id]
			if !ok {
				continue
			}
			iu := api.InstanceUsage{Namespace: in.Metadata.Namespace, Instance: in.Metadata.Name, App: in.Spec.App, Job: in.Spec.Job,
				MemoryBytes: u.MemoryBytes, Pids: u.Pids, RxBytes: int64(u.RxBytes), TxBytes: int64(u.TxBytes)}
			if p, ok := prev[key]; ok && u.CPUNanos >= p.u.CPUNanos {
				if d := now.Sub(p.at); d > 0 {
					iu.MilliCPU = int64(float64(u.CPUNanos-p.u.CPUNanos) / float64(d.Nanoseconds()) * 1000)
				}
			}
			next[key] = sample{now, u}
			out = append(out, iu)
		}
		slices.SortFunc(out, func(x, y api.InstanceUsage) int {
			return strings.Compare(x.Namespace+"/"+x.Instance, y.Namespace+"/"+y.Instance)
		})
		a.usage, a.usageAt = out, now.UTC()
		a.mu.Unlock()
		prev = next
		// A move of a fifth or more in CPU or traffic is published at once
		// instead of at the next heartbeat.
		var cpu int64
		for _, u := range out {
			cpu += u.MilliCPU
		}
		if moved(float64(cpu), float64(lastCPU), 50) {
			a.kickHeartbeat()
		}
		lastCPU = cpu
	}
}

// usageStatus is the latest sample for the Node's status: per instance,
// and summed.
func (a *Agent) usageStatus() (used api.NodeResources, usage []api.InstanceUsage, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range a.usage {
		used.MilliCPU += u.MilliCPU
		used.MemoryBytes += u.MemoryBytes
	}
	return used, a.usage, a.usageAt
}

// usageCollector serves the latest sample as Prometheus gauges and
// counters, labelled by namespace, instance and app (or job).
type usageCollector struct{ a *Agent }

var (
	usageCPU  = prometheus.NewDesc("shoal_instance_cpu_millicores", "CPU an instance used over the last sample period, in thousandths of a core.", []string{"namespace", "instance", "app", "job"}, nil)
	usageMem  = prometheus.NewDesc("shoal_instance_memory_working_set_bytes", "An instance's memory in use, less the file cache the kernel can take back.", []string{"namespace", "instance", "app", "job"}, nil)
	usagePids = prometheus.NewDesc("shoal_instance_pids", "Processes and threads in an instance's container.", []string{"namespace", "instance", "app", "job"}, nil)
	usageRx   = prometheus.NewDesc("shoal_instance_network_receive_bytes_total", "Bytes an instance's container received.", []string{"namespace", "instance", "app", "job"}, nil)
	usageTx   = prometheus.NewDesc("shoal_instance_network_transmit_bytes_total", "Bytes an instance's container sent.", []string{"namespace", "instance", "app", "job"}, nil)
)

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{usageCPU, usageMem, usagePids, usageRx, usageTx} {
		ch <- d
	}
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	_, usage, _ := c.a.usageStatus()
	for _, u := range usage {
		l := []string{u.Namespace, u.Instance, u.App, u.Job}
		ch <- prometheus.MustNewConstMetric(usageCPU, prometheus.GaugeValue, float64(u.MilliCPU), l...)
		ch <- prometheus.MustNewConstMetric(usageMem, prometheus.GaugeValue, float64(u.MemoryBytes), l...)
		ch <- prometheus.MustNewConstMetric(usagePids, prometheus.GaugeValue, float64(u.Pids), l...)
		ch <- prometheus.MustNewConstMetric(usageRx, prometheus.CounterValue, float64(u.RxBytes), l...)
		ch <- prometheus.MustNewConstMetric(usageTx, prometheus.CounterValue, float64(u.TxBytes), l...)
	}
}

func (a *Agent) kickHeartbeat() {
	select {
	case a.beat <- struct{}{}:
	default:
	}
}

// trafficLoop publishes a move of the proxy's traffic at once (the
// autoscaler reads it from the Node) instead of at the next heartbeat.
func (a *Agent) trafficLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var last float64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var rps float64
		for _, tr := range a.cfg.Traffic() {
			rps += tr.RequestsPerSecond + float64(tr.Waiting)*1000
		}
		if moved(rps, last, 2) {
			a.kickHeartbeat()
			last = rps
		}
	}
}

// moved says whether x differs from was by a fifth or more, and by more
// than floor.
func moved(x, was, floor float64) bool {
	d := x - was
	if d < 0 {
		d = -d
	}
	return d > floor && d >= 0.2*max(x, was)
}
