package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errNoQuorum marks a request the store cannot answer now: it has no
// leader (a majority of its members is gone or cut off). It is a 503, and
// clients try another server.
var errNoQuorum = errors.New("no quorum")

// quorumCheck remembers, for a second, whether the store has a leader: a
// request that would wait for one gets a 503 at once instead.
type quorumCheck struct {
	mu       sync.Mutex
	at       time.Time
	err      error
	checking bool // one request asks; the others take the last answer
}

// quorum returns an errNoQuorum, saying how many servers it can reach,
// when the store's members say they have no leader; nil otherwise.
func (s *Server) quorum(ctx context.Context) error {
	q := &s.quorumCheck
	q.mu.Lock()
	// A leader is remembered for a second; its absence for a moment only,
	// as an election ends within one. No request waits for another's
	// check: the check may take seconds on a busy machine.
	if keep := time.Second; q.checking || q.err != nil && time.Since(q.at) < keep/4 || q.err == nil && time.Since(q.at) < keep {
		err := q.err
		q.mu.Unlock()
		return err
	}
	q.checking = true
	q.mu.Unlock()
	err := s.checkQuorum(ctx)
	q.mu.Lock()
	q.err, q.at, q.checking = err, time.Now(), false
	q.mu.Unlock()
	return err
}

func (s *Server) checkQuorum(ctx context.Context) error {
	q, err := s.store.Quorum(ctx)
	switch {
	case !q.Leaderless:
		return nil
	case err != nil:
		return fmt.Errorf("no quorum: the store has no leader (%v): %w", err, errNoQuorum)
	case q.Reachable > q.Voters/2:
		return fmt.Errorf("no leader: %d of %d servers reachable, electing one; try again in a moment: %w", q.Reachable, q.Voters, errNoQuorum)
	}
	return fmt.Errorf("no quorum: %d of %d servers reachable (%d needed); running containers keep running: %w",
		q.Reachable, q.Voters, q.Voters/2+1, errNoQuorum)
}
