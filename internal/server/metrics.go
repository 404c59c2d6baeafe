package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
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
	}
	reg.MustRegister(m.requests, m.duration)
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

// route reduces a path to a low-cardinality label.
func route(p string) string {
	parts := splitPath(p)
	switch {
	case len(parts) >= 1 && parts[0] == "v2":
		return "/v2"
	case len(parts) >= 3 && parts[0] == "api":
		if parts[2] == "namespaces" && len(parts) >= 5 {
			return "/api/v1/namespaces/_/" + parts[4]
		}
		return "/api/v1/" + parts[2]
	}
	return "/" + strings.Join(parts, "/")
}

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		rt := route(r.URL.Path)
		m.requests.WithLabelValues(r.Method, rt, strconv.Itoa(rec.code)).Inc()
		if r.URL.Query().Get("watch") == "" && r.URL.Query().Get("follow") == "" {
			m.duration.WithLabelValues(r.Method, rt).Observe(time.Since(start).Seconds())
		}
	})
}
