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
// at most once per half second, whatever the number of Apps.
type NodeLoad struct {
	Store *store.Store

	mu    sync.Mutex
	at    time.Time
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
	if time.Since(l.at) < 500*time.Millisecond {
		return l.nodes, nil
	}
	objs, _, err := l.Store.List(ctx, nodeKind, "")
	if err != nil {
		return nil, err
	}
	l.nodes = l.nodes[:0]
	for _, o := range objs {
		l.nodes = append(l.nodes, o.(*api.Node))
	}
	l.at = time.Now()
	return l.nodes, nil
}
