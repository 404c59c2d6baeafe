package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	noSpace  prometheus.Gauge
	dbSize   prometheus.Gauge
}

// setSpace records what the store says of its space.
func (m *metrics) setSpace(sp store.Space) {
	v := 0.0
	if sp.NoSpace {
		v = 1
	}
	m.noSpace.Set(v)
	m.dbSize.Set(float64(sp.DBSize))
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_api_requests_total",
			Help: "API requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_api_request_duration_seconds",
			Help:    "API request latency (watch and log streams excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"method", "route"}),
		noSpace: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_store_nospace",
			Help: "1 while etcd's NOSPACE alarm is raised: the store takes only reads and deletes.",
		}),
		dbSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_store_db_size_bytes",
			Help: "The largest etcd member's database file.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.noSpace, m.dbSize)
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// route reduces a path to a low-cardinality label. Paths and methods are
// chosen by clients, so anything the server does not serve is counted as
// "other": otherwise each made-up path would add metric series for good.
func route(p string) string {
	parts := splitPath(p)
	switch {
	case len(parts) >= 1 && parts[0] == "v2":
		return "/v2"
	case len(parts) == 1 && (parts[0] == "healthz" || parts[0] == "version" || parts[0] == "metrics"):
		return "/" + parts[0]
	case len(parts) == 3 && parts[0] == "api" && parts[1] == "v1" && (parts[2] == "apply" || parts[2] == "images"):
		return "/api/v1/" + parts[2]
	case len(parts) >= 3 && parts[0] == "api" && parts[1] == "v1":
		if parts[2] == "namespaces" && len(parts) >= 5 {
			if k, ok := api.LookupKind(parts[4]); ok {
				return "/api/v1/namespaces/_/" + k.Plural
			}
			return "other"
		}
		if k, ok := api.LookupKind(parts[2]); ok {
			return "/api/v1/" + k.Plural
		}
	}
	return "other"
}

// method reduces a request method to a low-cardinality label.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		rt, meth := route(r.URL.Path), method(r.Method)
		m.requests.WithLabelValues(meth, rt, strconv.Itoa(rec.code)).Inc()
		if r.URL.Query().Get("watch") == "" && r.URL.Query().Get("follow") == "" {
			m.duration.WithLabelValues(meth, rt).Observe(time.Since(start).Seconds())
		}
	})
}
