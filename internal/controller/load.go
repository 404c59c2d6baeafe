package controller

import (
	"context"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// NodeLoad reads Apps' load from the Nodes' status, where agents publish
// their instances' use and their proxies' traffic. It reads the Node list
// at most once per MaxAge, whatever the number of Apps.
type NodeLoad struct {
	Store *store.Store
	// MaxAge is how long one Node list answers every App; half a second
	// if zero.
	MaxAge time.Duration

	mu sync.Mutex
	at time.Time
	// nodes is never written once listed: the autoscaler's workers read
	// it outside mu, so a fresh list gets a fresh slice.
	nodes []*api.Node
}

// staleAfter is how old a node's figures may be to count: a node that
// went silent no longer speaks for its instances.
const staleAfter = 15 * time.Second

// Load implements LoadSource.
func (l *NodeLoad) Load(ctx context.Context, ns, app string) (AppLoad, error) {
	nodes, err := l.list(ctx)
	if err != nil {
		return AppLoad{}, err
	}
	var out AppLoad
	now := time.Now()
	for _, n := range nodes {
		if !n.Status.Ready || now.Sub(n.Status.LastHeartbeat) > staleAfter {
			continue
		}
		for _, u := range n.Status.Usage {
			if u.Namespace == ns && u.App == app {
				out.Instances++
				out.MilliCPU += u.MilliCPU
			}
		}
		for _, t := range n.Status.Traffic {
			if t.Namespace == ns && t.App == app {
				out.RequestsPerSecond += t.RequestsPerSecond
				out.Waiting = out.Waiting || t.Waiting > 0
			}
		}
	}
	return out, nil
}

func (l *NodeLoad) list(ctx context.Context) ([]*api.Node, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	maxAge := l.MaxAge
	if maxAge == 0 {
		maxAge = 500 * time.Millisecond
	}
	if time.Since(l.at) < maxAge {
		return l.nodes, nil
	}
	objs, _, err := l.Store.List(ctx, nodeKind, "")
	if err != nil {
		return nil, err
	}
	nodes := make([]*api.Node, 0, len(objs))
	for _, o := range objs {
		nodes = append(nodes, o.(*api.Node))
	}
	l.nodes, l.at = nodes, time.Now()
	return nodes, nil
}
