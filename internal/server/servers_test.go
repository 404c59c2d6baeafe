package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestServerListShowsEtcdURLsToServersOnly: nodes, users and admins get
// the servers' API URLs (for failover) but no etcd URL; servers get both.
func TestServerListShowsEtcdURLsToServersOnly(t *testing.T) {
	e := startTLS(t)
	node, code, msg := e.join(t, "n1", e.token(t, api.TokenRoleAgent, time.Hour).String())
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, msg)
	}
	viewer := e.user(t, "v", api.RoleBinding{Role: api.RoleViewer, Namespace: "default"})
	for name, hc := range map[string]*http.Client{"a node": node, "a user": viewer, "the admin": e.admin} {
		code, body := call(t, hc, http.MethodGet, e.url+"/api/v1/servers", nil)
		if code != http.StatusOK || !strings.Contains(body, `"name": "shoal"`) {
			t.Errorf("%s lists servers: %d %s", name, code, body)
		}
		if strings.Contains(body, "peerURL") || strings.Contains(body, "127.0.0.1") {
			t.Errorf("%s learns an etcd URL: %s", name, body)
		}
	}
	code, body := call(t, e.server, http.MethodGet, e.url+"/api/v1/servers", nil)
	if code != http.StatusOK || !strings.Contains(body, `"peerURL": "http://127.0.0.1:`) {
		t.Errorf("a server lists servers: %d %s, want the peer URL", code, body)
	}
}
