package netproxy

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// TrafficEvery is how often the proxy turns its counters into rates.
const TrafficEvery = time.Second

// ActivationTimeout is how long a connection to an App scaled to zero
// waits for its first instance.
const ActivationTimeout = 30 * time.Second

// traffic counts what the node's proxy sends each App: connections the
// kernel forwards (its counting rules) and those the proxy's listeners
// take, and connections waiting for an App at zero to start.
type traffic struct {
	mu       sync.Mutex
	proxied  map[string]*atomic.Uint64 // by app key ns/app
	waiting  map[string]*atomic.Int32
	lastRule map[string]uint64 // by svcKey string: the rules' counters last read
	lastProx map[string]uint64
	lastAt   time.Time
	rates    []api.AppTraffic
}

func appKey(k svcKey) string { return k.ns + "/" + k.app }

func (t *traffic) counter(key string) *atomic.Uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proxied == nil {
		t.proxied = map[string]*atomic.Uint64{}
	}
	c := t.proxied[key]
	if c == nil {
		c = &atomic.Uint64{}
		t.proxied[key] = c
	}
	return c
}

func (t *traffic) waiter(key string) *atomic.Int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waiting == nil {
		t.waiting = map[string]*atomic.Int32{}
	}
	c := t.waiting[key]
	if c == nil {
		c = &atomic.Int32{}
		t.waiting[key] = c
	}
	return c
}

// sample turns the counters into per-App rates since the last sample.
// A rule counter that went down was reset by a rewrite of the chains:
// its new value is all new.
func (t *traffic) sample(rules map[string]uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	deltas := map[string]uint64{}
	for svc, n := range rules {
		prev := t.lastRule[svc]
		if n < prev {
			prev = 0
		}
		if i := strings.LastIndexByte(svc, ':'); i > 0 {
			deltas[svc[:i]] += n - prev
		}
	}
	prox := map[string]uint64{}
	for k, c := range t.proxied {
		n := c.Load()
		prox[k] = n
		deltas[k] += n - t.lastProx[k]
	}
	elapsed := now.Sub(t.lastAt).Seconds()
	first := t.lastAt.IsZero()
	t.lastRule, t.lastProx, t.lastAt = rules, prox, now
	if first || elapsed <= 0 {
		return
	}
	var out []api.AppTraffic
	seen := map[string]bool{}
	for k, d := range deltas {
		ns, app, _ := strings.Cut(k, "/")
		w := int32(0)
		if c := t.waiting[k]; c != nil {
			w = c.Load()
		}
		seen[k] = true
		if d == 0 && w == 0 {
			continue
		}
		out = append(out, api.AppTraffic{Namespace: ns, App: app, RequestsPerSecond: float64(d) / elapsed, Waiting: w})
	}
	for k, c := range t.waiting {
		if w := c.Load(); w > 0 && !seen[k] {
			ns, app, _ := strings.Cut(k, "/")
			out = append(out, api.AppTraffic{Namespace: ns, App: app, Waiting: w})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].App < out[j].Namespace+"/"+out[j].App })
	t.rates = out
}

// Traffic is the node's traffic per App over the last sample period, for
// the Node's status.
func (p *Proxy) Traffic() []api.AppTraffic {
	p.traffic.mu.Lock()
	defer p.traffic.mu.Unlock()
	return p.traffic.rates
}

func (p *Proxy) trafficLoop(ctx context.Context) {
	t := time.NewTicker(TrafficEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var rules map[string]uint64
		if c, ok := p.rules.(interface {
			counts(context.Context) (map[string]uint64, error)
		}); ok && p.rules != nil {
			var err error
			if rules, err = c.counts(ctx); err != nil {
				p.log.Debug("service rule counters", "err", err)
			}
		}
		p.traffic.sample(rules, time.Now())
	}
}

// scalesToZero says whether the App of k may sit at zero replicas, to be
// started by its first connection.
func (p *Proxy) scalesToZero(k svcKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appKey(k)]
	return a != nil && a.Spec.Autoscale != nil && a.Spec.Autoscale.Min == 0
}

// activate asks the servers to start an App at zero replicas, and waits
// (at most ActivationTimeout) until its pool has an endpoint. It reports
// whether one came.
func (p *Proxy) activate(ctx context.Context, k svcKey) bool {
	w := p.traffic.waiter(appKey(k))
	w.Add(1)
	defer w.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, ActivationTimeout)
	defer cancel()
	if p.cfg.Client != nil {
		go func() {
			path := client.Path(api.MustKind(api.KindApp), k.ns, k.app) + "/activate"
			if err := p.cfg.Client.Do(ctx, http.MethodPost, path, nil, nil); err != nil && ctx.Err() == nil {
				p.log.Warn("activate an app at zero replicas", "app", appKey(k), "err", err)
			}
		}()
	}
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		if pl := p.pool(k); pl != nil && pl.ready() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}
