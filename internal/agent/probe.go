package agent

// Health probes. While an instance's container runs, one prober checks it
// with the template's readiness and liveness probes, each on its own
// goroutine:
//
//	run starts ─▶ initialDelay ─▶ check ─▶ period ─▶ check ─▶ period ─▶ …
//	                                (timeout each)
//
//	readiness: not ready ──first pass──▶ ready ──failureThreshold failures in a row──▶ not ready
//	liveness:  alive ──failureThreshold failures in a row──▶ failed: the prober stops,
//	           and the worker restarts the container (its new run gets a new prober)
//
// The prober only judges; the worker acts. A change kicks the worker, which
// writes status.ready (readiness) or restarts the container (liveness).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/shoal-dev/shoal/internal/api"
)

// probeReasonMax bounds a failure reason (and the command output in it):
// it ends up in the instance's status message.
const probeReasonMax = 200

// A check probes once; nil means it passed, an error says why not.
type check func(ctx context.Context) error

// probeSpec is one api.Probe made ready to run against one container.
type probeSpec struct {
	initialDelay time.Duration
	period       time.Duration
	timeout      time.Duration
	threshold    int
	check        check
}

// probeTarget is what checks need of the container: its address (the
// status IP; tests use 127.0.0.1), its declared ports, and a way to run a
// command in it.
type probeTarget struct {
	host  func() string
	ports []api.Port
	exec  func(ctx context.Context, cmd []string, timeout time.Duration) (exitCode int, output string, err error)
}

// newProbeSpec resolves p against t, filling what defaults left out (an
// instance stored before they existed). A nil p gives nil.
func newProbeSpec(p *api.Probe, t probeTarget) *probeSpec {
	if p == nil {
		return nil
	}
	seconds := func(n, def int32) time.Duration {
		if n <= 0 {
			n = def
		}
		return time.Duration(n) * time.Second
	}
	s := &probeSpec{
		initialDelay: seconds(p.InitialDelaySeconds, 0),
		period:       seconds(p.PeriodSeconds, api.DefaultProbePeriodSeconds),
		timeout:      seconds(p.TimeoutSeconds, api.DefaultProbeTimeoutSeconds),
		threshold:    int(p.FailureThreshold),
	}
	if s.threshold <= 0 {
		s.threshold = int(api.DefaultProbeFailureThreshold)
	}
	s.check = t.check(p, s.timeout)
	return s
}

// check builds the check p describes.
func (t probeTarget) check(p *api.Probe, timeout time.Duration) check {
	port := func(ref api.PortRef) (int32, error) {
		if n, ok := api.ResolvePort(ref, t.ports); ok {
			return n, nil
		}
		return 0, fmt.Errorf("port %q is not a port number or a port name the template declares", string(ref))
	}
	switch {
	case p.HTTP != nil:
		n, err := port(p.HTTP.Port)
		if err != nil {
			return failing(err)
		}
		lo, hi := int(p.HTTP.MinStatus), int(p.HTTP.MaxStatus)
		if lo == 0 {
			lo = 200
		}
		if hi == 0 {
			hi = 399
		}
		return httpCheck(t.host, n, p.HTTP.Path, lo, hi, timeout)
	case p.TCP != nil:
		n, err := port(p.TCP.Port)
		if err != nil {
			return failing(err)
		}
		return tcpCheck(t.host, n, timeout)
	case p.Exec != nil && len(p.Exec.Command) > 0:
		return execCheck(t.exec, p.Exec.Command, timeout)
	}
	return failing(errors.New("probe has no http, tcp or exec"))
}

func failing(err error) check { return func(context.Context) error { return err } }

// probeClient neither reuses connections (each check is a new one, like
// the traffic it stands for), nor follows redirects (a 3xx is an answer),
// nor goes through a proxy from the agent's environment.
var probeClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, MaxResponseHeaderBytes: 64 << 10},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// httpCheck passes when GET path answers a status in [lo, hi].
func httpCheck(host func() string, port int32, path string, lo, hi int, timeout time.Duration) check {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return func(ctx context.Context) error {
		u := "http://" + net.JoinHostPort(host(), strconv.Itoa(int(port))) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %v", u, err)
		}
		req.Header.Set("User-Agent", "shoal-probe")
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %s", u, cause(ctx, err, timeout))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < lo || resp.StatusCode > hi {
			return fmt.Errorf("GET %s: status %d, want %d-%d", u, resp.StatusCode, lo, hi)
		}
		return nil
	}
}

// tcpCheck passes when a connection to port opens.
func tcpCheck(host func() string, port int32, timeout time.Duration) check {
	return func(ctx context.Context) error {
		addr := net.JoinHostPort(host(), strconv.Itoa(int(port)))
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect to %s: %s", addr, cause(ctx, err, timeout))
		}
		c.Close()
		return nil
	}
}

// execCheck passes when cmd, run in the container, exits 0.
func execCheck(exec func(context.Context, []string, time.Duration) (int, string, error), cmd []string, timeout time.Duration) check {
	return func(ctx context.Context) error {
		code, out, err := exec(ctx, cmd, timeout)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("command %q: timed out after %s", cmd[0], timeout)
		case err != nil:
			return fmt.Errorf("command %q: %v", cmd[0], err)
		case code != 0:
			if out = oneLine(out); out != "" {
				return fmt.Errorf("command %q exited with code %d: %s", cmd[0], code, out)
			}
			return fmt.Errorf("command %q exited with code %d", cmd[0], code)
		}
		return nil
	}
}

// cause says briefly why a connection failed: "connection refused",
// "timed out after 1s".
func cause(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out after " + timeout.String()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// oneLine makes command output fit a status message.
func oneLine(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), probeReasonMax)
}

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// verdict judges a probe from its checks: passing changes to false after
// threshold failures in a row, and to true on any pass.
type verdict struct {
	threshold int
	failures  int // in a row
	passing   bool
}

// observe records one check and reports whether passing changed.
func (v *verdict) observe(passed bool) (changed bool) {
	was := v.passing
	if passed {
		v.failures = 0
		v.passing = true
	} else {
		v.failures++
		if v.failures >= v.threshold {
			v.passing = false
		}
	}
	return v.passing != was
}

// failed says the probe failed threshold times in a row: what a reason is
// reported for.
func (v *verdict) failed() bool { return v.failures >= v.threshold }

// clock is time as the probe loops see it; tests step it by hand.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// proberConfig says what to probe for one run of a container.
type proberConfig struct {
	readiness, liveness *probeSpec
	// startedAt is when the run started: initial delays count from it.
	startedAt time.Time
	// ready is the readiness to start from: true only for a run that an
	// earlier agent had already found ready, so an agent restart does not
	// take traffic away from it.
	ready bool
	// notify is called, from a probe goroutine, when readiness or its
	// reason changes, or liveness fails.
	notify func()
	clock  clock
	log    *slog.Logger
}

// prober runs one container run's probes until stopped or liveness fails.
type prober struct {
	cfg    proberConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	state probeState
}

// probeState is what the worker reads of a prober.
type probeState struct {
	ready    bool
	notReady string // why not ready, once the readiness probe has failed
	dead     string // why liveness failed; "" while alive
}

// startProber starts the probes of cfg; stop ends them.
func startProber(ctx context.Context, cfg proberConfig) *prober {
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.notify == nil {
		cfg.notify = func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{cfg: cfg, cancel: cancel, state: probeState{ready: cfg.ready}}
	for _, s := range []struct {
		spec     *probeSpec
		liveness bool
		v        verdict
	}{
		{cfg.readiness, false, verdict{passing: cfg.ready}},
		{cfg.liveness, true, verdict{passing: true}},
	} {
		if s.spec == nil {
			continue
		}
		v := s.v
		v.threshold = s.spec.threshold
		// A re-adopted run may be past its initial delay already.
		delay := s.spec.initialDelay
		if !cfg.startedAt.IsZero() {
			delay -= cfg.clock.Now().Sub(cfg.startedAt)
		}
		p.wg.Go(func() { p.loop(ctx, s.spec, s.liveness, v, delay) })
	}
	return p
}

// stop ends the probes and waits for them; nil-safe.
func (p *prober) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// isReady says whether the readiness probe passes; nil-safe.
func (p *prober) isReady() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.ready
}

// readinessFailure is why the instance is not ready, once the readiness
// probe has failed failureThreshold times in a row; "" otherwise.
func (p *prober) readinessFailure() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.notReady
}

// livenessFailure is why the liveness probe failed; "" while it passes.
func (p *prober) livenessFailure() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.dead
}

func (p *prober) loop(ctx context.Context, s *probeSpec, liveness bool, v verdict, delay time.Duration) {
	for {
		if delay > 0 && !p.sleep(ctx, delay) {
			return
		}
		start := p.cfg.clock.Now()
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := s.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-check: the result means nothing
		}
		v.observe(err == nil)
		if liveness {
			if !v.passing {
				p.set(func(s *probeState) { s.dead = reason(err) })
				p.cfg.log.Info("liveness probe failed", "failures", v.failures, "reason", reason(err))
				return
			}
		} else {
			ready, why := v.passing, ""
			if v.failed() {
				why = reason(err)
			}
			if p.set(func(s *probeState) { s.ready, s.notReady = ready, why }) {
				p.cfg.log.Info("readiness changed", "ready", ready, "reason", why)
			}
		}
		delay = s.period - p.cfg.clock.Now().Sub(start)
	}
}

// set changes the prober's state under its lock and notifies the worker
// if anything changed; it reports whether it did.
func (p *prober) set(change func(*probeState)) bool {
	p.mu.Lock()
	before := p.state
	change(&p.state)
	changed := p.state != before
	p.mu.Unlock()
	if changed {
		p.cfg.notify()
	}
	return changed
}

func (p *prober) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-p.cfg.clock.After(d):
		return true
	}
}

func reason(err error) string {
	if err == nil {
		return ""
	}
	return truncate(err.Error(), 2*probeReasonMax)
}
