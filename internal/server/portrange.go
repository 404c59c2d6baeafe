package server

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/api"
)

// PortRangeKey holds, in the store, the cluster's publish range: the node
// ports published ports and hostPorts may use ("30000-32767"). It lives in
// the store rather than in each server's flags so that every server admits
// the same ports: the first server stores its --port-range, and a server
// started with --port-range given changes it for all of them.
const PortRangeKey = "/shoal-cluster/port-range"

// InitPortRange makes the store hold the cluster's publish range and
// returns it. A store without one gets r. A store with one keeps it,
// unless explicit (the cluster admin gave --port-range to this server):
// then r replaces it, for every server at once.
func InitPortRange(ctx context.Context, cli *clientv3.Client, r api.PortRange, explicit bool) (stored api.PortRange, changed bool, err error) {
	if explicit {
		prev, err := cli.Put(ctx, PortRangeKey, r.String(), clientv3.WithPrevKV())
		if err != nil {
			return r, false, fmt.Errorf("the cluster's port range: %w", err)
		}
		return r, prev.PrevKv != nil && string(prev.PrevKv.Value) != r.String(), nil
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(PortRangeKey), "=", 0)).
		Then(clientv3.OpPut(PortRangeKey, r.String())).
		Else(clientv3.OpGet(PortRangeKey)).Commit()
	if err != nil {
		return r, false, fmt.Errorf("the cluster's port range: %w", err)
	}
	if resp.Succeeded {
		return r, false, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if stored, err := api.ParsePortRange(string(kvs[0].Value)); err == nil {
			return stored, false, nil
		}
	}
	return r, false, nil
}

// clusterPortRange is the publish range in the store, read at every
// admission so that a change reaches every server at once. A store
// without one (a server started without the control plane's start-up, as
// in tests) has the default range.
func (s *Server) clusterPortRange(ctx context.Context) (api.PortRange, error) {
	resp, err := s.store.Client().Get(ctx, PortRangeKey)
	if err != nil {
		return api.PortRange{}, err
	}
	if len(resp.Kvs) == 0 {
		return api.DefaultPortRange, nil
	}
	r, err := api.ParsePortRange(string(resp.Kvs[0].Value))
	if err != nil {
		return api.PortRange{}, fmt.Errorf("the cluster's port range in the store (%s): %w", PortRangeKey, err)
	}
	return r, nil
}

// checkPortRange refuses an App or Job whose published ports or hostPorts
// are outside the cluster's publish range.
func (s *Server) checkPortRange(ctx context.Context, objs []api.Object, manifest bool) error {
	var r api.PortRange
	for i, o := range objs {
		t, kind := templateOf(o), o.GetTypeMeta().Kind
		if t == nil {
			continue
		}
		if !bindsNodePorts(t) {
			continue
		}
		if r.IsZero() {
			var err error
			if r, err = s.clusterPortRange(ctx); err != nil {
				return err
			}
		}
		if errs := api.CheckPortRange("spec", t, r, "the cluster's publish range", "set by the cluster admin with --port-range"); len(errs) > 0 {
			doc := 0
			if manifest {
				doc = i + 1
			}
			return &api.InvalidError{Document: doc, Kind: kind, Name: o.GetMeta().Name, Errors: errs}
		}
	}
	return nil
}

func bindsNodePorts(t *api.Template) bool {
	for _, p := range t.Ports {
		if p.Publish != 0 || p.HostPort != 0 {
			return true
		}
	}
	return false
}
