package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A running server checks in under registrationPrefix/NAME with a short
// lease, so the others know where its API is and that it lives.

const registrationPrefix = "/shoal-servers/"

// registrationTTL is how long a server's check-in outlives it (seconds).
const registrationTTL = 10

// Registration is what a running server says of itself.
type Registration struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Version string `json:"version"`
}

// Register keeps reg checked in until ctx ends, renewing it (and writing
// it again after a lost lease) for as long as the store answers. When ctx
// ends it checks out at once rather than when the lease runs out.
func (s *Store) Register(ctx context.Context, reg Registration, log *slog.Logger) {
	val, _ := json.Marshal(reg)
	for ctx.Err() == nil {
		err := func() error {
			lease, err := s.cli.Grant(ctx, registrationTTL)
			if err != nil {
				return err
			}
			if _, err := s.cli.Put(ctx, registrationPrefix+reg.Name, string(val), clientv3.WithLease(lease.ID)); err != nil {
				return err
			}
			ka, err := s.cli.KeepAlive(ctx, lease.ID)
			if err != nil {
				return err
			}
			for range ka {
			}
			return errors.New("lease lost")
		}()
		if ctx.Err() != nil {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.Unregister(dctx, reg.Name)
			cancel()
			return
		}
		log.Warn("server check-in lost; renewing", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Unregister removes the check-in of server name (one that was removed
// from the cluster, or one checking out).
func (s *Store) Unregister(ctx context.Context, name string) error {
	_, err := s.cli.Delete(ctx, registrationPrefix+name)
	return err
}

// Registrations are the servers checked in now. A check-in that does not
// decode is left out.
func (s *Store) Registrations(ctx context.Context) ([]Registration, error) {
	resp, err := s.cli.Get(ctx, registrationPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Registration, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var reg Registration
		if json.Unmarshal(kv.Value, &reg) == nil {
			out = append(out, reg)
		}
	}
	return out, nil
}
