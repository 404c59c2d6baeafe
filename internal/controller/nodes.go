package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// Nodes watches node heartbeats. A node whose agent has not renewed its
// lease within LeaseTimeout is marked not ready (no new instances go
// there); one silent for LostAfter is lost, and its instances are removed
// from the store so their apps replace them on other nodes. The agent of a
// lost node, when it comes back, removes the containers it no longer owns.
type Nodes struct {
	Store        *store.Store
	Log          *slog.Logger
	Events       *Recorder
	LeaseTimeout time.Duration
	LostAfter    time.Duration
	// ClusterCIDR is where node subnets come from (DefaultClusterCIDR).
	ClusterCIDR string
	// Since is when this leadership began: no node is judged silent for
	// longer than that. Heartbeats could not be written while there was no
	// leader (no quorum), and every node must not look lost when it is back.
	Since time.Time
	// Cache, when set, is what the controller reads (the manager's); nil
	// reads the store.
	Cache *Caches
	now   func() time.Time
}

// silence is how long node has been silent, as far as this leader knows.
func (c *Nodes) silence(n *api.Node, now time.Time) time.Duration {
	beat := n.Status.LastHeartbeat
	if beat.Before(c.Since) {
		beat = c.Since
	}
	return now.Sub(beat)
}

// Reconcile implements Reconciler for key "node name".
func (c *Nodes) Reconcile(ctx context.Context, name string) error {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	r := readerOf(c.Cache, c.Store)
	var node *api.Node
	obj, err := r.get(ctx, api.KindNode, "", name)
	switch {
	case err == nil:
		node = obj.(*api.Node)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	silent := time.Duration(1 << 62)
	if node != nil {
		if err := c.ensureSubnet(ctx, node); err != nil {
			return err
		}
	} else if err := c.releaseSubnet(ctx, name); err != nil {
		return err
	}
	if node != nil {
		silent = c.silence(node, now())
		if node.Status.Ready && silent > c.LeaseTimeout {
			written, err := c.Store.Mutate(ctx, nodeKind, "", name, func(o api.Object) error {
				n := o.(*api.Node)
				if c.silence(n, now()) <= c.LeaseTimeout {
					return errStale
				}
				n.Status.Ready = false
				n.Status.Message = fmt.Sprintf("no heartbeat for %s", silent.Round(time.Second))
				return nil
			})
			if err != nil && !errors.Is(err, errStale) {
				return err
			}
			if err == nil {
				r.wrote(api.KindNode, written.GetMeta().Revision)
				c.Log.Warn("node not ready", "node", name, "silent", silent.Round(time.Second))
				c.Events.Record(ctx, node, "Warning", "NodeNotReady", fmt.Sprintf("no heartbeat for %s", silent.Round(time.Second)))
			}
		}
	}
	if silent < c.LostAfter {
		return nil
	}
	// Lost (or deleted) node, as the cache says: the store must say so
	// too before its instances go (a cache behind its watch would tear a
	// healthy node's workload down).
	switch fresh, err := c.Store.Get(ctx, nodeKind, "", name); {
	case err == nil:
		if c.silence(fresh.(*api.Node), now()) < c.LostAfter {
			return nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	// Release its instances.
	objs, err := r.byIndex(ctx, api.KindInstance, indexNode, name)
	if err != nil {
		return err
	}
	for _, o := range objs {
		in := o.(*api.Instance)
		if in.Spec.Node != name {
			continue
		}
		err := c.Store.Delete(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, in.Metadata.Revision)
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return err
		}
		if err == nil {
			c.Log.Warn("instance released from lost node", "instance", in.Metadata.Name, "node", name)
		}
	}
	return nil
}
