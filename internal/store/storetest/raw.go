package storetest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
)

// Raw is etcd with no store in front, for tests: what someone who reached
// etcd itself could do, and what only etcd can set up.
type Raw struct{ cli *clientv3.Client }

// Connect dials etcd at endpoints with tlsCfg (nil: plain gRPC). Dialing
// does not wait for the connection: a client etcd refuses finds out at
// its first request.
func Connect(endpoints []string, tlsCfg *tls.Config) (*Raw, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	return &Raw{cli: cli}, nil
}

// Dial connects to e, an embedded etcd without TLS (Start's), for the
// test's lifetime.
func Dial(t testing.TB, e *store.Embedded) *Raw {
	t.Helper()
	r, err := Connect([]string{e.Endpoint}, nil)
	if err != nil {
		t.Fatalf("dial etcd at %s: %v", e.Endpoint, err)
	}
	t.Cleanup(r.Close)
	return r
}

// Close closes the connection.
func (r *Raw) Close() { r.cli.Close() }

// Get reads key: its value and whether it exists.
func (r *Raw) Get(ctx context.Context, key string) ([]byte, bool, error) {
	resp, err := r.cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, false, err
	}
	return resp.Kvs[0].Value, true, nil
}

// Put writes value at key.
func (r *Raw) Put(ctx context.Context, key, value string) error {
	_, err := r.cli.Put(ctx, key, value)
	return err
}

// KV is one stored key and its value.
type KV struct{ Key, Value string }

// Dump reads every key in etcd, as an etcd dump has them.
func (r *Raw) Dump(ctx context.Context) ([]KV, error) {
	resp, err := r.cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{string(kv.Key), string(kv.Value)}
	}
	return out, nil
}

// Compact drops the history before rev: watches from earlier revisions
// fail with the store's ErrCompacted.
func (r *Raw) Compact(ctx context.Context, rev int64) error {
	_, err := r.cli.Compact(ctx, rev)
	return err
}
