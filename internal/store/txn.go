package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/api"
)

// CreateWith creates obj and, in the same transaction, writes update if it
// is still at its metadata.revision (compare-and-swap): both or neither.
// It fails with ErrAlreadyExists when obj's name is taken, ErrConflict
// when update changed meanwhile and ErrNotFound when it is gone. A join
// creates its Node this way while it counts down its token's uses.
func (s *Store) CreateWith(ctx context.Context, obj, update api.Object) error {
	createKey, createVal, err := s.prepareCreate(obj)
	if err != nil {
		return err
	}
	_, updateKey, err := keyOf(update)
	if err != nil {
		return err
	}
	um := update.GetMeta()
	if um.Revision == 0 {
		return fmt.Errorf("%s: update without metadata.revision: %w", describeObj(update), ErrConflict)
	}
	updateVal, err := encode(update)
	if err != nil {
		return err
	}
	resp, err := s.commit(ctx,
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(createKey), "=", 0),
			clientv3.Compare(clientv3.ModRevision(updateKey), "=", um.Revision),
		},
		[]clientv3.Op{clientv3.OpPut(createKey, createVal), clientv3.OpPut(updateKey, updateVal)},
		[]clientv3.Op{clientv3.OpGet(createKey, clientv3.WithKeysOnly()), clientv3.OpGet(updateKey, clientv3.WithKeysOnly())})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return fmt.Errorf("%s: %w", describeObj(obj), ErrAlreadyExists)
		}
		kvs := resp.Responses[1].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("%s: %w", describeObj(update), ErrNotFound)
		}
		return fmt.Errorf("%s (revision %d, stored %d): %w", describeObj(update), um.Revision, kvs[0].ModRevision, ErrConflict)
	}
	obj.GetMeta().Revision = resp.Header.Revision
	um.Revision = resp.Header.Revision
	return nil
}
