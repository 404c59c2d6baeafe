package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A Guard makes a check-then-write safe against another writer's at the
// same moment: the checker reads the guard's revision before what it
// checks, and its write (through Guarded) succeeds only if the guard has
// not moved since, and moves it. Two writers that checked the same state
// cannot both write: the second gets ErrGuardMoved, checks again, and
// writes or is refused. (A namespace's quota is checked so.)
type Guard struct {
	// Name says what the guard protects ("quota/web").
	Name string
	// Revision is the guard's revision when the checker read it (0: it
	// has never moved).
	Revision int64
}

// ErrGuardMoved: a guarded write found its guard moved since the check it
// rests on; check again.
var ErrGuardMoved = errors.New("another write changed what this one was checked against")

func guardKey(name string) string { return "/shoal-guards/" + name }

// GuardRevision reads guard name's revision, for a Guard; read it before
// what the check reads.
func (s *Store) GuardRevision(ctx context.Context, name string) (int64, error) {
	resp, err := s.cli.Get(ctx, guardKey(name))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].ModRevision, nil
}

// Guarded returns a view of the store whose writes succeed only if none of
// guards has moved since it was read, and move each of them.
func (s *Store) Guarded(guards ...Guard) *Store {
	if len(guards) == 0 {
		return s
	}
	v := &Store{cli: s.cli, now: s.now, fence: s.fence}
	v.guards = append(append([]Guard(nil), s.guards...), guards...)
	return v
}

// guardOps are the compares and puts that carry s's guards in a write.
func (s *Store) guardOps() ([]clientv3.Cmp, []clientv3.Op) {
	var cmps []clientv3.Cmp
	var puts []clientv3.Op
	for _, g := range s.guards {
		k := guardKey(g.Name)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", g.Revision))
		puts = append(puts, clientv3.OpPut(k, ""))
	}
	return cmps, puts
}

// guardsMoved says, after a failed write, whether one of s's guards moved
// (rather than the objects the write compared).
func (s *Store) guardsMoved(ctx context.Context) error {
	for _, g := range s.guards {
		rev, err := s.GuardRevision(ctx, g.Name)
		if err != nil {
			return err
		}
		if rev != g.Revision {
			return fmt.Errorf("%s: %w", g.Name, ErrGuardMoved)
		}
	}
	return nil
}
