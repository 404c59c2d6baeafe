package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/shoal-dev/shoal/internal/pki"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

var (
	apps       = api.MustKind(api.KindApp)
	instances  = api.MustKind(api.KindInstance)
	namespaces = api.MustKind(api.KindNamespace)
)

// testEnv is a real server over a real embedded etcd, on loopback.
type testEnv struct {
	url   string
	cli   *client.Client
	store *store.Store
	etcd  *store.Embedded
	http  *http.Client
}

func start(t *testing.T) *testEnv {
	t.Helper()
	st, e := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.EnsureDefaultNamespace(ctx, st); err != nil {
		t.Fatalf("EnsureDefaultNamespace: %v", err)
	}
	keys, err := pki.LoadOrCreateSecretKeys(filepath.Join(t.TempDir(), "secret-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: st, Log: slog.New(slog.DiscardHandler), Version: "test", SecretKeys: keys})
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testEnv{
		url:   hs.URL,
		cli:   client.New(hs.URL),
		store: st,
		etcd:  e,
		http:  &http.Client{Timeout: 30 * time.Second},
	}
}

// do sends a raw request and returns the status code and body.
func (e *testEnv) do(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// wantStatus checks an error response's code and that its message contains
// every one of parts, and returns the message.
func wantStatus(t *testing.T, code int, body []byte, wantCode int, parts ...string) string {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status %d, body is not a Status: %v: %q", code, err, truncate(body))
	}
	if code != wantCode || st.Code != wantCode {
		t.Fatalf("status %d (body code %d), want %d; message: %s", code, st.Code, wantCode, st.Message)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message, p) {
			t.Errorf("message %q does not contain %q", st.Message, p)
		}
	}
	return st.Message
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newApp(ns, name string, replicas int32) *api.App {
	return &api.App{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp},
		Metadata: api.ObjectMeta{Name: name, Namespace: ns},
		Spec:     api.AppSpec{Template: api.Template{Image: "nginx:1.27"}, Replicas: &replicas},
	}
}

func newInstance(ns, name, node string) *api.Instance {
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{api.LabelApp: "web"}},
		Spec: api.InstanceSpec{
			App: "web", Revision: 1, Node: node,
			Template: api.Template{Image: "nginx:1.27"},
		},
	}
}

func TestHealthzAndVersion(t *testing.T) {
	e := start(t)
	code, body := e.do(t, http.MethodGet, "/healthz", nil)
	if code != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("/healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if err := e.cli.Ping(context.Background()); err != nil {
		t.Fatalf("client Ping: %v", err)
	}
	v, err := e.cli.Version(context.Background())
	if err != nil || v != "test" {
		t.Fatalf("Version = %q, %v; want \"test\"", v, err)
	}
}

func TestMetrics(t *testing.T) {
	e := start(t)
	// Some traffic with distinct routes and codes.
	e.do(t, http.MethodGet, "/healthz", nil)
	e.do(t, http.MethodGet, "/api/v1/namespaces/default/apps/nope", nil)
	e.do(t, http.MethodGet, "/api/v1/namespaces/default/apps", nil)

	code, body := e.do(t, http.MethodGet, "/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE shoal_api_requests_total counter",
		`shoal_api_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`shoal_api_requests_total{code="404",method="GET",route="/api/v1/namespaces/_/apps"} 1`,
		`shoal_api_requests_total{code="200",method="GET",route="/api/v1/namespaces/_/apps"} 1`,
		"shoal_api_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Paths and methods a client makes up must not each become a metric series:
// that would let anyone grow the server's memory without bound.
func TestMetricsLabelsAreBounded(t *testing.T) {
	e := start(t)
	for _, p := range []string{
		"/made-up-1/x", "/made-up-2", "/api/v1/made-up-3", "/api/v1/namespaces/default/made-up-4",
		"/api/v1/namespaces/default/apps/made-up-5", "/v2/made-up-6",
	} {
		e.do(t, http.MethodGet, p, nil)
	}
	e.do(t, "MADEUPMETHOD", "/healthz", nil)
	_, body := e.do(t, http.MethodGet, "/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Contains(line, "made-up") || strings.Contains(line, "MADEUPMETHOD") {
			t.Errorf("client-chosen text became a metric label: %s", line)
		}
	}
}

// Every listener's server bounds how long a client may take: headers,
// the whole request, the answer, and idle keep-alives; and header size.
func TestHTTPServerHasEveryTimeout(t *testing.T) {
	s := server.NewHTTPServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("timeouts: header %v, read %v, write %v, idle %v, max header %d: want all set",
			s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
	}
}
