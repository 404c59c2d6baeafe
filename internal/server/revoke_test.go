package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/server"
)

// another starts a second server of e's cluster (same store and CA) and
// returns its URL: what one server deletes, the other must act on.
func (e *tlsEnv) another(t *testing.T) string {
	t.Helper()
	srv := server.New(server.Config{Store: e.st, Log: slog.New(slog.DiscardHandler), Version: "test", CA: e.ca, Keypair: e.serverKP, NodeCertTTL: time.Hour, SecretKeys: e.keys})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener = tls.NewListener(hs.Listener, pki.ServerTLS(e.ca.Pool(), e.serverKP))
	hs.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	hs.Start()
	t.Cleanup(hs.Close)
	return "https://" + hs.Listener.Addr().String()
}

// openWatch starts a watch of apps in default as hc and returns a channel
// closed when its stream ends.
func openWatch(t *testing.T, hc *http.Client, base string) <-chan struct{} {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/namespaces/default/apps?watch=1", nil)
	resp, err := (&http.Client{Transport: hc.Transport}).Do(req) // no client timeout: it streams
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(ended) }()
	return ended
}

// endsWithin fails unless ended closes within d of now.
func endsWithin(t *testing.T, ended <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(d):
		t.Errorf("%s: the watch still runs %v later", what, d)
	}
}

// uid reads the UID of a cluster-scoped object.
func (e *tlsEnv) uid(t *testing.T, plural, name string) string {
	t.Helper()
	code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/"+plural+"/"+name, nil)
	var obj struct{ Metadata api.ObjectMeta }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &obj) != nil {
		t.Fatalf("get %s %s: %d %s", plural, name, code, body)
	}
	return obj.Metadata.UID
}

// TestRevokedIdentitiesStreamsEnd: a watch held by a user ends within a
// second of the User's deletion, one held with a bearer token within a
// second of the Token's, also when another server serves the delete; one
// held with a certificate ends when the certificate expires.
func TestRevokedIdentitiesStreamsEnd(t *testing.T) {
	e := startTLS(t)
	other := e.another(t)
	viewer := api.RoleBinding{Role: api.RoleViewer, Namespace: "default"}

	u := e.user(t, "u", viewer)
	ended := openWatch(t, u, e.url)
	if code, msg := call(t, e.admin, http.MethodDelete, other+"/api/v1/users/u", nil); code != http.StatusOK {
		t.Fatalf("delete user on the other server: %d %s", code, msg)
	}
	endsWithin(t, ended, time.Second, "a user deleted on another server")

	e.user(t, "ci", viewer)
	tok := e.userToken(t, "ci", time.Hour)
	ended = openWatch(t, e.bearerClient(tok.String()), e.url)
	if code, msg := call(t, e.admin, http.MethodDelete, other+"/api/v1/tokens/"+tok.ID, nil); code != http.StatusOK {
		t.Fatalf("revoke the token on the other server: %d %s", code, msg)
	}
	endsWithin(t, ended, time.Second, "a bearer token revoked on another server")

	// A certificate that runs out: the watch ends with it.
	e.user(t, "brief", viewer)
	short := issue(t, e.ca, pki.UserName("brief"), []string{pki.GroupUsers},
		&pki.Request{URIs: []*url.URL{pki.UserURI("brief", e.uid(t, "users", "brief"))}}, 1500*time.Millisecond)
	ended = openWatch(t, e.clientAs(short), e.url)
	endsWithin(t, ended, time.Until(short.Leaf().NotAfter)+time.Second, "a certificate that expired")
}

// TestAdminCertificatesAreRevocable: an admin certificate names a User;
// deleting it refuses the certificate and ends its watch, and one that
// names no User (as every admin.conf did before) is refused, saying what
// to use instead.
func TestAdminCertificatesAreRevocable(t *testing.T) {
	e := startTLS(t)
	legacy := e.clientAs(issue(t, e.ca, "admin", []string{pki.GroupAdmins}, nil, time.Hour))
	if code, msg := call(t, legacy, http.MethodGet, e.url+"/api/v1/namespaces", nil); code != http.StatusUnauthorized || !strings.Contains(msg, "names no User, so it cannot be revoked") || !strings.Contains(msg, "admin.conf") {
		t.Errorf("an admin certificate that names no User: %d %q, want 401 naming admin.conf", code, msg)
	}

	cluster := []api.RoleBinding{{Role: api.RoleClusterAdmin}}
	u := &api.User{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindUser}, Metadata: api.ObjectMeta{Name: "admin-s2"}, Spec: api.UserSpec{Roles: cluster}}
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/users", u); code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, msg)
	}
	admin2 := e.clientAs(issue(t, e.ca, pki.UserName("admin-s2"), []string{pki.GroupUsers, pki.GroupAdmins},
		&pki.Request{URIs: []*url.URL{pki.UserURI("admin-s2", e.uid(t, "users", "admin-s2"))}}, time.Hour))
	if code, msg := call(t, admin2, http.MethodGet, e.url+"/api/v1/nodes", nil); code != http.StatusOK {
		t.Fatalf("an admin certificate naming its User: %d %s", code, msg)
	}
	ended := openWatch(t, admin2, e.url)
	if code, msg := call(t, e.admin, http.MethodDelete, e.url+"/api/v1/users/admin-s2", nil); code != http.StatusOK {
		t.Fatalf("delete the admin user: %d %s", code, msg)
	}
	endsWithin(t, ended, time.Second, "a revoked admin certificate")
	if code, msg := call(t, admin2, http.MethodGet, e.url+"/api/v1/nodes", nil); code != http.StatusUnauthorized || !strings.Contains(msg, `user "admin-s2" was revoked`) {
		t.Errorf("a revoked admin certificate: %d %q, want 401 revoked", code, msg)
	}
}
