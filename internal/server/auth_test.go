package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/registry"
	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// tlsEnv is a server with a CA: authentication and authorization on.
type tlsEnv struct {
	st    *store.Store // for what only servers write (Instances), and another server
	srv   *server.Server
	url   string
	ca    *pki.CA
	admin *http.Client
	anon  *http.Client
	// server holds a server's certificate.
	server *http.Client
	// serverKP and keys make another server of the cluster (another).
	serverKP *pki.Keypair
	keys     *pki.SecretKeys
	audit    *syncBuffer
	images   *registry.Registry
}

// syncBuffer is an audit log the test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startTLS(t *testing.T, opts ...func(*server.Config)) *tlsEnv {
	t.Helper()
	st, _ := storetest.Start(t)
	ctx := ctxT(t, 10*time.Second)
	if err := server.EnsureDefaultNamespace(ctx, st); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverKP := issue(t, ca, "server:test", []string{pki.GroupServers}, nil, time.Hour)
	keys, err := pki.LoadOrCreateSecretKeys(filepath.Join(t.TempDir(), "secret-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	audit := &syncBuffer{}
	images, err := registry.New(filepath.Join(t.TempDir(), "images"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, Images: images, Log: slog.New(slog.DiscardHandler), Version: "test", CA: ca, Keypair: serverKP, NodeCertTTL: time.Hour, SecretKeys: keys, Audit: audit}
	for _, o := range opts {
		o(&cfg)
	}
	srv := server.New(cfg)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	// Not StartTLS: it would present httptest's own certificate.
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener = tls.NewListener(hs.Listener, pki.ServerTLS(ca.Pool(), serverKP))
	hs.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	hs.Start()
	t.Cleanup(hs.Close)
	e := &tlsEnv{srv: srv, images: images, url: "https://" + hs.Listener.Addr().String(), ca: ca, audit: audit, st: st, serverKP: serverKP, keys: keys}
	// The admin's certificate names a cluster-admin User, as admin.conf's do.
	admin := &api.User{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindUser}, Metadata: api.ObjectMeta{Name: "admin-test"},
		Spec: api.UserSpec{Roles: []api.RoleBinding{{Role: api.RoleClusterAdmin}}}}
	if err := st.Create(ctx, admin); err != nil {
		t.Fatal(err)
	}
	e.admin = e.clientAs(issue(t, ca, pki.UserName("admin-test"), []string{pki.GroupUsers, pki.GroupAdmins},
		&pki.Request{URIs: []*url.URL{pki.UserURI("admin-test", admin.Metadata.UID)}}, time.Hour))
	e.anon = e.clientAs(nil)
	e.server = e.clientAs(serverKP)
	return e
}

// issue makes a key and a certificate for it.
func issue(t *testing.T, ca *pki.CA, name string, groups []string, req *pki.Request, ttl time.Duration) *pki.Keypair {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r := pki.Request{PublicKey: key.Public(), Name: name, Groups: groups, TTL: ttl}
	if req != nil {
		r.URIs, r.DNSNames, r.IPs = req.URIs, req.DNSNames, req.IPs
	}
	if strings.HasPrefix(name, "server:") {
		r.DNSNames = []string{"localhost", "example.com"}
		r.IPs = append(r.IPs, []byte{127, 0, 0, 1})
	}
	certPEM, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pki.NewKeypair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (e *tlsEnv) clientAs(kp *pki.Keypair) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(e.ca.Pool(), kp)}}
}

func call(t *testing.T, hc *http.Client, method, url string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	ctx := context.Background()
	if strings.Contains(url, "watch=1") {
		// A watch streams until cancelled: its status line is what counts.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var st api.Status
	if json.Unmarshal(out, &st) == nil && st.Message != "" {
		return resp.StatusCode, st.Message
	}
	return resp.StatusCode, string(out)
}

// token stores a join token (single-use) and returns it.
func (e *tlsEnv) token(t *testing.T, role api.TokenRole, ttl time.Duration) pki.Token {
	t.Helper()
	return e.tokenUses(t, role, ttl, 0)
}

// tokenUses stores a join token for uses joins (0: unset, one).
func (e *tlsEnv) tokenUses(t *testing.T, role api.TokenRole, ttl time.Duration, uses int32) pki.Token {
	t.Helper()
	tok := pki.NewToken(e.ca.Fingerprint())
	obj := api.NewToken(tok.ID, tok.SecretHash(), role, time.Now().Add(ttl), "")
	if uses > 0 {
		obj.Spec.UsesLeft = &uses
	}
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/tokens", obj); code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, msg)
	}
	return tok
}

// join joins node with tok and returns a client holding its certificate.
func (e *tlsEnv) join(t *testing.T, node string, tok string) (*http.Client, int, string) {
	t.Helper()
	key, _ := pki.NewKey()
	pub, _ := pki.EncodePublicKey(key.Public())
	code, body := call(t, e.anon, http.MethodPost, e.url+"/api/v1/join", api.JoinRequest{Token: tok, Node: node, PublicKey: string(pub)})
	if code != http.StatusOK {
		return nil, code, body
	}
	var creds api.Credentials
	if err := json.Unmarshal([]byte(body), &creds); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKey(key)
	kp, err := pki.NewKeypair([]byte(creds.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return e.clientAs(kp), code, ""
}

func TestJoinRefusesBadTokens(t *testing.T) {
	e := startTLS(t)
	good := e.token(t, api.TokenRoleAgent, time.Hour)
	expired := e.token(t, api.TokenRoleAgent, -time.Minute)
	serverRole := e.token(t, api.TokenRoleServer, time.Hour)
	revoked := e.token(t, api.TokenRoleAgent, time.Hour)
	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/tokens/"+revoked.ID, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, msg)
	}
	otherCA, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrongCA := good
	wrongCA.CAFingerprint = otherCA.Fingerprint()
	wrongSecret := good
	wrongSecret.Secret = strings.Repeat("0", 32)

	for _, tc := range []struct {
		name, token string
		code        int
		want        string
	}{
		{"malformed", "hello", http.StatusUnauthorized, "does not start with SHOAL1-"},
		{"truncated", good.String()[:40], http.StatusUnauthorized, "join token:"},
		{"another cluster's CA", wrongCA.String(), http.StatusUnauthorized, "it is for another cluster"},
		{"wrong secret", wrongSecret.String(), http.StatusUnauthorized, "unknown or revoked"},
		{"expired", expired.String(), http.StatusUnauthorized, "expired at"},
		{"revoked", revoked.String(), http.StatusUnauthorized, "unknown or revoked"},
		{"server role", serverRole.String(), http.StatusForbidden, "a node joins with an agent token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code, msg := e.join(t, "n-"+strings.ReplaceAll(tc.name, " ", "-"), tc.token)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("join: %d %q, want %d containing %q", code, msg, tc.code, tc.want)
			}
		})
	}
	// None of them made a node.
	if code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/nodes", nil); code != http.StatusOK || strings.Contains(body, `"name": "n-`) {
		t.Errorf("refused joins left nodes behind: %d %s", code, body)
	}
	// The good token works, once per name: a second machine cannot take the
	// name over.
	if _, code, msg := e.join(t, "n1", good.String()); code != http.StatusOK {
		t.Fatalf("join with a good token: %d %s", code, msg)
	}
	another := e.token(t, api.TokenRoleAgent, time.Hour)
	if _, code, msg := e.join(t, "n1", another.String()); code != http.StatusConflict || !strings.Contains(msg, "shoal node remove n1") {
		t.Errorf("a second join as n1: %d %q, want 409 naming node remove", code, msg)
	}
	// A bad public key changes nothing.
	code, msg := call(t, e.anon, http.MethodPost, e.url+"/api/v1/join", api.JoinRequest{Token: another.String(), Node: "n2", PublicKey: "not a key"})
	if code != http.StatusBadRequest || !strings.Contains(msg, "publicKey") {
		t.Errorf("join with a bad key: %d %q", code, msg)
	}
	if code, _ := call(t, e.admin, http.MethodGet, e.url+"/api/v1/nodes/n2", nil); code != http.StatusNotFound {
		t.Errorf("a join with a bad key made node n2: %d", code)
	}
}

// TestAccessMatrix: who may do what, over every kind of request.
func TestAccessMatrix(t *testing.T) {
	e := startTLS(t)
	tok := e.tokenUses(t, api.TokenRoleAgent, time.Hour, 2)
	n1, code, msg := e.join(t, "n1", tok.String())
	if code != http.StatusOK {
		t.Fatalf("join n1: %d %s", code, msg)
	}
	if _, code, msg := e.join(t, "n2", tok.String()); code != http.StatusOK {
		t.Fatalf("join n2: %d %s", code, msg)
	}
	// Two instances, one on each node.
	app := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec: {image: nginx}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", app); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, msg)
	}
	secrets := "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: db}\nspec: {data: {password: hunter2}}\n---\napiVersion: shoal/v1\nkind: Secret\nmetadata: {name: other}\nspec: {data: {password: swordfish}}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", secrets); code != http.StatusOK {
		t.Fatalf("apply secrets: %d %s", code, msg)
	}
	for _, in := range []struct{ name, node string }{{"web-1", "n1"}, {"web-2", "n2"}} {
		obj := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Namespace: "default", Name: in.name},
			Spec: api.InstanceSpec{App: "web", Node: in.node, Template: api.Template{Image: "nginx"}}}
		if in.node == "n1" {
			obj.Spec.Template.Secrets = []string{"db"}
		} else {
			obj.Spec.Template.Secrets = []string{"other"}
		}
		if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/namespaces/default/instances", obj); code != http.StatusForbidden {
			t.Fatalf("an admin created instance %s: %d %s, want 403: only servers create Instances", in.name, code, msg)
		}
		if err := e.st.Create(ctxT(t, 5*time.Second), obj); err != nil {
			t.Fatal(err)
		}
	}
	status := func(name, node string) *api.Instance {
		return &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Namespace: "default", Name: name},
			Spec: api.InstanceSpec{App: "web", Node: node, Template: api.Template{Image: "nginx"}}, Status: api.InstanceStatus{Phase: api.PhaseRunning}}
	}
	// A node reads the value of the Secret its instance uses.
	if code, body := call(t, n1, "GET", e.url+"/api/v1/namespaces/default/secrets/db?reveal=1", nil); code != http.StatusOK || !strings.Contains(body, "hunter2") {
		t.Errorf("n1 revealing db: %d %s", code, body)
	}
	if _, body := call(t, n1, "GET", e.url+"/api/v1/namespaces/default/secrets/other?reveal=1", nil); strings.Contains(body, "swordfish") {
		t.Errorf("n1 read another node's secret: %s", body)
	}
	// A 403 names the verb, the kind and the namespace.
	if _, msg := call(t, n1, "DELETE", e.url+"/api/v1/namespaces/default/instances/web-2?force=1", nil); !strings.Contains(msg, `node "n1" may not delete instance "web-2" in namespace "default": it runs on node "n2"`) {
		t.Errorf("403 message: %q", msg)
	}
	if _, msg := call(t, n1, "POST", e.url+"/api/v1/apply", app); msg != `node "n1" may not POST /api/v1/apply: forbidden` {
		t.Errorf("403 message: %q", msg)
	}
	otherCA, _ := pki.LoadOrCreateCA(t.TempDir())
	stranger := e.clientAs(issue(t, otherCA, "admin", []string{pki.GroupAdmins}, nil, time.Hour))
	nobody := e.clientAs(issue(t, e.ca, "someone", nil, nil, time.Hour))

	type req struct {
		name, method, path string
		body               any
	}
	reqs := []req{
		{"list apps", "GET", "/api/v1/apps", nil},
		{"get app", "GET", "/api/v1/namespaces/default/apps/web", nil},
		{"watch instances", "GET", "/api/v1/instances?watch=1&revision=1", nil},
		{"list tokens", "GET", "/api/v1/tokens", nil},
		{"apply", "POST", "/api/v1/apply", app},
		{"delete app", "DELETE", "/api/v1/namespaces/default/apps/nothere", nil},
		{"scale", "PUT", "/api/v1/namespaces/default/apps/nothere/scale", `{"replicas":1}`},
		{"own instance status", "PUT", "/api/v1/namespaces/default/instances/web-1/status", status("web-1", "n1")},
		{"other node's instance status", "PUT", "/api/v1/namespaces/default/instances/web-2/status", status("web-2", "n2")},
		{"delete other node's instance", "DELETE", "/api/v1/namespaces/default/instances/web-2?force=1", nil},
		{"other node's status", "PUT", "/api/v1/nodes/n2/status", `{}`},
		{"push image", "POST", "/api/v1/images", "x"},
		{"reveal a secret its instance uses", "GET", "/api/v1/namespaces/default/secrets/db?reveal=1", nil},
		{"reveal a secret another node's instance uses", "GET", "/api/v1/namespaces/default/secrets/other?reveal=1", nil},
		{"list secrets", "GET", "/api/v1/namespaces/default/secrets", nil},
		{"metrics", "GET", "/metrics", nil},
		{"healthz", "GET", "/healthz", nil},
	}
	// Expected codes: 0 means "not 401 or 403" (the handler answers).
	type who struct {
		name string
		hc   *http.Client
		want map[string]int
	}
	allowed := map[string]int{}
	for _, r := range reqs {
		allowed[r.name] = 0
	}
	// Not even an admin writes status: it is what shoal observed.
	for _, r := range []string{"own instance status", "other node's instance status", "other node's status"} {
		allowed[r] = http.StatusForbidden
	}
	nodeWant := map[string]int{
		"list apps": 0, "get app": 0, "watch instances": 0, "list tokens": 403, "apply": 403, "delete app": 403,
		"scale": 403, "own instance status": 0, "other node's instance status": 403, "delete other node's instance": 403,
		"other node's status": 403, "push image": 403, "metrics": 403, "healthz": 0,
		"reveal a secret its instance uses": 0, "reveal a secret another node's instance uses": 403, "list secrets": 403,
	}
	refused := func(code int) map[string]int {
		m := map[string]int{}
		for _, r := range reqs {
			m[r.name] = code
		}
		m["healthz"] = 0
		return m
	}
	handshakeFails := refused(-1)
	handshakeFails["healthz"] = -1
	// The admin last: its deletes would change what the others see.
	for _, w := range []who{
		{"node n1", n1, nodeWant},
		{"no certificate", e.anon, refused(http.StatusUnauthorized)},
		{"a certificate of another CA", stranger, handshakeFails},
		{"an identity with no group", nobody, refused(http.StatusForbidden)},
		{"admin", e.admin, allowed},
	} {
		for _, r := range reqs {
			code, msg := call(t, w.hc, r.method, e.url+r.path, r.body)
			want := w.want[r.name]
			switch {
			case want == 0 && (code == 401 || code == 403 || code == 0):
				t.Errorf("%s: %s: %d %s, want it allowed", w.name, r.name, code, msg)
			case want == -1 && code != 0:
				t.Errorf("%s: %s: %d %s, want the TLS handshake refused", w.name, r.name, code, msg)
			case want > 0 && code != want:
				t.Errorf("%s: %s: %d %s, want %d", w.name, r.name, code, msg, want)
			}
			if want == 403 && code == 403 && !strings.Contains(msg, "may not") {
				t.Errorf("%s: %s: 403 message %q does not say what was refused", w.name, r.name, msg)
			}
		}
	}
}

// TestRemovingANodeRevokesItsCertificate: the next request fails, a watch
// it holds ends, a renewal before that gives a working certificate, and a
// re-join needs a new join.
func TestRemovingANodeRevokesItsCertificate(t *testing.T) {
	e := startTLS(t)
	tok := e.token(t, api.TokenRoleAgent, time.Hour)
	n1, code, msg := e.join(t, "n1", tok.String())
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, msg)
	}
	// Renewal: a new key, a new certificate for the same node.
	key, _ := pki.NewKey()
	pub, _ := pki.EncodePublicKey(key.Public())
	code, body := call(t, n1, http.MethodPost, e.url+"/api/v1/nodes/n1/certificate", api.CertificateRequest{PublicKey: string(pub)})
	if code != http.StatusOK {
		t.Fatalf("renew: %d %s", code, body)
	}
	var creds api.Credentials
	_ = json.Unmarshal([]byte(body), &creds)
	keyPEM, _ := pki.EncodeKey(key)
	kp, err := pki.NewKeypair([]byte(creds.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	renewed := e.clientAs(kp)
	if code, msg := call(t, renewed, http.MethodGet, e.url+"/api/v1/nodes/n1", nil); code != http.StatusOK {
		t.Fatalf("the renewed certificate: %d %s", code, msg)
	}
	if code, _ := call(t, n1, http.MethodPost, e.url+"/api/v1/nodes/n2/certificate", api.CertificateRequest{PublicKey: string(pub)}); code != http.StatusForbidden {
		t.Errorf("n1 renewing n2's certificate: %d, want 403", code)
	}

	// A watch held by the node.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/instances?watch=1", nil)
	resp, err := renewed.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(ended) }()

	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/nodes/n1", nil); code != http.StatusOK {
		t.Fatalf("remove n1: %d %s", code, msg)
	}
	for _, hc := range []*http.Client{n1, renewed} {
		if code, msg := call(t, hc, http.MethodGet, e.url+"/api/v1/nodes/n1", nil); code != http.StatusUnauthorized || !strings.Contains(msg, "revoked") {
			t.Errorf("a removed node's request: %d %q, want 401 revoked", code, msg)
		}
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the removed node's watch still runs 5s later")
	}
	// Joining again under the name works with a new token (the first is
	// spent), and the old certificates stay dead: the new Node has another
	// UID.
	if _, code, msg := e.join(t, "n1", tok.String()); code != http.StatusUnauthorized || !strings.Contains(msg, "was used already") {
		t.Errorf("re-join with the spent token: %d %s, want 401 used already", code, msg)
	}
	if _, code, msg := e.join(t, "n1", e.token(t, api.TokenRoleAgent, time.Hour).String()); code != http.StatusOK {
		t.Fatalf("re-join: %d %s", code, msg)
	}
	if code, _ := call(t, renewed, http.MethodGet, e.url+"/api/v1/nodes/n1", nil); code != http.StatusUnauthorized {
		t.Errorf("the old certificate after a re-join: %d, want 401", code)
	}
}

// TestAnExpiredCertificateIsRefused: the handshake itself fails.
func TestAnExpiredCertificateIsRefused(t *testing.T) {
	e := startTLS(t)
	old := issue(t, e.ca, "admin", []string{pki.GroupAdmins}, nil, time.Nanosecond)
	time.Sleep(10 * time.Millisecond)
	if old.Leaf().NotAfter.After(time.Now()) {
		t.Fatalf("a 1ns certificate is still valid 10ms later (NotAfter %v)", old.Leaf().NotAfter)
	}
	code, msg := call(t, e.clientAs(old), http.MethodGet, e.url+"/api/v1/apps", nil)
	if code != 0 || !strings.Contains(msg, "certificate") {
		t.Errorf("an expired certificate: %d %q, want a refused handshake", code, msg)
	}
}

// user creates a User with roles and returns a client with its certificate.
func (e *tlsEnv) user(t *testing.T, name string, roles ...api.RoleBinding) *http.Client {
	t.Helper()
	u := &api.User{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindUser}, Metadata: api.ObjectMeta{Name: name}, Spec: api.UserSpec{Roles: roles}}
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/users", u); code != http.StatusCreated {
		t.Fatalf("create user %s: %d %s", name, code, msg)
	}
	key, _ := pki.NewKey()
	pub, _ := pki.EncodePublicKey(key.Public())
	code, body := call(t, e.admin, http.MethodPost, e.url+"/api/v1/users/"+name+"/certificate", api.CertificateRequest{PublicKey: string(pub)})
	if code != http.StatusOK {
		t.Fatalf("certificate for %s: %d %s", name, code, body)
	}
	var creds api.Credentials
	_ = json.Unmarshal([]byte(body), &creds)
	keyPEM, _ := pki.EncodeKey(key)
	kp, err := pki.NewKeypair([]byte(creds.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return e.clientAs(kp)
}

// bearer is a client without a certificate that sends a bearer token.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (e *tlsEnv) bearerClient(token string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: bearer{token, &http.Transport{TLSClientConfig: pki.ClientTLS(e.ca.Pool(), nil)}}}
}

// userToken stores a user token for name and returns it.
func (e *tlsEnv) userToken(t *testing.T, name string, ttl time.Duration) pki.Token {
	t.Helper()
	tok := pki.NewToken(e.ca.Fingerprint())
	obj := api.NewToken(tok.ID, tok.SecretHash(), api.TokenRoleUser, time.Now().Add(ttl), "")
	obj.Spec.User = name
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/tokens", obj); code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, msg)
	}
	return tok
}

// TestRoleMatrix: every verb, for every role in namespace "web", and out
// of it (a service account's bearer token counts as its user's role); 403s name the verb, the kind and the namespace; writes are
// audited with who, what and the result.
func TestRoleMatrix(t *testing.T) {
	e := startTLS(t)
	for _, ns := range []string{"web", "other"} {
		doc := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n---\napiVersion: shoal/v1\nkind: App\nmetadata: {name: a, namespace: " + ns + "}\nspec: {image: nginx}\n---\napiVersion: shoal/v1\nkind: Secret\nmetadata: {name: s, namespace: " + ns + "}\nspec: {data: {k: value-of-" + ns + "}}\n"
		if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", doc); code != http.StatusOK {
			t.Fatalf("seed %s: %d %s", ns, code, msg)
		}
	}
	in := func(r api.Role) api.RoleBinding { return api.RoleBinding{Role: r, Namespace: "web"} }
	clients := map[string]*http.Client{
		"viewer":        e.user(t, "vic", in(api.RoleViewer)),
		"deployer":      e.user(t, "dee", in(api.RoleDeployer)),
		"admin":         e.user(t, "ada", in(api.RoleAdmin)),
		"cluster-admin": e.user(t, "cal", api.RoleBinding{Role: api.RoleClusterAdmin}),
		"no roles":      e.user(t, "nora"),
		"anonymous":     e.anon,
	}
	e.user(t, "sam", in(api.RoleDeployer))
	clients["deployer by token"] = e.bearerClient(e.userToken(t, "sam", time.Hour).String())
	app := func(ns, name string) string {
		return "apiVersion: shoal/v1\nkind: App\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: {image: nginx}\n"
	}
	type row struct {
		name, method, path string
		body               any
		// who may: the roles that get past authorization.
		may []string
	}
	all := []string{"viewer", "deployer", "admin", "cluster-admin"}
	writers := []string{"deployer", "admin", "cluster-admin"}
	admins := []string{"admin", "cluster-admin"}
	cluster := []string{"cluster-admin"}
	anyone := []string{"viewer", "deployer", "admin", "cluster-admin", "no roles"}
	rows := []row{
		{"get app", "GET", "/api/v1/namespaces/web/apps/a", nil, all},
		{"list apps", "GET", "/api/v1/namespaces/web/apps", nil, all},
		{"watch apps", "GET", "/api/v1/namespaces/web/apps?watch=1&revision=1", nil, all},
		{"list instances", "GET", "/api/v1/namespaces/web/instances", nil, all},
		{"get secret (redacted)", "GET", "/api/v1/namespaces/web/secrets/s", nil, all},
		{"reveal secret", "GET", "/api/v1/namespaces/web/secrets/s?reveal=1", nil, admins},
		{"logs", "GET", "/api/v1/namespaces/web/instances/x/log", nil, all},
		{"apply app", "POST", "/api/v1/apply", app("web", "b"), writers},
		{"apply app in another namespace", "POST", "/api/v1/apply", app("other", "c"), cluster},
		{"scale", "PUT", "/api/v1/namespaces/web/apps/a/scale", `{"replicas": 2}`, writers},
		{"delete app", "DELETE", "/api/v1/namespaces/web/apps/nothere", nil, writers},
		{"exec", "POST", "/api/v1/namespaces/web/instances/x/exec?cmd=true", nil, admins},
		{"delete instance", "DELETE", "/api/v1/namespaces/web/instances/nothere", nil, admins},
		{"list apps in all namespaces", "GET", "/api/v1/apps", nil, cluster},
		{"get app in another namespace", "GET", "/api/v1/namespaces/other/apps/a", nil, cluster},
		{"list nodes", "GET", "/api/v1/nodes", nil, anyone},
		{"create namespace", "POST", "/api/v1/namespaces", `{"apiVersion":"shoal/v1","kind":"Namespace","metadata":{"name":"x"}}`, cluster},
		{"list tokens", "GET", "/api/v1/tokens", nil, cluster},
		{"list users", "GET", "/api/v1/users", nil, cluster},
		{"rotate secret key", "POST", "/api/v1/secret-keys/rotate", nil, cluster},
		{"metrics", "GET", "/metrics", nil, cluster},
		{"version", "GET", "/version", nil, anyone},
		{"list servers", "GET", "/api/v1/servers", nil, anyone},
		{"remove a server", "DELETE", "/api/v1/servers/nothere", nil, cluster},
	}
	for _, r := range rows {
		for who, hc := range clients {
			code, msg := call(t, hc, r.method, e.url+r.path, r.body)
			want := slices.Contains(r.may, strings.TrimSuffix(who, " by token"))
			switch {
			case who == "anonymous":
				if code != http.StatusUnauthorized {
					t.Errorf("anonymous: %s: %d, want 401", r.name, code)
				}
			case want && (code == 401 || code == 403):
				t.Errorf("%s: %s: %d %s, want it allowed", who, r.name, code, msg)
			case !want && code != http.StatusForbidden:
				t.Errorf("%s: %s: %d %s, want 403", who, r.name, code, msg)
			}
		}
	}
	// What a 403 says.
	if _, msg := call(t, clients["viewer"], "DELETE", e.url+"/api/v1/namespaces/web/apps/a", nil); msg != `user "vic" may not delete app "a" in namespace "web" (roles: viewer in web): forbidden` {
		t.Errorf("403 message: %q", msg)
	}
	if _, msg := call(t, clients["deployer"], "POST", e.url+"/api/v1/apply", app("other", "c")); !strings.Contains(msg, `document 1 (App "c"): user "dee" may not apply apps in namespace "other"`) {
		t.Errorf("403 message: %q", msg)
	}
	if _, body := call(t, clients["deployer"], "GET", e.url+"/api/v1/namespaces/web/secrets/s", nil); strings.Contains(body, "value-of-web") {
		t.Errorf("a deployer sees the secret's value: %s", body)
	}
	// A deleted user is refused from its next request.
	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/users/vic", nil); code != http.StatusOK {
		t.Fatalf("delete user: %d %s", code, msg)
	}
	if code, msg := call(t, clients["viewer"], "GET", e.url+"/api/v1/namespaces/web/apps/a", nil); code != http.StatusUnauthorized || !strings.Contains(msg, "revoked") {
		t.Errorf("a deleted user's request: %d %s", code, msg)
	}
	// The audit log: writes and reveals only, who, what, result; no bodies.
	log := e.audit.String()
	for _, want := range []string{`"who":"user:dee"`, `"who":"user:sam","token":"`, `"method":"DELETE","path":"/api/v1/namespaces/web/apps/nothere"`, `"code":403`, `"who":"anonymous"`, `"who":"user:admin-test"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(log, "value-of-web") {
		t.Errorf("the audit log records values")
	}
	for _, rec := range e.auditLines(t) {
		if rec.Method == http.MethodGet && rec.Verb != "reveal" {
			t.Errorf("the audit log records a read: %+v", rec)
		}
	}
}

// TestBearerTokens: a service account calls the API with a user token;
// every bad token is a 401 that says what was wrong, and changes nothing.
func TestBearerTokens(t *testing.T) {
	e := startTLS(t)
	e.user(t, "ci", api.RoleBinding{Role: api.RoleDeployer, Namespace: "default"})
	good := e.userToken(t, "ci", time.Hour)
	expired := e.userToken(t, "ci", -time.Minute)
	revoked := e.userToken(t, "ci", time.Hour)
	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/tokens/"+revoked.ID, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, msg)
	}
	join := e.token(t, api.TokenRoleAgent, time.Hour)
	wrongSecret := good
	wrongSecret.Secret = strings.Repeat("0", 32)
	app := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: by-token}\nspec: {image: nginx}\n"

	if code, msg := call(t, e.bearerClient(good.String()), http.MethodPost, e.url+"/api/v1/apply", app); code != http.StatusOK {
		t.Fatalf("apply with a good token: %d %s", code, msg)
	}
	if code, msg := call(t, e.bearerClient(good.String()), http.MethodGet, e.url+"/api/v1/namespaces/kube/apps", nil); code != http.StatusForbidden || !strings.Contains(msg, `user "ci" may not list apps in namespace "kube"`) {
		t.Errorf("a token's user out of its namespace: %d %q", code, msg)
	}
	for _, tc := range []struct {
		name, header, want string
	}{
		{"malformed", "Bearer hello", "bearer token: does not start with SHOAL1-"},
		{"not bearer", "Basic Y2k6cHc=", `is not "Bearer TOKEN"`},
		{"wrong secret", "Bearer " + wrongSecret.String(), "unknown or revoked"},
		{"expired", "Bearer " + expired.String(), "expired at"},
		{"revoked", "Bearer " + revoked.String(), "unknown or revoked"},
		{"a join token", "Bearer " + join.String(), "is a join token (role agent)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodDelete, e.url+"/api/v1/namespaces/default/apps/by-token", nil)
			req.Header.Set("Authorization", tc.header)
			resp, err := e.anon.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var st api.Status
			_ = json.NewDecoder(resp.Body).Decode(&st)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(st.Message, tc.want) {
				t.Errorf("%d %q, want 401 containing %q", resp.StatusCode, st.Message, tc.want)
			}
		})
	}
	if code, _ := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/default/apps/by-token", nil); code != http.StatusOK {
		t.Errorf("a refused token deleted the app: %d", code)
	}
	// A token for a user that does not exist is not stored.
	tok := pki.NewToken(e.ca.Fingerprint())
	obj := api.NewToken(tok.ID, tok.SecretHash(), api.TokenRoleUser, time.Now().Add(time.Hour), "")
	obj.Spec.User = "ghost"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/tokens", obj); code != http.StatusUnprocessableEntity || !strings.Contains(msg, `spec.user: there is no user "ghost"`) {
		t.Errorf("a token for no user: %d %q", code, msg)
	}
	// Deleting the user revokes its tokens, also when a user of that name
	// is created again.
	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/users/ci", nil); code != http.StatusOK {
		t.Fatalf("delete user: %d %s", code, msg)
	}
	if code, msg := call(t, e.bearerClient(good.String()), http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusUnauthorized || !strings.Contains(msg, "token "+good.ID+` of user "ci" was revoked`) {
		t.Errorf("a deleted user's token: %d %q", code, msg)
	}
	e.user(t, "ci", api.RoleBinding{Role: api.RoleAdmin, Namespace: "default"})
	if code, msg := call(t, e.bearerClient(good.String()), http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusUnauthorized || !strings.Contains(msg, "earlier user of that name") {
		t.Errorf("an old token of a new user of the same name: %d %q", code, msg)
	}
}

// TestServerJoin: a server token adds an etcd learner and hands over the
// CA and the secret keys; anything else is refused with the reason and
// adds nothing.
func TestServerJoin(t *testing.T) {
	e := startTLS(t)
	agentTok := e.token(t, api.TokenRoleAgent, time.Hour)
	serverTok := e.token(t, api.TokenRoleServer, time.Hour)
	join := func(tok, name, peer string) (int, string) {
		return call(t, e.anon, http.MethodPost, e.url+"/api/v1/servers/join", api.ServerJoinRequest{Token: tok, Name: name, PeerURL: peer})
	}
	for _, tc := range []struct {
		name, token, server, peer string
		code                      int
		want                      string
	}{
		{"an agent token", agentTok.String(), "s2", "https://127.0.0.1:1", http.StatusForbidden, "a server joins with a server token"},
		{"a malformed token", "nope", "s2", "https://127.0.0.1:1", http.StatusUnauthorized, "join token: does not start with SHOAL1-"},
		{"a bad name", serverTok.String(), "S_2", "https://127.0.0.1:1", http.StatusBadRequest, `name "S_2"`},
		{"a plain peer URL", serverTok.String(), "s2", "http://127.0.0.1:1", http.StatusBadRequest, `peerURL "http://127.0.0.1:1": want https://ADDRESS:PORT`},
	} {
		if code, msg := join(tc.token, tc.server, tc.peer); code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, msg, tc.code, tc.want)
		}
	}
	code, body := join(serverTok.String(), "s2", "https://127.0.0.1:1")
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, body)
	}
	var resp api.ServerJoinResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.CAKey, "PRIVATE KEY") || !strings.Contains(resp.SecretKeys, `"current"`) || !strings.Contains(resp.InitialCluster, "s2=https://127.0.0.1:1") {
		t.Errorf("join response lacks the CA key, the secret keys or the initial cluster: %+v", resp)
	}
	// s2 never started its member: a join after it replaces it (servers
	// join one at a time; etcd takes one learner).
	if code, msg := join(e.token(t, api.TokenRoleServer, time.Hour).String(), "s3", "https://127.0.0.1:2"); code != http.StatusOK {
		t.Errorf("a join after one that never started: %d %s", code, msg)
	}
	code, body = call(t, e.server, http.MethodGet, e.url+"/api/v1/servers", nil)
	if code != http.StatusOK || strings.Count(body, `"status": "Unstarted"`) != 1 || !strings.Contains(body, "https://127.0.0.1:2") || strings.Contains(body, "https://127.0.0.1:1\"") {
		t.Errorf("servers after two joins that never started: %d %s", code, body)
	}
	if code, _ := call(t, e.anon, http.MethodGet, e.url+"/api/v1/servers", nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous list of servers: %d", code)
	}
}
