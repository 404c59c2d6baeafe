package store

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// follow reads what is stored at key (every key under it when prefix)
// and hands it to list, then hands put every value stored there after,
// until ctx ends, the watch fails (its error) or etcd ends it (nil: read
// again). Deletes are not reported.
func (s *Store) follow(ctx context.Context, key string, prefix bool, list func([]*mvccpb.KeyValue) error, put func(*mvccpb.KeyValue) error) error {
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := s.cli.Get(ctx, key, opts...)
	if err != nil {
		return err
	}
	if err := list(resp.Kvs); err != nil {
		return err
	}
	opts = append(opts, clientv3.WithRev(resp.Header.Revision+1))
	for wr := range s.cli.Watch(clientv3.WithRequireLeader(ctx), key, opts...) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			if err := put(ev.Kv); err != nil {
				return err
			}
		}
	}
	return nil
}
