package store

import (
	"context"
	"errors"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Quorum is what the store's members say of their leader.
type Quorum struct {
	// Leaderless: a member answered that it has no leader. Only a
	// member's own word counts: a slow answer on a busy machine, or a
	// caller that went away, is no evidence of it.
	Leaderless bool
	// Voters are the voting members and Reachable those of them that take
	// a connection on a peer URL (the member that answered counts);
	// counted only when Leaderless.
	Voters, Reachable int
}

// Quorum asks the members it reaches whether they have a leader; when
// one says it has none, it counts the voting members it can reach. The
// error is that of listing the members (Leaderless is true then). It
// takes at most about three seconds, whatever ctx says.
func (s *Store) Quorum(ctx context.Context) (Quorum, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var q Quorum
	var st *clientv3.StatusResponse
	for _, ep := range s.cli.Endpoints() {
		ectx, ecancel := context.WithTimeout(ctx, time.Second)
		resp, err := s.cli.Status(ectx, ep)
		ecancel()
		switch {
		case err == nil && resp.Leader != 0:
			return Quorum{}, nil // any member that knows a leader will do
		case err == nil:
			q.Leaderless = true
			if st == nil {
				st = resp
			}
		case errors.Is(err, rpctypes.ErrNoLeader):
			q.Leaderless = true
		}
	}
	if !q.Leaderless {
		return q, nil
	}
	list, err := s.cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return q, err
	}
	for _, m := range list.Members {
		if m.IsLearner {
			continue
		}
		q.Voters++
		if st != nil && m.ID == st.Header.MemberId || peerReachable(m.PeerURLs) {
			q.Reachable++
		}
	}
	return q, nil
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
