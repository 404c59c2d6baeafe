package netproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// TestPublishedPortZeroFailedRequests sends 2,000 requests, each on a new
// connection, to a published port while endpoints leave, come back, appear
// and die, with a dead endpoint in the set all along. Not one may fail.
func TestPublishedPortZeroFailedRequests(t *testing.T) {
	const (
		total   = 2000
		workers = 8
		bound   = 60 * time.Second
	)
	servers := map[string]*httptest.Server{}
	hits := map[string]*atomic.Int32{}
	for _, name := range []string{"b0", "b1", "b2", "b3"} {
		n := &atomic.Int32{}
		hits[name] = n
		servers[name] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			fmt.Fprint(w, name)
		}))
		t.Cleanup(servers[name].Close)
	}
	dead := deadAddr(t)
	pub := testutil.FreePort(t)
	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t), PublishAddress: "127.0.0.1", PortRange: anyPort, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	app := testApp("default", "web", "", 8080, int32(pub))
	// setReady applies every instance, ready or not, as the watch would.
	setReady := func(ready ...string) {
		var insts []*api.Instance
		for _, name := range []string{"b0", "b1", "b2", "b3", "dead"} {
			addr := dead
			if s := servers[name]; s != nil {
				addr = strings.TrimPrefix(s.URL, "http://")
			}
			in := testInstance("default", "web", "web-"+name, addr)
			in.Status.Ready = false
			for _, r := range ready {
				in.Status.Ready = in.Status.Ready || r == name
			}
			insts = append(insts, in)
		}
		p.apply(loopbackNodes, []*api.App{app}, insts)
	}
	setReady("b0", "b1", "b2", "dead")
	startProxy(t, p)
	url := "http://127.0.0.1:" + strconv.Itoa(pub) + "/"
	waitDial(t, "127.0.0.1:"+strconv.Itoa(pub))

	// A kill happens while no request is in flight: a request already
	// inside a dying instance is lost to any proxy. What must not fail is
	// every request after it, while the dead instance is still "ready".
	var quiesce sync.RWMutex
	kill := func(name string) func() {
		return func() {
			quiesce.Lock()
			defer quiesce.Unlock()
			servers[name].Close()
		}
	}
	steps := []struct {
		at   int32
		what string
		do   func()
	}{
		{200, "b1 not ready", func() { setReady("b0", "b2", "dead") }},
		{500, "b3 added", func() { setReady("b0", "b2", "b3", "dead") }},
		{800, "b2 killed, still ready", kill("b2")},
		{1100, "b2 not ready", func() { setReady("b0", "b3", "dead") }},
		{1400, "b1 ready again", func() { setReady("b0", "b1", "b3", "dead") }},
		{1700, "b0 killed, still ready", kill("b0")},
	}

	start := time.Now()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var next, done, failed atomic.Int32
	var errMu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total && time.Since(start) < bound {
				quiesce.RLock()
				err := get(hc, url)
				quiesce.RUnlock()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
				}
				done.Add(1)
			}
		}()
	}
	var ran []string
	for _, s := range steps {
		for done.Load() < s.at && time.Since(start) < bound {
			time.Sleep(time.Millisecond)
		}
		s.do()
		ran = append(ran, s.what)
	}
	wg.Wait()
	hc.CloseIdleConnections()

	t.Logf("%d requests in %v; hits %s", done.Load(), time.Since(start).Round(time.Millisecond), hitCounts(hits))
	if n := done.Load(); n != total {
		t.Fatalf("%d of %d requests ran within %v", n, total, bound)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed, want 0; first errors: %v", n, total, errs[:min(len(errs), 5)])
	}
	if len(ran) != len(steps) {
		t.Errorf("ran steps %v, want all %d", ran, len(steps))
	}
	for _, name := range []string{"b0", "b1", "b2", "b3"} {
		if hits[name].Load() == 0 {
			t.Errorf("%s served no request; want every backend used while it was ready (%s)", name, hitCounts(hits))
		}
	}
}

func get(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "b") {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, b)
	}
	return nil
}

func hitCounts(hits map[string]*atomic.Int32) string {
	var parts []string
	for _, name := range []string{"b0", "b1", "b2", "b3"} {
		parts = append(parts, fmt.Sprintf("%s=%d", name, hits[name].Load()))
	}
	return strings.Join(parts, " ")
}
