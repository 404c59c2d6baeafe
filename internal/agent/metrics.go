package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are what the agent counts, served on its HTTP listener at
// /metrics (the node's own view; the server has the cluster's).
type metrics struct {
	reg       *prometheus.Registry
	starts    prometheus.Counter
	restarts  prometheus.Counter
	failures  prometheus.Counter
	instances prometheus.GaugeFunc
	synced    prometheus.GaugeFunc
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_agent_container_starts_total", Help: "Container runs started by this agent, restarts included.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_agent_container_restarts_total", Help: "Containers restarted after an exit or a failed liveness probe.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_agent_start_failures_total", Help: "Attempts to get a container running that failed (image, create, start).",
		}),
		instances: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_agent_instances", Help: "Instances bound to this node, as last seen from the server.",
		}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(len(a.desired))
		}),
	}
	m.synced = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_agent_synced", Help: "1 once the agent has listed its instances from the server since it started.",
	}, func() float64 {
		if _, synced := a.want(""); synced {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.starts, m.restarts, m.failures, m.instances, m.synced, usageCollector{a},
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
