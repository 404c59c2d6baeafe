package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	cli := s.store.Client()
	eps := cli.Endpoints()
	// Only a member's own word that it has no leader counts: a slow
	// answer on a busy machine, or a caller that went away, is no
	// evidence, and the request goes on to find out for itself.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var st *clientv3.StatusResponse
	leaderless := false
	for _, ep := range eps {
		ectx, ecancel := context.WithTimeout(ctx, time.Second)
		resp, err := cli.Status(ectx, ep)
		ecancel()
		switch {
		case err == nil && resp.Leader != 0:
			return nil // any member that knows a leader will do
		case err == nil:
			leaderless = true
			if st == nil {
				st = resp
			}
		case errors.Is(err, rpctypes.ErrNoLeader):
			leaderless = true
		}
	}
	if !leaderless {
		return nil
	}
	members, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return fmt.Errorf("no quorum: the store has no leader (%v): %w", err, errNoQuorum)
	}
	voters, reachable := 0, 0
	for _, m := range members.Members {
		if m.IsLearner {
			continue
		}
		voters++
		if st != nil && m.ID == st.Header.MemberId || peerReachable(m.PeerURLs) {
			reachable++
		}
	}
	if reachable > voters/2 {
		return fmt.Errorf("no leader: %d of %d servers reachable, electing one; try again in a moment: %w", reachable, voters, errNoQuorum)
	}
	return fmt.Errorf("no quorum: %d of %d servers reachable (%d needed); running containers keep running: %w",
		reachable, voters, voters/2+1, errNoQuorum)
}

// peerReachable says whether one of a member's peer URLs takes a TCP
// connection.
func peerReachable(urls []string) bool {
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			continue
		}
		if c, err := net.DialTimeout("tcp", p.Host, 300*time.Millisecond); err == nil {
			c.Close()
			return true
		}
	}
	return false
}
