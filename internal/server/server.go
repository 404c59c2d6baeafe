package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
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
	// PushTarball stores an archive's images; may is asked about each
	// repository before any tag changes (registry.Registry.PushTarball).
	PushTarball(ctx context.Context, r io.Reader, may func(repo string) error) ([]string, error)
	// Resolve returns the digest repo:tag points at, or an error wrapping
	// registry.ErrUnknownImage.
	Resolve(ctx context.Context, repo, tag string) (string, error)
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
	// CA, when set, turns on authentication (client certificates from it)
	// and authorization, and signs node certificates at join. Keypair is
	// the server's own certificate, which it presents to agents.
	CA          *pki.CA
	Keypair     *pki.Keypair
	NodeCertTTL time.Duration
	// SecretKeys encrypt Secrets at rest; without them Secrets are refused.
	SecretKeys *pki.SecretKeys
	// Audit, when set, receives a JSON line (AuditRecord) per write.
	Audit io.Writer
	// ExternalEtcd says the servers share an external etcd: a joining
	// server brings no etcd member of its own.
	ExternalEtcd bool
	// ClusterCIDR is the range every node's subnet lies inside (the
	// controllers assign from it); zero checks no range.
	ClusterCIDR netip.Prefix
	// Limits bound each identity's request rate and open streams (zero
	// figures: DefaultLimits). They apply only with a CA.
	Limits Limits
}

// Server serves the HTTP API.
type Server struct {
	store   *store.Store
	images  Images
	log     *slog.Logger
	version string
	metrics *metrics
	reg     *prometheus.Registry
	caches  map[api.Kind]*objectCache // see Run

	ca           *pki.CA
	keypair      *pki.Keypair
	nodeCertTTL  time.Duration
	conns        conns // requests per credential; revoked ones
	secretKeys   *pki.SecretKeys
	auditLog     *auditLog
	quorumCheck  quorumCheck
	externalEtcd bool
	clusterCIDR  netip.Prefix
	overlayKeys  overlayKeyCache // see admitOverlayKey
	limiter      *limiter        // per identity, and per address failing to authenticate
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
		caches:  newCaches(),

		ca:          cfg.CA,
		keypair:     cfg.Keypair,
		nodeCertTTL: cmp.Or(cfg.NodeCertTTL, DefaultNodeCertTTL),
		secretKeys:  cfg.SecretKeys,
		auditLog:    newAuditLog(cfg.Audit),

		externalEtcd: cfg.ExternalEtcd,
		clusterCIDR:  cfg.ClusterCIDR,
		limiter:      newLimiter(cfg.Limits),
	}
}

func newAuditLog(w io.Writer) *auditLog {
	if w == nil {
		return nil
	}
	return &auditLog{enc: json.NewEncoder(w)}
}

// agentTLS is how the server reaches node's agent: the agent must present
// node's certificate, and the server presents its own. Nil without a CA.
func (s *Server) agentTLS(node string) *tls.Config {
	if s.ca == nil {
		return nil
	}
	return pki.PeerTLS(s.ca.Pool(), s.keypair, pki.NodeName(node))
}

// agentURL is where node's agent serves path.
func (s *Server) agentURL(node *api.Node, path, query string) string {
	scheme := "https"
	if s.ca == nil {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: node.Status.Address, Path: path, RawQuery: query}
	return u.String()
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.version})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /api/v1/join", s.join)
	mux.HandleFunc("POST /api/v1/servers/join", s.joinServer)
	mux.HandleFunc("GET /api/v1/servers", s.listServers)
	mux.HandleFunc("DELETE /api/v1/servers/{name}", s.removeServer)
	mux.HandleFunc("POST /api/v1/apply", s.apply)
	mux.HandleFunc("POST /api/v1/secret-keys/rotate", s.rotateSecretKey)
	mux.HandleFunc("POST /api/v1/images", s.pushImage)
	mux.HandleFunc("GET /api/v1/images", s.listImages)
	mux.HandleFunc("/api/v1/", s.objects)
	if s.images != nil {
		reg := s.images.Handler()
		mux.Handle("/v2/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			streaming(w) // a layer takes as long as it takes
			reg.ServeHTTP(w, r)
		}))
	}
	if os.Getenv("SHOAL_PPROF") != "" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return s.metrics.instrument(s.guard(mux))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.quorum(ctx); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if _, _, err := s.store.List(ctx, api.MustKind(api.KindNamespace), ""); err != nil {
		// The leader may have gone only a moment ago: ask again.
		qctx, qcancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
		defer qcancel()
		if qerr := s.checkQuorum(qctx); qerr != nil {
			err = qerr
		}
		http.Error(w, "store unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	// A full store still serves reads and deletes, which is how it is
	// emptied: /healthz says so but stays 200 (every CLI verb asks it).
	_, _ = io.WriteString(w, "ok\n"+s.spaceWarning(ctx))
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

// Serve serves h on l until ctx ends, then shuts down within a few
// seconds. With tlsCfg it serves TLS only (the API); every timeout is set,
// so a slow or silent client cannot hold a connection.
func Serve(ctx context.Context, l net.Listener, h http.Handler, tlsCfg *tls.Config, log *slog.Logger) error {
	if tlsCfg == nil {
		if host, _, err := net.SplitHostPort(l.Addr().String()); err == nil {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				log.Warn("the API listens beyond loopback without TLS or access control; anyone who reaches it controls the cluster", "addr", l.Addr().String())
			}
		}
	}
	srv := NewHTTPServer(h)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if tlsCfg != nil {
		srv.TLSConfig = tlsCfg
		l = tls.NewListener(l, tlsCfg)
	}
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

// NewHTTPServer is an http.Server with every timeout set: headers within
// 10 s, the whole request within a minute, the answer within a minute,
// idle connections closed after 2 minutes. Handlers that stream (watches,
// logs, exec, image pushes) lift the read or write deadline for
// themselves with streaming; every handler bounds what it reads.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// streaming lifts the server's read and write deadlines for a request
// that streams for as long as it needs (a watch, a log follow, an image
// push).
func streaming(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
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
