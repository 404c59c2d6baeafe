package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/api"
)

// What the cluster's servers share under /shoal-cluster/: the CA whose
// cluster the store is, and the publish range every server admits by.

// clusterCAKey holds the fingerprint of the CA of the cluster whose store
// it is.
const clusterCAKey = "/shoal-cluster/ca"

// ClaimClusterCA records fingerprint as the CA of the store's cluster if
// none is recorded yet, and returns the one recorded: fingerprint itself,
// or another cluster's.
func (s *Store) ClaimClusterCA(ctx context.Context, fingerprint string) (string, error) {
	return s.putIfAbsent(ctx, clusterCAKey, fingerprint)
}

// portRangeKey holds the cluster's publish range: the node ports
// published ports and hostPorts may use ("30000-32767"). It lives in the
// store rather than in each server's flags so that every server admits
// the same ports.
const portRangeKey = "/shoal-cluster/port-range"

// InitPortRange makes the store hold the cluster's publish range and
// returns it. A store without one gets r. A store with one keeps it,
// unless replace (the cluster admin gave --port-range to this server):
// then r replaces it, for every server at once, and changed says whether
// it differed.
func (s *Store) InitPortRange(ctx context.Context, r api.PortRange, replace bool) (stored api.PortRange, changed bool, err error) {
	if replace {
		prev, err := s.cli.Put(ctx, portRangeKey, r.String(), clientv3.WithPrevKV())
		if err != nil {
			return r, false, fmt.Errorf("the cluster's port range: %w", err)
		}
		return r, prev.PrevKv != nil && string(prev.PrevKv.Value) != r.String(), nil
	}
	v, err := s.putIfAbsent(ctx, portRangeKey, r.String())
	if err != nil {
		return r, false, fmt.Errorf("the cluster's port range: %w", err)
	}
	if stored, err := api.ParsePortRange(v); err == nil {
		return stored, false, nil
	}
	return r, false, nil // PortRange names the unreadable value
}

// PortRange is the cluster's publish range, read from the store at every
// call so that a change reaches every server at once. A store without one
// (a server started without the control plane's start-up, as in tests)
// has the default range.
func (s *Store) PortRange(ctx context.Context) (api.PortRange, error) {
	resp, err := s.cli.Get(ctx, portRangeKey)
	if err != nil {
		return api.PortRange{}, err
	}
	if len(resp.Kvs) == 0 {
		return api.DefaultPortRange, nil
	}
	r, err := api.ParsePortRange(string(resp.Kvs[0].Value))
	if err != nil {
		return api.PortRange{}, fmt.Errorf("the cluster's port range in the store (%s): %w", portRangeKey, err)
	}
	return r, nil
}

// putIfAbsent stores value at key unless the key exists, and returns what
// the key holds afterwards.
func (s *Store) putIfAbsent(ctx context.Context, key, value string) (string, error) {
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return "", err
	}
	if resp.Succeeded {
		return value, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return string(kvs[0].Value), nil
	}
	return value, nil // deleted between the compare and the get: none recorded
}
