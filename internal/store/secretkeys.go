package store

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The servers share the keys that seal Secrets through the store, sealed
// with a key only servers can derive (from the CA key): a key one server
// makes reaches the others, and an etcd dump alone opens nothing. The
// store keeps the sealed bytes as it is given them.

const secretKeysKey = "/shoal-secret-keys"

// PutSecretKeys stores the servers' sealed secret keys.
func (s *Store) PutSecretKeys(ctx context.Context, sealed []byte) error {
	_, err := s.cli.Put(ctx, secretKeysKey, string(sealed))
	return err
}

// FollowSecretKeys calls fn with the sealed secret keys stored now (nil
// when there are none yet), then with each set stored after, until ctx
// ends, fn or the watch fails (that error) or the store ends the watch
// (nil: call again).
func (s *Store) FollowSecretKeys(ctx context.Context, fn func(sealed []byte) error) error {
	return s.follow(ctx, secretKeysKey, false,
		func(kvs []*mvccpb.KeyValue) error {
			if len(kvs) == 0 {
				return fn(nil)
			}
			return fn(kvs[0].Value)
		},
		func(kv *mvccpb.KeyValue) error { return fn(kv.Value) })
}
