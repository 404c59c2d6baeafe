package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

// errTooManyRequests marks a request refused because its identity (or,
// unauthenticated, its address) asks too much: a 429.
var errTooManyRequests = errors.New("too many requests")

// retryAfter is an error that says when to try again: writeError sets
// the Retry-After header from it.
type retryAfter struct {
	err   error
	after time.Duration
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// seconds is e's Retry-After: whole seconds, at least one.
func (e *retryAfter) seconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.after.Seconds()))))
}

// Rate is a token bucket: PerSecond requests on average, Burst at once.
// PerSecond below zero means no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Limits bound what one identity asks of a server: requests per second
// and streams (watches, log follows, exec sessions) open at once. Users
// are counted by User (its certificates and tokens together), nodes by
// Node; servers are not limited. Failed is the rate at which one address
// may fail to authenticate (a bad join token, a bad certificate or
// token): past it every unauthenticated request from there is refused
// for a while, so a flood of bad joins cannot fill the audit log.
type Limits struct {
	User, ClusterAdmin, Node, Failed              Rate
	UserStreams, ClusterAdminStreams, NodeStreams int
}

// DefaultLimits are generous for people and agents at work, and a bound
// on one leaked credential.
var DefaultLimits = Limits{
	User:                Rate{PerSecond: 50, Burst: 100},
	ClusterAdmin:        Rate{PerSecond: 500, Burst: 1000},
	Node:                Rate{PerSecond: 200, Burst: 400},
	Failed:              Rate{PerSecond: 5, Burst: 100},
	UserStreams:         50,
	ClusterAdminStreams: 200,
	NodeStreams:         200,
}

// withDefaults fills the zero figures of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	rates := []struct {
		got *Rate
		def Rate
	}{{&l.User, d.User}, {&l.ClusterAdmin, d.ClusterAdmin}, {&l.Node, d.Node}, {&l.Failed, d.Failed}}
	for _, r := range rates {
		if *r.got == (Rate{}) {
			*r.got = r.def
		}
	}
	for _, c := range []struct {
		got *int
		def int
	}{{&l.UserStreams, d.UserStreams}, {&l.ClusterAdminStreams, d.ClusterAdminStreams}, {&l.NodeStreams, d.NodeStreams}} {
		if *c.got == 0 {
			*c.got = c.def
		}
	}
	return l
}

// buckets are token buckets by key. Full buckets are dropped when there
// are many: a full bucket is what a new one would be.
type buckets struct {
	mu   sync.Mutex
	rate Rate
	by   map[string]*rate.Limiter
}

const maxBuckets = 10000

func (b *buckets) get(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.by == nil {
		b.by = map[string]*rate.Limiter{}
	}
	l, ok := b.by[key]
	if !ok {
		if len(b.by) >= maxBuckets {
			for k, old := range b.by {
				if old.Tokens() >= float64(b.rate.Burst) {
					delete(b.by, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(b.rate.PerSecond), b.rate.Burst)
		b.by[key] = l
	}
	return l
}

// take spends one token of key's bucket, or says how long until one is
// there (and spends nothing).
func (b *buckets) take(key string) (time.Duration, bool) {
	if b.rate.PerSecond < 0 {
		return 0, true
	}
	res := b.get(key).Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// empty says whether key's bucket has no token left, and how long until
// it has one; it spends nothing.
func (b *buckets) empty(key string) (time.Duration, bool) {
	if b.rate.PerSecond < 0 {
		return 0, false
	}
	b.mu.Lock()
	l, ok := b.by[key]
	b.mu.Unlock()
	if !ok {
		return 0, false
	}
	if t := l.Tokens(); t < 1 {
		return time.Duration((1 - t) / b.rate.PerSecond * float64(time.Second)), true
	}
	return 0, false
}

// spend takes a token from key's bucket if there is one.
func (b *buckets) spend(key string) {
	if b.rate.PerSecond >= 0 {
		b.get(key).Allow()
	}
}

// limiter applies Limits.
type limiter struct {
	limits               Limits
	users, admins, nodes buckets
	failed               buckets
	streamsMu            sync.Mutex
	streams              map[string]int
}

func newLimiter(l Limits) *limiter {
	l = l.withDefaults()
	return &limiter{limits: l, users: buckets{rate: l.User}, admins: buckets{rate: l.ClusterAdmin}, nodes: buckets{rate: l.Node},
		failed: buckets{rate: l.Failed}, streams: map[string]int{}}
}

// who is the key and the limits of an identity; ok is false for servers,
// which are not limited.
func (l *limiter) who(id pki.Identity, u *api.User) (key string, b *buckets, streams int, ok bool) {
	switch {
	case id.In(pki.GroupServers):
		return "", nil, 0, false
	case id.Node != "":
		return "node " + id.Node, &l.nodes, l.limits.NodeStreams, true
	case u != nil && isClusterAdmin(u):
		return "user " + u.Metadata.Name, &l.admins, l.limits.ClusterAdminStreams, true
	case u != nil:
		return "user " + u.Metadata.Name, &l.users, l.limits.UserStreams, true
	}
	return "certificate " + id.Name, &l.users, l.limits.UserStreams, true
}

// admit spends one request of id's rate and, for a stream, holds one of
// its streams until done is called.
func (l *limiter) admit(r *http.Request, id pki.Identity, u *api.User) (done func(), err error) {
	key, b, maxStreams, ok := l.who(id, u)
	if !ok {
		return func() {}, nil
	}
	if d, ok := b.take(key); !ok {
		return nil, &retryAfter{fmt.Errorf("%s sends more than %g requests a second (%d at once): slow down and try again in %s: %w",
			key, b.rate.PerSecond, b.rate.Burst, d.Round(time.Millisecond), errTooManyRequests), d}
	}
	if !isStream(r) {
		return func() {}, nil
	}
	l.streamsMu.Lock()
	defer l.streamsMu.Unlock()
	if l.streams[key] >= maxStreams {
		return nil, &retryAfter{fmt.Errorf("%s has %d watches, log follows and exec sessions open, the most one identity may: close some (a client that watches should share one watch per kind) and try again: %w",
			key, l.streams[key], errTooManyRequests), 5 * time.Second}
	}
	l.streams[key]++
	return func() {
		l.streamsMu.Lock()
		defer l.streamsMu.Unlock()
		if l.streams[key]--; l.streams[key] <= 0 {
			delete(l.streams, key)
		}
	}, nil
}

// isStream says whether r stays open for as long as the client wants: a
// watch, a log follow, an exec session.
func isStream(r *http.Request) bool {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Get("watch") != "":
		return true
	case r.Method == http.MethodGet && q.Get("follow") != "":
		return true
	case r.Method == http.MethodPost && len(r.URL.Path) > len("/exec") && r.URL.Path[len(r.URL.Path)-len("/exec"):] == "/exec":
		return true
	}
	return false
}

// addressKey is the remote address a request's failures are counted by:
// the IPv4 address, or the /64 of an IPv6 one (which one host has whole).
func addressKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// failing refuses an unauthenticated request from an address that failed
// too often of late.
func (l *limiter) failing(r *http.Request) error {
	addr := addressKey(r)
	if d, empty := l.failed.empty(addr); empty {
		return &retryAfter{fmt.Errorf("%s failed to authenticate too often (more than %g times a second, %d at once): wait and try again with a valid token or certificate: %w",
			addr, l.limits.Failed.PerSecond, l.limits.Failed.Burst, errTooManyRequests), d}
	}
	return nil
}

// failed counts a failure to authenticate against r's address.
func (l *limiter) failure(r *http.Request) { l.failed.spend(addressKey(r)) }
