package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// Limits on request bodies.
const (
	MaxApplyBytes  = 16 << 20
	MaxObjectBytes = api.MaxDocumentBytes
	MaxImageBytes  = 2 << 30
)

// Images is the server-side image store the API exposes. It is optional.
type Images interface {
	PushTarball(ctx context.Context, r io.Reader) ([]string, error)
	List() []string
	Handler() http.Handler
}

// Config wires a Server.
type Config struct {
	Store   *store.Store
	Images  Images
	Log     *slog.Logger
	Version string
	// Registry receives the server's metrics; nil uses a new registry.
	Registry *prometheus.Registry
}

// Server serves the HTTP API.
type Server struct {
	store   *store.Store
	images  Images
	log     *slog.Logger
	version string
	metrics *metrics
	reg     *prometheus.Registry
	logs    *http.Client
	caches  map[api.Kind]*objectCache // see Run
}

// New returns a Server; mount it with Handler.
func New(cfg Config) *Server {
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	}
	return &Server{
		store:   cfg.Store,
		images:  cfg.Images,
		log:     cfg.Log,
		version: cfg.Version,
		metrics: newMetrics(reg),
		reg:     reg,
		logs:    &http.Client{},
		caches:  newCaches(),
	}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.version})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /api/v1/apply", s.apply)
	mux.HandleFunc("POST /api/v1/images", s.pushImage)
	mux.HandleFunc("GET /api/v1/images", s.listImages)
	mux.HandleFunc("/api/v1/", s.objects)
	if s.images != nil {
		mux.Handle("/v2/", s.images.Handler())
	}
	if os.Getenv("SHOAL_PPROF") != "" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return s.metrics.instrument(mux)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, _, err := s.store.List(ctx, api.MustKind(api.KindNamespace), ""); err != nil {
		http.Error(w, "store unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// EnsureDefaultNamespace creates the "default" Namespace if it is missing.
func EnsureDefaultNamespace(ctx context.Context, st *store.Store) error {
	ns := &api.Namespace{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace},
		Metadata: api.ObjectMeta{Name: api.DefaultNamespace},
	}
	if err := st.Create(ctx, ns); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	return nil
}

// Serve listens on addr and serves until ctx ends, then shuts down within
// a few seconds. It warns when addr is not loopback: there is no TLS or
// access control yet.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	if host, _, err := net.SplitHostPort(l.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			log.Warn("the API listens beyond loopback without TLS or access control; anyone who reaches it controls the cluster", "addr", l.Addr().String())
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	return nil
}

// readBody reads at most limit bytes of the request body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %v: %w", err, errBadRequest)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("request body larger than %s: %w", byteSize(limit), errTooLarge)
	}
	return b, nil
}

// byteSize writes a limit the way people read it: "16 MiB", "4 KiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
