package netproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// fakeAPI speaks the list and watch wire format of the shoal server for
// Nodes, Apps, Instances and Namespaces, and can be taken down.
type fakeAPI struct {
	mu    sync.Mutex
	down  bool
	nodes []*api.Node
	apps  []*api.App
	insts []*api.Instance
	nss   []*api.Namespace
	cut   chan struct{}          // closed to break every open watch
	lines map[string]chan []byte // watch lines per plural
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{cut: make(chan struct{}), lines: map[string]chan []byte{"apps": make(chan []byte, 16), "instances": make(chan []byte, 16), "nodes": make(chan []byte, 16), "namespaces": make(chan []byte, 16)}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	plural := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	f.mu.Lock()
	down, cut := f.down, f.cut
	var items any = f.apps
	switch plural {
	case "instances":
		items = f.insts
	case "nodes":
		items = f.nodes
	case "namespaces":
		items = f.nss
	}
	body, _ := json.Marshal(map[string]any{"items": items, "revision": 1})
	f.mu.Unlock()
	if down || f.lines[plural] == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code":503,"reason":"Unavailable","message":"down"}`))
		return
	}
	if r.URL.Query().Get("watch") != "1" {
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-cut:
			return
		case line := <-f.lines[plural]:
			_, _ = w.Write(append(line, '\n'))
			w.(http.Flusher).Flush()
		}
	}
}

func (f *fakeAPI) event(t *testing.T, typ string, obj api.Object) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "object": obj, "revision": 2})
	if err != nil {
		t.Fatal(err)
	}
	plural := "apps"
	switch obj.(type) {
	case *api.Instance:
		plural = "instances"
	case *api.Node:
		plural = "nodes"
	case *api.Namespace:
		plural = "namespaces"
	}
	f.lines[plural] <- b
}

func (f *fakeAPI) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if down {
		close(f.cut)
		f.cut = make(chan struct{})
	}
}

// waitEndpoints waits until the App's endpoints are want and returns how
// long that took.
func waitEndpoints(t *testing.T, p *Proxy, want []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := p.Endpoints("default", "web")
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("Endpoints = %v after %v, want %v", got, within, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestWatchFollowsAndSurvivesTheServer: endpoints follow watch events at
// once, stay while the server is away, and follow the next list.
func TestWatchFollowsAndSurvivesTheServer(t *testing.T) {
	f, srv := newFakeAPI(t)
	inst := testInstance("default", "web", "web-1", "10.0.0.5:8080")
	f.nodes = []*api.Node{testNode(testNodeName, "10.0.0.0/24")}
	f.apps = []*api.App{testApp("default", "web", "10.96.0.10", 80, 0)}
	f.insts = []*api.Instance{inst}

	p, err := newProxy(Config{Client: client.New(srv.URL), BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	startProxy(t, p)
	waitEndpoints(t, p, []string{"10.0.0.5:8080"}, 5*time.Second)

	notReady := *inst
	notReady.Status.Ready = false
	f.event(t, "MODIFIED", &notReady)
	if d := waitEndpoints(t, p, nil, time.Second); d > 200*time.Millisecond {
		t.Errorf("readiness loss took %v to reach the endpoints, want well under a second", d)
	}
	f.event(t, "MODIFIED", inst)
	waitEndpoints(t, p, []string{"10.0.0.5:8080"}, time.Second)

	f.setDown(true)
	time.Sleep(700 * time.Millisecond) // several failed relists
	if got := p.Endpoints("default", "web"); !slices.Equal(got, []string{"10.0.0.5:8080"}) {
		t.Fatalf("Endpoints while the server is down = %v, want the last ones [10.0.0.5:8080]", got)
	}

	f.mu.Lock()
	f.insts = []*api.Instance{testInstance("default", "web", "web-2", "10.0.0.6:8080")}
	f.mu.Unlock()
	f.setDown(false)
	waitEndpoints(t, p, []string{"10.0.0.6:8080"}, 10*time.Second)
}
