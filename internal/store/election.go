package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// An election picks one holder among candidates: each campaigns under
// the election's prefix with a key on its own session's lease, and the
// candidate whose key is oldest holds it. A holder that stops renewing
// its session loses it within the session's TTL.

// ControllersElection is the election whose holder runs the controllers.
const ControllersElection = "/shoal-election/controllers"

// Election is one election of the store.
type Election struct {
	s      *Store
	prefix string
}

// Election returns the election named name (ControllersElection).
func (s *Store) Election(name string) *Election { return &Election{s: s, prefix: name} }

// Leader is the value (the server's name) of the oldest candidate of an
// election, who holds it; "" when nobody campaigns.
func (s *Store) Leader(ctx context.Context, election string) (string, error) {
	c, err := s.Election(election).Candidates(ctx)
	if err != nil || len(c) == 0 {
		return "", err
	}
	return c[0].Identity, nil
}

// Candidate is one campaign in an election.
type Candidate struct {
	Identity string
	// Key is the candidate's key in the store, unique to its campaign.
	Key   string
	lease clientv3.LeaseID
}

// Candidates lists the election's candidates, the oldest (the holder)
// first.
func (e *Election) Candidates(ctx context.Context) ([]Candidate, error) {
	resp, err := e.s.cli.Get(ctx, e.prefix+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("election %s: %w", e.prefix, err)
	}
	out := make([]Candidate, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = Candidate{Identity: string(kv.Value), Key: string(kv.Key), lease: clientv3.LeaseID(kv.Lease)}
	}
	return out, nil
}

// Evict ends c's session, as its expiry would: c leaves the election (and
// loses it if it held it) at once.
func (e *Election) Evict(ctx context.Context, c Candidate) error {
	if _, err := e.s.cli.Revoke(ctx, c.lease); err != nil {
		return fmt.Errorf("election %s: evict %s (%s): %w", e.prefix, c.Identity, c.Key, err)
	}
	return nil
}

// Campaign waits until identity holds the election and returns its term,
// on a session that lives ttl (whole seconds) past its last renewal and
// renews itself until ctx ends. Candidates of identity's own earlier
// sessions (a run of the same server killed while campaigning, its lease
// not yet expired) are evicted first, so a restarted server does not wait
// for its own ghost.
func (e *Election) Campaign(ctx context.Context, identity string, ttl time.Duration) (*Term, error) {
	sess, err := concurrency.NewSession(e.s.cli, concurrency.WithTTL(int(ttl/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("election %s: session: %w", e.prefix, err)
	}
	if cands, err := e.Candidates(ctx); err == nil {
		for _, c := range cands {
			if c.Identity == identity && c.lease != sess.Lease() {
				_ = e.Evict(ctx, c)
			}
		}
	}
	el := concurrency.NewElection(sess, e.prefix)
	if err := el.Campaign(ctx, identity); err != nil {
		sess.Close()
		return nil, err
	}
	return &Term{sess: sess, el: el, store: e.s.Fenced(el.Key(), el.Rev())}, nil
}

// Term is one holding of an election, from Campaign until its session
// ends.
type Term struct {
	sess  *concurrency.Session
	el    *concurrency.Election
	store *Store
}

// Store is a view of the store whose writes succeed only while this term
// lasts (ErrNotLeader after): a holder whose session expired mid-write
// cannot race the next one.
func (t *Term) Store() *Store { return t.store }

// Key is the holder's candidate key.
func (t *Term) Key() string { return t.el.Key() }

// Done is closed when the term's session ends (expired, evicted, or ctx
// of Campaign ended).
func (t *Term) Done() <-chan struct{} { return t.sess.Done() }

// Resign gives the election up, so that another candidate holds it at
// once rather than when the session expires.
func (t *Term) Resign(ctx context.Context) error { return t.el.Resign(ctx) }

// Close ends the term's session (revoking its lease, while the store
// answers within the session's TTL and Campaign's ctx lasts).
func (t *Term) Close() { _ = t.sess.Close() }
