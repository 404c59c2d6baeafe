package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/image/imagetest"
)

// pushAs pushes an image tarball tagged ref whose content is payload.
func (e *tlsEnv) pushAs(t *testing.T, hc *http.Client, ref, payload string) (int, string) {
	t.Helper()
	return call(t, hc, http.MethodPost, e.url+"/api/v1/images", string(imagetest.Tarball(t, ref, payload)))
}

// digestOf is the digest repo:tag points at, as a node pulling it sees it.
func (e *tlsEnv) digestOf(t *testing.T, repo, tag string) string {
	t.Helper()
	resp, err := e.admin.Head(e.url + "/v2/" + repo + "/manifests/" + tag)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return resp.Header.Get("Docker-Content-Digest")
}

func (e *tlsEnv) app(t *testing.T, ns, name string) *api.App {
	t.Helper()
	code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/"+ns+"/apps/"+name, nil)
	if code != http.StatusOK {
		t.Fatalf("get app %s/%s: %d %s", ns, name, code, body)
	}
	var a api.App
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

func (e *tlsEnv) applyAs(t *testing.T, hc *http.Client, doc string) (int, string, []api.ApplyResult) {
	t.Helper()
	code, body := call(t, hc, http.MethodPost, e.url+"/api/v1/apply", doc)
	var res api.ApplyResponse
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatal(err)
		}
	}
	return code, body, res.Results
}

// TestImageRepositoriesBelongToNamespaces: a deployer pushes to its own
// namespace's repositories only; a push to another's is a 403 that says
// whose it is and what to do instead, and the tag stays where it was.
func TestImageRepositoriesBelongToNamespaces(t *testing.T) {
	e := startTLS(t)
	for _, ns := range []string{"payments", "web"} {
		if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", namespaceDoc(ns)); code != http.StatusOK {
			t.Fatalf("namespace %s: %d %s", ns, code, msg)
		}
	}
	pat := e.user(t, "pat", api.RoleBinding{Role: api.RoleDeployer, Namespace: "payments"})
	mal := e.user(t, "mal", api.RoleBinding{Role: api.RoleDeployer, Namespace: "web"})
	vic := e.user(t, "vic", api.RoleBinding{Role: api.RoleViewer, Namespace: "payments"})

	if code, msg := e.pushAs(t, e.admin, "shoal.local/hello:v1", "hello"); code != http.StatusOK {
		t.Fatalf("admin pushes hello:v1: %d %s", code, msg)
	}
	if code, msg := e.pushAs(t, pat, "shoal.local/payments/api:v3", "payments' own"); code != http.StatusOK {
		t.Fatalf("payments' deployer pushes payments/api:v3: %d %s", code, msg)
	}
	hello, api3 := e.digestOf(t, "hello", "v1"), e.digestOf(t, "payments/api", "v3")

	for _, tc := range []struct {
		name, ref, want string
	}{
		{"another namespace's repository", "shoal.local/payments/api:v3",
			`user "mal" may not push to repository "payments/api": it belongs to namespace "payments"`},
		{"a repository of the default namespace", "shoal.local/hello:v1",
			`user "mal" may not push to repository "hello": it belongs to namespace "default"`},
	} {
		code, msg := e.pushAs(t, mal, tc.ref, "the attacker's")
		if code != http.StatusForbidden || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "shoal.local/NAMESPACE/") {
			t.Errorf("%s: %d %s, want 403 %q and what to do instead", tc.name, code, msg, tc.want)
		}
	}
	if code, msg := e.pushAs(t, vic, "shoal.local/payments/api:v3", "a viewer's"); code != http.StatusForbidden {
		t.Errorf("a viewer's push: %d %s, want 403", code, msg)
	}
	if got := e.digestOf(t, "hello", "v1"); got != hello {
		t.Errorf("hello:v1 after refused pushes: %s, want %s", got, hello)
	}
	if got := e.digestOf(t, "payments/api", "v3"); got != api3 {
		t.Errorf("payments/api:v3 after refused pushes: %s, want %s", got, api3)
	}
	if code, msg := e.pushAs(t, mal, "shoal.local/web/api:v3", "web's own"); code != http.StatusOK {
		t.Errorf("web's deployer pushes web/api:v3: %d %s", code, msg)
	}
}
