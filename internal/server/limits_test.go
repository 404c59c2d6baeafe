package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/server"
)

// TestUserOverTheRateGets429: past its burst a user's requests are 429s
// with a Retry-After, and other identities go on.
func TestUserOverTheRateGets429(t *testing.T) {
	e := startTLS(t, func(c *server.Config) {
		c.Limits = server.Limits{User: server.Rate{PerSecond: 0.01, Burst: 5}}
	})
	dee := e.user(t, "dee", api.RoleBinding{Role: api.RoleDeployer, Namespace: "default"})
	for i := range 5 {
		if code, msg := call(t, dee, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, code, msg)
		}
	}
	resp, err := dee.Get(e.url + "/api/v1/namespaces/default/apps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("6th request: %d, Retry-After %q; want 429 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	code, msg := call(t, dee, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, `user dee sends more than 0.01 requests a second (5 at once)`) {
		t.Errorf("7th request: %d %s; want 429 naming the user and its rate", code, msg)
	}
	if code, msg := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusOK {
		t.Errorf("the cluster-admin meanwhile: %d %s; want 200 (its own bucket)", code, msg)
	}
}

// TestUserOverTheWatchLimitGets429: a user holding its most streams open
// gets a 429 for one more, and may open one again once one closes.
func TestUserOverTheWatchLimitGets429(t *testing.T) {
	e := startTLS(t, func(c *server.Config) { c.Limits = server.Limits{UserStreams: 2} })
	vic := e.user(t, "vic", api.RoleBinding{Role: api.RoleViewer, Namespace: "default"})
	open := func() (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/api/v1/namespaces/default/apps?watch=1", nil)
		resp, err := vic.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return resp, func() { cancel(); resp.Body.Close() }
	}
	var closers []context.CancelFunc
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i := range 2 {
		resp, stop := open()
		closers = append(closers, stop)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch %d: %d; want 200", i+1, resp.StatusCode)
		}
	}
	resp, stop := open()
	stop()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd watch: %d (Retry-After %q); want 429 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	code, msg := call(t, vic, http.MethodGet, e.url+"/api/v1/namespaces/default/apps?watch=1", nil)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "user vic has 2 watches, log follows and exec sessions open, the most one identity may") {
		t.Errorf("3rd watch: %d %s; want 429 saying how many are open", code, msg)
	}
	if code, _ := call(t, vic, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusOK {
		t.Errorf("a list meanwhile: %d; want 200 (lists are not streams)", code)
	}
	closers[0]()
	closers = closers[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, stop := open()
		closers = append(closers, stop)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing a watch, a new one is still %d", resp.StatusCode)
		}
		stop()
		closers = closers[:len(closers)-1]
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailingAddressIsThrottled: past its burst of failed joins and bad
// credentials an address gets 429s, which are not audited, so a flood
// cannot rotate the audit log away; a valid certificate from the same
// address goes on.
func TestFailingAddressIsThrottled(t *testing.T) {
	e := startTLS(t, func(c *server.Config) { c.Limits = server.Limits{Failed: server.Rate{PerSecond: 0.01, Burst: 3}} })
	badJoin := `{"token":"shoal1.nope","node":"n1","publicKey":"x"}`
	for i := range 3 {
		if code, msg := call(t, e.anon, http.MethodPost, e.url+"/api/v1/join", badJoin); code == http.StatusOK || code == http.StatusTooManyRequests {
			t.Fatalf("bad join %d: %d %s; want it refused as bad", i+1, code, msg)
		}
	}
	audited := strings.Count(e.audit.String(), "\n")
	for i := range 5 {
		code, msg := call(t, e.anon, http.MethodPost, e.url+"/api/v1/join", badJoin)
		if code != http.StatusTooManyRequests || !strings.Contains(msg, "failed to authenticate too often") {
			t.Fatalf("bad join %d past the burst: %d %s; want 429", i+4, code, msg)
		}
	}
	if code, _ := call(t, e.anon, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusTooManyRequests {
		t.Errorf("an unauthenticated list from the address: %d; want 429", code)
	}
	if n := strings.Count(e.audit.String(), "\n"); n != audited {
		t.Errorf("the audit log grew by %d lines during the flood; want 0", n-audited)
	}
	if code, msg := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/default/apps", nil); code != http.StatusOK {
		t.Errorf("a valid certificate from the same address: %d %s; want 200", code, msg)
	}
}
