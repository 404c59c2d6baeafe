package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The store's members: with embedded etcd, one per server. A server joins
// as a learner (it does not count for quorum until it has caught up),
// then promotes itself.

// Member is one member of the store's etcd cluster.
type Member struct {
	ID uint64
	// Name is the member's (its server's) name; "" until it has started.
	Name       string
	PeerURLs   []string
	ClientURLs []string
	// Learner: the member does not vote yet.
	Learner bool
}

// ErrUnhealthy: the etcd cluster refuses a new member while another is
// only just connected; try again in a moment.
var ErrUnhealthy = rpctypes.ErrUnhealthy

// ErrLearnerBehind: a learner cannot be promoted before it has caught up
// with the leader; try again in a moment.
var ErrLearnerBehind = errors.New("the learner has not caught up with the leader yet")

func member(m *etcdserverpb.Member) Member {
	return Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
}

func members(ms []*etcdserverpb.Member) []Member {
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = member(m)
	}
	return out
}

// Members lists the store's members.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd members: %w", err)
	}
	return members(resp.Members), nil
}

// AddLearner adds a learner member that will be reached at peerURL, and
// returns it with every member the cluster has now (it among them). While
// the cluster cannot take a member, the error is ErrUnhealthy.
func (s *Store) AddLearner(ctx context.Context, peerURL string) (Member, []Member, error) {
	resp, err := s.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return Member{}, nil, err
	}
	return member(resp.Member), members(resp.Members), nil
}

// RemoveMember removes member id from the cluster.
func (s *Store) RemoveMember(ctx context.Context, id uint64) error {
	_, err := s.cli.MemberRemove(ctx, id)
	return err
}

// PromoteMember makes learner id a voting member. It is done (nil) when
// the member votes already (a promotion whose answer was lost, tried
// again); ErrLearnerBehind while it is still catching up.
func (s *Store) PromoteMember(ctx context.Context, id uint64) error {
	_, err := s.cli.MemberPromote(ctx, id)
	switch {
	case err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner):
		return nil
	case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
		return fmt.Errorf("%w: %v", ErrLearnerBehind, err)
	}
	return err
}
