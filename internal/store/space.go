package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultQuotaBackendBytes is the most an embedded etcd's database may
// grow to before etcd raises its NOSPACE alarm and takes only reads and
// deletes (etcd's own default; etcd advises at most 8 GiB).
const DefaultQuotaBackendBytes = 2 << 30

// ErrNoSpace is what a write gets while etcd's NOSPACE alarm is raised:
// the store takes only reads and deletes until space is reclaimed.
var ErrNoSpace = rpctypes.ErrNoSpace

// Space is what the store's members say of their space.
type Space struct {
	// NoSpace: a member's NOSPACE alarm is raised, and the store
	// refuses writes until it is disarmed.
	NoSpace bool
	// DBSize is the largest member's database file, DBSizeInUse what of
	// it holds data (the rest is reclaimed by a defragmentation).
	DBSize, DBSizeInUse int64
}

// Space reads the alarms and the members' database sizes.
func (s *Store) Space(ctx context.Context) (Space, error) {
	var sp Space
	alarms, err := s.cli.AlarmList(ctx)
	if err != nil {
		return sp, fmt.Errorf("etcd alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm == etcdserverpb.AlarmType_NOSPACE {
			sp.NoSpace = true
		}
	}
	for _, ep := range s.cli.Endpoints() {
		st, err := s.cli.Status(ctx, ep)
		if err != nil {
			continue // a member down says nothing of space
		}
		sp.DBSize = max(sp.DBSize, st.DbSize)
		sp.DBSizeInUse = max(sp.DBSizeInUse, st.DbSizeInUse)
	}
	return sp, nil
}

// Reclaim gives the database's free space back and lifts the NOSPACE
// alarm: it compacts the history up to now (watchers behind it relist),
// defragments every member it can reach, then disarms the alarms. If the
// data alone still exceeds the quota, etcd raises the alarm again at the
// next write: delete first (every delete is accepted while it is raised).
func (s *Store) Reclaim(ctx context.Context) error {
	resp, err := s.cli.Get(ctx, root, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	if _, err := s.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("reclaim: compact to revision %d: %w", resp.Header.Revision, err)
	}
	for _, ep := range s.cli.Endpoints() {
		if _, err := s.cli.Defragment(ctx, ep); err != nil {
			return fmt.Errorf("reclaim: defragment %s: %w", ep, err)
		}
	}
	alarms, err := s.cli.AlarmList(ctx)
	if err != nil {
		return fmt.Errorf("reclaim: etcd alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != etcdserverpb.AlarmType_NOSPACE {
			continue
		}
		if _, err := s.cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
			return fmt.Errorf("reclaim: disarm the NOSPACE alarm of member %x: %w", a.MemberID, err)
		}
	}
	return nil
}
