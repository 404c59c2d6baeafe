package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// Errors matched by errors.Is on an *APIError.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrAlreadyExists is the conflict of a create whose object exists
	// (a 409 whose reason says so), not that of a stale revision.
	ErrAlreadyExists = errors.New("already exists")
	ErrInvalid       = errors.New("invalid")
	ErrGone          = errors.New("gone")
	// ErrUnreachable: no server answered.
	ErrUnreachable = errors.New("cannot reach the shoal server")
)

// APIError is a non-2xx answer from the server, or a watch's ERROR line.
type APIError struct {
	api.Status
}

func (e *APIError) Error() string { return e.Message }

// Is maps HTTP codes to the package's sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrConflict:
		return e.Code == http.StatusConflict
	case ErrAlreadyExists:
		return e.Code == http.StatusConflict && e.Reason == "AlreadyExists"
	case ErrInvalid:
		return e.Code == http.StatusUnprocessableEntity || e.Code == http.StatusBadRequest || e.Code == http.StatusRequestEntityTooLarge
	case ErrGone:
		return e.Code == http.StatusGone
	}
	return false
}

// Client talks to a shoal cluster through one of its servers at a time:
// when that one cannot be reached, it goes on with the next it knows of
// (SetServers).
type Client struct {
	mu      sync.Mutex
	base    string   // the server in use
	servers []string // every server known, base among them
	tls     *tls.Config
	http    *http.Client
	// stream has no overall timeout, for watches and logs.
	stream *http.Client
	// token, when set, is sent as "Authorization: Bearer TOKEN".
	token string
}

// New returns a client for the server at base (http://host:port), without
// TLS: for tests of the handlers alone.
func New(base string) *Client { return NewTLS(base, nil) }

// NewTLS returns a client for the server at base (https://host:port) that
// connects with cfg.
func NewTLS(base string, cfg *tls.Config) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.MaxIdleConnsPerHost = 32
	base = strings.TrimRight(base, "/")
	return &Client{
		base:    base,
		servers: []string{base},
		tls:     cfg,
		http:    &http.Client{Timeout: 60 * time.Second, Transport: tr},
		stream:  &http.Client{Transport: tr},
	}
}

// FromConfig returns a client for what a config file says.
func FromConfig(cfg Config) (*Client, error) {
	t, err := cfg.TLS()
	if err != nil {
		return nil, err
	}
	c := NewTLS(cfg.Server, t)
	c.token = cfg.Token
	c.SetServers(cfg.Servers)
	return c, nil
}

// Server returns the base URL of the server in use.
func (c *Client) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

// SetServers adds the cluster's other servers (base URLs), to fail over
// to; the server in use stays first.
func (c *Client) SetServers(urls []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{c.base}
	for _, u := range urls {
		if u = strings.TrimRight(u, "/"); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	c.servers = out
}

// Servers returns every server the client knows, the one in use first.
func (c *Client) Servers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.servers)
}

// use makes base the server in use.
func (c *Client) use(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base = base
	// It goes first from now on: the next request does not try the one
	// that failed (on a real network, a dial timeout) before it.
	c.servers = append([]string{base}, slices.DeleteFunc(slices.Clone(c.servers), func(u string) bool { return u == base })...)
}

// Path returns the API path of a kind, namespace and optional name.
func Path(k api.KindInfo, ns, name string) string {
	p := "/api/v1/"
	if k.Namespaced && ns != "" {
		p += "namespaces/" + url.PathEscape(ns) + "/"
	}
	p += k.Plural
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func (c *Client) do(ctx context.Context, hc *http.Client, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	var lastErr error
	for i, base := range c.Servers() {
		if i > 0 && !rewind(body) {
			break // a stream (an image push) is not sent twice
		}
		resp, retry, err := c.try(ctx, hc, base, method, path, body, contentType)
		if err == nil {
			if i > 0 {
				c.use(base)
			}
			return resp, nil
		}
		if !retry {
			return nil, err
		}
		// What a server said (503: no quorum) beats that another could
		// not be reached.
		var ae *APIError
		if lastErr == nil || errors.As(err, &ae) {
			lastErr = err
		}
	}
	return nil, lastErr
}

// rewind makes body ready to be sent again, if it can be.
func rewind(body io.Reader) bool {
	if body == nil {
		return true
	}
	s, ok := body.(io.Seeker)
	if !ok {
		return false
	}
	_, err := s.Seek(0, io.SeekStart)
	return err == nil
}

// try makes the request of one server; retry says another server may be
// asked instead: this one could not be reached (nothing was sent), or, for
// a read, it has no quorum.
func (c *Client) try(ctx context.Context, hc *http.Client, base, method, path string, body io.Reader, contentType string) (*http.Response, bool, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, false, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		var op *net.OpError
		notSent := errors.As(err, &op) && op.Op == "dial"
		return nil, notSent || method == http.MethodGet, fmt.Errorf("%w at %s: %v", ErrUnreachable, base, unwrapURLError(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: api.Status{Code: resp.StatusCode}}
		if json.Unmarshal(b, &e.Status) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		e.Code = resp.StatusCode
		return nil, resp.StatusCode == http.StatusServiceUnavailable && method == http.MethodGet, e
	}
	return resp, false, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call sends in (JSON-encoded unless it is []byte) and decodes the answer into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	switch v := in.(type) {
	case nil:
	case []byte:
		body, ct = bytes.NewReader(v), "application/yaml"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, c.http, method, path, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Ping checks that the server answers /healthz.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.do(ctx, c.http, http.MethodGet, "/healthz", nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct{ Version string }
	err := c.call(ctx, http.MethodGet, "/version", nil, &v)
	return v.Version, err
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, k api.KindInfo, ns, name string) (api.Object, error) {
	obj := k.New()
	if err := c.call(ctx, http.MethodGet, Path(k, ns, name), nil, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Do sends in (JSON) to path with method and decodes the answer into out:
// for the API's verbs that are not objects.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out)
}

// Reveal returns an object with its secret values shown (a Secret's data),
// for callers that may see them: admins, and nodes for the Secrets their
// instances use.
func (c *Client) Reveal(ctx context.Context, k api.KindInfo, ns, name string) (api.Object, error) {
	obj := k.New()
	if err := c.call(ctx, http.MethodGet, Path(k, ns, name)+"?reveal=1", nil, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// ListOptions narrows a list or watch.
type ListOptions struct {
	Node string // instances bound to this node
	App  string // objects labelled app=App
	// Labels selects by labels: "k=v,k2!=v2" (see api.ParseSelector).
	Labels string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Node != "" {
		q.Set("node", o.Node)
	}
	if o.App != "" {
		q.Set("app", o.App)
	}
	if o.Labels != "" {
		q.Set("labelSelector", o.Labels)
	}
	return q
}

// List reads every object of a kind in ns ("" for all namespaces) and the
// revision to watch from.
func (c *Client) List(ctx context.Context, k api.KindInfo, ns string, opts ListOptions) ([]api.Object, int64, error) {
	p := Path(k, ns, "")
	if q := opts.query().Encode(); q != "" {
		p += "?" + q
	}
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, p, nil, &raw); err != nil {
		return nil, 0, err
	}
	l, err := api.DecodeList(k, raw)
	if err != nil {
		return nil, 0, err
	}
	return l.Items, l.Revision, nil
}

// Create stores a new object; obj becomes what was stored.
func (c *Client) Create(ctx context.Context, obj api.Object) error {
	k, m := kindOf(obj), obj.GetMeta()
	return c.write(ctx, http.MethodPost, Path(k, m.Namespace, ""), k, obj)
}

// Update replaces an object's spec, guarded by its metadata.revision; obj
// becomes what was stored.
func (c *Client) Update(ctx context.Context, obj api.Object) error {
	k, m := kindOf(obj), obj.GetMeta()
	return c.write(ctx, http.MethodPut, Path(k, m.Namespace, m.Name), k, obj)
}

// UpdateStatus replaces an object's status; obj becomes what was stored.
func (c *Client) UpdateStatus(ctx context.Context, obj api.Object) error {
	k, m := kindOf(obj), obj.GetMeta()
	return c.write(ctx, http.MethodPut, Path(k, m.Namespace, m.Name)+"/status", k, obj)
}

// write sends obj and replaces it with the server's answer. The answer is
// decoded into a fresh object and assigned whole: decoding into obj itself
// would write into maps and slices obj may share with its caller's other
// copies (a shallow copy of a cached object, say).
func (c *Client) write(ctx context.Context, method, path string, k api.KindInfo, obj api.Object) error {
	fresh := k.New()
	if err := c.call(ctx, method, path, obj, fresh); err != nil {
		return err
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(fresh).Elem())
	return nil
}

// DeleteOptions modify a delete.
type DeleteOptions struct {
	Revision int64 // only delete this revision
	Force    bool  // remove an Instance at once, without graceful teardown
}

// Delete removes an object (Instances: starts their graceful teardown).
func (c *Client) Delete(ctx context.Context, k api.KindInfo, ns, name string, opts DeleteOptions) error {
	q := url.Values{}
	if opts.Revision > 0 {
		q.Set("revision", strconv.FormatInt(opts.Revision, 10))
	}
	if opts.Force {
		q.Set("force", "1")
	}
	p := Path(k, ns, name)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return c.call(ctx, http.MethodDelete, p, nil, nil)
}

// Scale sets an App's replicas.
func (c *Client) Scale(ctx context.Context, ns, name string, replicas int32) (*api.App, error) {
	app := &api.App{}
	err := c.call(ctx, http.MethodPut, Path(api.MustKind(api.KindApp), ns, name)+"/scale", api.Scale{Replicas: replicas}, app)
	return app, err
}

// ApplyOptions modify an apply.
type ApplyOptions struct {
	// DryRun validates and compares with what is stored, and stores
	// nothing; the results say what would change.
	DryRun bool
}

// Apply creates or updates every object in a YAML or JSON manifest, all or
// nothing.
func (c *Client) Apply(ctx context.Context, manifest []byte, opts ApplyOptions) ([]api.ApplyResult, error) {
	var out api.ApplyResponse
	p := "/api/v1/apply"
	if opts.DryRun {
		p += "?dryRun=1"
	}
	err := c.call(ctx, http.MethodPost, p, manifest, &out)
	return out.Results, err
}

// PushImage uploads an OCI image tarball to the cluster's image store.
func (c *Client) PushImage(ctx context.Context, r io.Reader) ([]string, error) {
	resp, err := c.do(ctx, c.stream, http.MethodPost, "/api/v1/images", r, "application/x-tar")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct{ Images []string }
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Images, err
}

// ImageDigest returns the manifest digest ("sha256:HEX") repo:tag of the
// cluster's image store points at now, as a node pulling it would see it.
func (c *Client) ImageDigest(ctx context.Context, repo, tag string) (string, error) {
	parts := strings.Split(repo, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	resp, err := c.do(ctx, c.http, http.MethodHead, "/v2/"+strings.Join(parts, "/")+"/manifests/"+url.PathEscape(tag), nil, "")
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
		return "", fmt.Errorf("%s/%s:%s is not in the cluster's image store (push it first: shoal image push)", api.LocalRegistry, repo, tag)
	}
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	d := resp.Header.Get("Docker-Content-Digest")
	if api.ImageDigest("@"+d) == "" {
		return "", fmt.Errorf("%s/%s:%s: the image store answered no sha256 digest (%q)", api.LocalRegistry, repo, tag, d)
	}
	return d, nil
}

// Images lists the images in the cluster's image store.
func (c *Client) Images(ctx context.Context) ([]string, error) {
	var out struct{ Images []string }
	err := c.call(ctx, http.MethodGet, "/api/v1/images", nil, &out)
	return out.Images, err
}

// LogOptions select what Logs streams.
type LogOptions struct {
	Follow   bool
	Tail     int // lines from the end; <0 for all
	Previous bool
}

// Logs streams an instance's log; close the reader when done.
func (c *Client) Logs(ctx context.Context, ns, name string, opts LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "1")
	}
	if opts.Tail >= 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Previous {
		q.Set("previous", "1")
	}
	resp, err := c.do(ctx, c.stream, http.MethodGet, Path(api.MustKind(api.KindInstance), ns, name)+"/log?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Watch streams changes after revision, BOOKMARK lines included. The
// channel closes when ctx ends or the stream breaks; the returned func
// reports why (ErrGone: list again).
func (c *Client) Watch(ctx context.Context, k api.KindInfo, ns string, revision int64, opts ListOptions) (<-chan api.WatchEvent, func() error, error) {
	q := opts.query()
	q.Set("watch", "1")
	q.Set("revision", strconv.FormatInt(revision, 10))
	resp, err := c.do(ctx, c.stream, http.MethodGet, Path(k, ns, "")+"?"+q.Encode(), nil, "")
	if err != nil {
		return nil, nil, err
	}
	out := make(chan api.WatchEvent, 64)
	var werr error
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			ev, err := api.DecodeWatchEvent(k, sc.Bytes())
			if err != nil {
				werr = fmt.Errorf("watch stream: %w", err)
				return
			}
			if ev.Error != nil || ev.Type == api.WatchError {
				if ev.Error == nil {
					ev.Error = &api.Status{Code: http.StatusInternalServerError, Message: "watch ended with an error"}
				}
				werr = &APIError{Status: *ev.Error}
				return
			}
			if ev.Type != api.WatchBookmark && ev.Object == nil {
				werr = fmt.Errorf("watch stream: %s line without an object", ev.Type)
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		werr = sc.Err()
		if werr == nil && ctx.Err() == nil {
			werr = io.ErrUnexpectedEOF
		}
	}()
	return out, func() error { return werr }, nil
}

func kindOf(obj api.Object) api.KindInfo {
	k, _ := api.LookupKind(string(obj.GetTypeMeta().Kind))
	return k
}

// Source lists and watches one kind for a listwatch.Loop.
type Source struct {
	c    *Client
	k    api.KindInfo
	ns   string
	opts ListOptions
}

// Source returns the list-and-watch source of kind k in ns ("" for all).
func (c *Client) Source(k api.KindInfo, ns string, opts ListOptions) *Source {
	return &Source{c: c, k: k, ns: ns, opts: opts}
}

// List lists the source's objects.
func (s *Source) List(ctx context.Context) ([]api.Object, int64, error) {
	return s.c.List(ctx, s.k, s.ns, s.opts)
}

// Watch watches the source's objects after rev.
func (s *Source) Watch(ctx context.Context, rev int64) (<-chan api.WatchEvent, func() error, error) {
	return s.c.Watch(ctx, s.k, s.ns, rev, s.opts)
}

// Expired says a watch error means the watched revision is gone: list again.
func Expired(err error) bool { return errors.Is(err, ErrGone) }

// ListServers returns the cluster's servers, as GET /api/v1/servers says.
func (c *Client) ListServers(ctx context.Context) (*api.ServerList, error) {
	var out api.ServerList
	if err := c.call(ctx, http.MethodGet, "/api/v1/servers", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Quota reads what namespace ns holds against its quota.
func (c *Client) Quota(ctx context.Context, ns string) (*api.QuotaUsage, error) {
	var out api.QuotaUsage
	if err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/quota", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveServer takes a server out of the cluster.
func (c *Client) RemoveServer(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/servers/"+url.PathEscape(name), nil, nil)
}
