package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
	"github.com/shoal-dev/shoal/internal/runtime/fake"
)

// TestProbeChecks runs each kind of check once against real listeners on
// 127.0.0.1 and a fake driver's Exec.
func TestProbeChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/ok":
			fmt.Fprintln(w, "ok")
		case "/fail":
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/fail", http.StatusFound)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	closed := closedPort(t)

	drv := fake.New()
	if _, err := drv.Create(t.Context(), runtime.Spec{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := drv.Start(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	var execTimeout atomic.Int64
	drv.ExecFunc = func(ctx context.Context, _ string, cmd []string, timeout time.Duration) (int, string, error) {
		execTimeout.Store(int64(timeout))
		switch cmd[0] {
		case "true":
			return 0, "fine\n", nil
		case "check":
			return 1, "boom\n\tmore  detail\n", nil
		case "sleep":
			<-ctx.Done()
			return -1, "", fmt.Errorf("exec %q: %w", cmd[0], ctx.Err())
		}
		return -1, "", fmt.Errorf(`container "c": exec %q: exec: %q: executable file not found in $PATH`, cmd[0], cmd[0])
	}
	target := probeTarget{
		host:  func() string { return "127.0.0.1" },
		ports: []api.Port{{Name: "http", ContainerPort: int32(port)}, {ContainerPort: int32(closed)}},
		exec: func(ctx context.Context, cmd []string, timeout time.Duration) (int, string, error) {
			return drv.Exec(ctx, "c", cmd, timeout)
		},
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	httpProbe := func(port, path string, lo, hi int32) *api.Probe {
		return &api.Probe{HTTP: &api.HTTPProbe{Port: api.PortRef(port), Path: path, MinStatus: lo, MaxStatus: hi}}
	}
	const timeout = 300 * time.Millisecond

	tests := []struct {
		name  string
		probe *api.Probe
		want  string // "" passes; else the failure, exactly
	}{
		{"http on a named port, path defaults to /", httpProbe("http", "", 0, 0), ""},
		{"http on a port number", httpProbe(strconv.Itoa(port), "/ok", 0, 0), ""},
		{"http 503 is outside the default 200-399", httpProbe("http", "/fail", 0, 0),
			"GET http://" + addr(port) + "/fail: status 503, want 200-399"},
		{"http redirect is an answer, not followed", httpProbe("http", "/moved", 0, 0), ""},
		{"http redirect outside a 200-299 range", httpProbe("http", "/moved", 200, 299),
			"GET http://" + addr(port) + "/moved: status 302, want 200-299"},
		{"http 204 outside an exact 200", httpProbe("http", "/empty", 200, 200),
			"GET http://" + addr(port) + "/empty: status 204, want 200-200"},
		{"http 503 inside a range that allows it", httpProbe("http", "/fail", 500, 599), ""},
		{"http times out", httpProbe("http", "/slow", 0, 0),
			"GET http://" + addr(port) + "/slow: timed out after 300ms"},
		{"http refused", httpProbe(strconv.Itoa(closed), "/", 0, 0),
			"GET http://" + addr(closed) + "/: connection refused"},
		{"http on a port number the template does not declare", httpProbe(strconv.Itoa(closed), "/", 0, 0),
			"GET http://" + addr(closed) + "/: connection refused"},
		{"http on a port name the template does not declare", httpProbe("admin", "/", 0, 0),
			`port "admin" is not a port number or a port name the template declares`},
		{"tcp open", &api.Probe{TCP: &api.TCPProbe{Port: "http"}}, ""},
		{"tcp refused", &api.Probe{TCP: &api.TCPProbe{Port: api.PortRef(strconv.Itoa(closed))}},
			"connect to " + addr(closed) + ": connection refused"},
		{"exec exits 0", &api.Probe{Exec: &api.ExecProbe{Command: []string{"true"}}}, ""},
		{"exec exits non-zero, output on one line", &api.Probe{Exec: &api.ExecProbe{Command: []string{"check", "--deep"}}},
			`command "check" exited with code 1: boom more detail`},
		{"exec of a missing command", &api.Probe{Exec: &api.ExecProbe{Command: []string{"nope"}}},
			`command "nope": container "c": exec "nope": exec: "nope": executable file not found in $PATH`},
		{"exec times out", &api.Probe{Exec: &api.ExecProbe{Command: []string{"sleep"}}},
			`command "sleep": timed out after 300ms`},
		{"no kind", &api.Probe{}, "probe has no http, tcp or exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := target.check(tt.probe, timeout)
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			start := time.Now()
			err := check(ctx)
			took := time.Since(start)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("check failed: %v; want a pass", err)
			case tt.want != "" && err == nil:
				t.Errorf("check passed; want failure %q", tt.want)
			case tt.want != "" && err.Error() != tt.want:
				t.Errorf("check failed with\n  %q\nwant\n  %q", err, tt.want)
			}
			if took > timeout+time.Second {
				t.Errorf("check took %v; the timeout is %v", took, timeout)
			}
		})
	}
	if got := time.Duration(execTimeout.Load()); got != timeout {
		t.Errorf("Exec got timeout %v, want the probe's %v", got, timeout)
	}
}

// closedPort is a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestNewProbeSpecDefaults(t *testing.T) {
	s := newProbeSpec(&api.Probe{TCP: &api.TCPProbe{Port: "80"}}, probeTarget{})
	if s.initialDelay != 0 || s.period != 2*time.Second || s.timeout != time.Second || s.threshold != 3 {
		t.Errorf("defaults: delay %v period %v timeout %v threshold %d; want 0, 2s, 1s, 3", s.initialDelay, s.period, s.timeout, s.threshold)
	}
	s = newProbeSpec(&api.Probe{TCP: &api.TCPProbe{Port: "80"}, InitialDelaySeconds: 5, PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: 1}, probeTarget{})
	if s.initialDelay != 5*time.Second || s.period != 10*time.Second || s.timeout != 3*time.Second || s.threshold != 1 {
		t.Errorf("set: delay %v period %v timeout %v threshold %d; want 5s, 10s, 3s, 1", s.initialDelay, s.period, s.timeout, s.threshold)
	}
	if newProbeSpec(nil, probeTarget{}) != nil {
		t.Error("a nil probe gave a spec")
	}
}

// TestVerdict is the threshold rule alone: readiness starts failing
// (not ready until a pass), liveness starts passing.
func TestVerdict(t *testing.T) {
	tests := []struct {
		name      string
		start     bool
		threshold int
		checks    string // p: pass, f: fail
		want      bool
		changes   int
	}{
		{"readiness: not ready before any check", false, 3, "", false, 0},
		{"readiness: failures before the first pass keep it not ready", false, 3, "ffff", false, 0},
		{"readiness: ready after the first pass", false, 3, "p", true, 1},
		{"readiness: ready after failures then a pass", false, 3, "ffp", true, 1},
		{"readiness: threshold-1 failures keep it ready", false, 3, "pff", true, 1},
		{"readiness: threshold failures make it not ready", false, 3, "pfff", false, 2},
		{"readiness: a pass resets the count", false, 3, "pffpff", true, 1},
		{"readiness: ready again after a pass", false, 3, "pfffp", true, 3},
		{"readiness: threshold 1 follows each check", false, 1, "pfpf", false, 4},
		{"liveness: alive before any check", true, 3, "", true, 0},
		{"liveness: threshold-1 failures keep it alive", true, 3, "ff", true, 0},
		{"liveness: threshold failures fail it", true, 3, "fff", false, 1},
		{"liveness: a pass resets the count", true, 3, "ffpff", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verdict{threshold: tt.threshold, passing: tt.start}
			changes := 0
			for _, c := range tt.checks {
				if v.observe(c == 'p') {
					changes++
				}
			}
			if v.passing != tt.want || changes != tt.changes {
				t.Errorf("after %q: passing %v with %d changes, want %v with %d", tt.checks, v.passing, changes, tt.want, tt.changes)
			}
		})
	}
}

// fakeClock hands each wait of the probe loops to the test, which fires it
// when it wants the loop to go on. Now stands still.
type fakeClock struct {
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan fakeWait, 16)}
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// next returns the loop's next wait: the loop asks for it once it has
// recorded the check before, so the prober's state is settled.
func (c *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("the probe loop did not wait again within 5s")
		return fakeWait{}
	}
}

// noWait checks that the loop has ended: it asks for no further wait.
func (c *fakeClock) noWait(t *testing.T) {
	t.Helper()
	select {
	case w := <-c.waits:
		t.Fatalf("the probe loop waits %v again; want it ended", w.d)
	case <-time.After(100 * time.Millisecond):
	}
}

// scripted is a check that returns the next of its results, then passes.
type scripted struct {
	mu      sync.Mutex
	results []error
	calls   int
}

func (s *scripted) check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.results) == 0 {
		return nil
	}
	err := s.results[0]
	s.results = s.results[1:]
	return err
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func fails(n int, why string) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = errors.New(why)
	}
	return out
}

// counter counts notifications.
type counter struct{ n atomic.Int32 }

func (c *counter) notify()    { c.n.Add(1) }
func (c *counter) get() int32 { return c.n.Load() }

func TestProberReadiness(t *testing.T) {
	clk := newFakeClock()
	script := &scripted{results: append(append([]error{nil}, fails(3, "status 503")...), nil)}
	var notes counter
	p := startProber(t.Context(), proberConfig{
		readiness: &probeSpec{initialDelay: 5 * time.Second, period: 2 * time.Second, timeout: time.Second, threshold: 3, check: script.check},
		notify:    notes.notify,
		clock:     clk,
	})
	defer p.stop()

	state := func() string {
		return fmt.Sprintf("ready=%v reason=%q checks=%d notifications=%d", p.isReady(), p.readinessFailure(), script.count(), notes.get())
	}
	expect := func(step, want string) {
		t.Helper()
		if got := state(); got != want {
			t.Fatalf("%s: %s, want %s", step, got, want)
		}
	}

	w := clk.next(t)
	if w.d != 5*time.Second {
		t.Fatalf("first wait %v, want the initial delay 5s", w.d)
	}
	expect("during the initial delay", `ready=false reason="" checks=0 notifications=0`)
	steps := []struct{ step, want string }{
		{"first check passes", `ready=true reason="" checks=1 notifications=1`},
		{"one failure", `ready=true reason="" checks=2 notifications=1`},
		{"two failures", `ready=true reason="" checks=3 notifications=1`},
		{"three failures", `ready=false reason="status 503" checks=4 notifications=2`},
		{"a pass again", `ready=true reason="" checks=5 notifications=3`},
	}
	for _, s := range steps {
		w.fire <- clk.now
		w = clk.next(t)
		if w.d != 2*time.Second {
			t.Fatalf("%s: then waits %v, want the period 2s", s.step, w.d)
		}
		expect(s.step, s.want)
	}
	p.stop()
	if p.isReady() != true {
		t.Error("stop changed readiness")
	}
}

func TestProberLiveness(t *testing.T) {
	clk := newFakeClock()
	script := &scripted{results: []error{errors.New("refused"), nil, errors.New("refused"), errors.New("status 500")}}
	var notes counter
	p := startProber(t.Context(), proberConfig{
		liveness: &probeSpec{period: time.Second, timeout: time.Second, threshold: 2, check: script.check},
		notify:   notes.notify,
		clock:    clk,
	})
	defer p.stop()

	// No initial delay: the first check runs at once, and each is
	// followed by a wait of one period.
	for i, want := range []string{"", "", ""} {
		w := clk.next(t)
		if w.d != time.Second {
			t.Fatalf("wait after check %d: %v, want 1s", i+1, w.d)
		}
		if got := p.livenessFailure(); got != want || notes.get() != 0 {
			t.Fatalf("after check %d: failure %q with %d notifications, want none", i+1, got, notes.get())
		}
		w.fire <- clk.now
	}
	// The fourth check is the second failure in a row: liveness fails,
	// the worker is told, and the loop ends.
	clk.noWait(t)
	if got := p.livenessFailure(); got != "status 500" || notes.get() != 1 {
		t.Fatalf("after two failures in a row: failure %q with %d notifications, want %q and 1", got, notes.get(), "status 500")
	}
	if script.count() != 4 {
		t.Errorf("%d checks, want 4", script.count())
	}
	if p.isReady() {
		t.Error("a prober without a readiness probe says ready")
	}
}

func TestProberInitialDelayCountsFromTheRunStart(t *testing.T) {
	for _, tt := range []struct {
		name      string
		runAge    time.Duration
		wantFirst time.Duration // 0: the first check runs at once
	}{
		{"a new run waits the whole delay", 0, 10 * time.Second},
		{"a run 4s old waits the rest", 4 * time.Second, 6 * time.Second},
		{"a run past the delay is checked at once", time.Minute, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			script := &scripted{}
			p := startProber(t.Context(), proberConfig{
				readiness: &probeSpec{initialDelay: 10 * time.Second, period: 3 * time.Second, timeout: time.Second, threshold: 1, check: script.check},
				startedAt: clk.now.Add(-tt.runAge),
				clock:     clk,
			})
			defer p.stop()
			w := clk.next(t)
			if tt.wantFirst == 0 {
				if w.d != 3*time.Second || script.count() != 1 {
					t.Fatalf("first wait %v after %d checks; want a check at once, then the period 3s", w.d, script.count())
				}
				return
			}
			if w.d != tt.wantFirst || script.count() != 0 {
				t.Fatalf("first wait %v after %d checks; want %v before any check", w.d, script.count(), tt.wantFirst)
			}
		})
	}
}

func TestProberStartsReadyForAReadyRun(t *testing.T) {
	clk := newFakeClock()
	script := &scripted{results: fails(2, "refused")}
	p := startProber(t.Context(), proberConfig{
		readiness: &probeSpec{period: time.Second, timeout: time.Second, threshold: 2, check: script.check},
		ready:     true,
		clock:     clk,
	})
	defer p.stop()
	if !p.isReady() {
		t.Fatal("a run found ready is not ready before its first check")
	}
	// No initial delay: the first check runs at once.
	w := clk.next(t)
	if !p.isReady() || script.count() != 1 {
		t.Fatalf("after %d checks, ready=%v; want one failure, below the threshold, to leave it ready", script.count(), p.isReady())
	}
	w.fire <- clk.now
	clk.next(t)
	if p.isReady() || p.readinessFailure() != "refused" {
		t.Fatalf("after 2 failures: ready=%v reason %q; want not ready, refused", p.isReady(), p.readinessFailure())
	}
}

// TestProberHTTP runs the prober on the real clock against a server whose
// health the test switches.
func TestProberHTTP(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	host, _, _ := net.SplitHostPort(u.Host)
	target := probeTarget{host: func() string { return host }, ports: []api.Port{{Name: "web", ContainerPort: int32(port)}}}
	spec := &probeSpec{period: 20 * time.Millisecond, timeout: time.Second, threshold: 2,
		check: target.check(&api.Probe{HTTP: &api.HTTPProbe{Port: "web", Path: "/healthz"}}, time.Second)}
	kicks := make(chan struct{}, 100)
	p := startProber(t.Context(), proberConfig{readiness: spec, notify: func() { kicks <- struct{}{} }})
	defer p.stop()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for !cond() {
			select {
			case <-kicks:
			case <-time.After(10 * time.Millisecond):
			case <-deadline:
				t.Fatalf("waited 5s for %s; ready=%v reason=%q", what, p.isReady(), p.readinessFailure())
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if p.isReady() {
		t.Fatal("ready while the server answers 500")
	}
	if why := p.readinessFailure(); !strings.HasSuffix(why, "/healthz: status 500, want 200-399") {
		t.Errorf("reason %q, want the status", why)
	}
	healthy.Store(true)
	waitUntil("ready", func() bool { return p.isReady() && p.readinessFailure() == "" })
	healthy.Store(false)
	waitUntil("not ready", func() bool { return !p.isReady() })
}
