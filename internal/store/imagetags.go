package store

import (
	"context"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster's image tags: "REPO:TAG" to the digest of its manifest,
// shared by every server's image store.

const imageTagsPrefix = "/shoal-images/tags/"

// ImageTag is the digest that tag of repo points at, and whether it has
// one.
func (s *Store) ImageTag(ctx context.Context, repo, tag string) (string, bool, error) {
	resp, err := s.cli.Get(ctx, imageTagsPrefix+repo+":"+tag)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false, err
	}
	return string(resp.Kvs[0].Value), true, nil
}

// SetImageTags points every "REPO:TAG" of tags at its digest, all in one
// transaction: a push's tags appear together or not at all.
func (s *Store) SetImageTags(ctx context.Context, tags map[string]string) error {
	ops := make([]clientv3.Op, 0, len(tags))
	for ref, digest := range tags {
		ops = append(ops, clientv3.OpPut(imageTagsPrefix+ref, digest))
	}
	_, err := s.cli.Txn(ctx).Then(ops...).Commit()
	return err
}

// FollowImageTags calls fn with every tag ("REPO:TAG") and its digest
// stored now (pushed false), then with every tag set after (pushed true),
// until ctx ends, the watch fails (its error) or the store ends it (nil).
func (s *Store) FollowImageTags(ctx context.Context, fn func(ref, digest string, pushed bool)) error {
	call := func(kv *mvccpb.KeyValue, pushed bool) {
		fn(strings.TrimPrefix(string(kv.Key), imageTagsPrefix), string(kv.Value), pushed)
	}
	return s.follow(ctx, imageTagsPrefix, true,
		func(kvs []*mvccpb.KeyValue) error {
			for _, kv := range kvs {
				call(kv, false)
			}
			return nil
		},
		func(kv *mvccpb.KeyValue) error { call(kv, true); return nil })
}
