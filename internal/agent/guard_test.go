package agent

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/internal/pki"
)

// TestGuard: logs and exec only for servers (users go through a server,
// which checks revocation and audits); metrics for admins too.
func TestGuard(t *testing.T) {
	a := &Agent{cfg: Config{TLS: &tls.Config{}}}
	h := a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	as := func(name string, groups ...string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: name, Organization: groups}}
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	server := as("server:s1", pki.GroupServers)
	admin := as(pki.UserName("admin-s1"), pki.GroupUsers, pki.GroupAdmins)
	node := as(pki.NodeName("n2"), pki.GroupNodes)
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		method string
		path   string
		want   int
	}{
		{"server logs", server, http.MethodGet, "/logs/web/a-1", http.StatusOK},
		{"server exec", server, http.MethodPost, "/exec/web/a-1", http.StatusOK},
		{"server metrics", server, http.MethodGet, "/metrics", http.StatusOK},
		{"admin metrics", admin, http.MethodGet, "/metrics", http.StatusOK},
		{"admin logs", admin, http.MethodGet, "/logs/web/a-1", http.StatusForbidden},
		{"admin exec", admin, http.MethodPost, "/exec/web/a-1", http.StatusForbidden},
		{"another node's metrics", node, http.MethodGet, "/metrics", http.StatusForbidden},
		{"another node's logs", node, http.MethodGet, "/logs/web/a-1", http.StatusForbidden},
		{"no certificate", nil, http.MethodGet, "/metrics", http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.TLS = tc.tls
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.want)
		}
	}
}
