package controller

import (
	"context"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
)

// NodeLoad reads Apps' load from the Nodes' status, where agents publish
// their instances' use and their proxies' traffic, as the controllers'
// cache of Nodes holds it: the autoscaler asks once per App per second,
// and no ask lists the Nodes from the store.
type NodeLoad struct {
	Nodes *listwatch.Cache
}

// staleAfter is how old a node's figures may be to count: a node that
// went silent no longer speaks for its instances.
const staleAfter = 15 * time.Second

// Load implements LoadSource.
func (l *NodeLoad) Load(_ context.Context, ns, app string) (AppLoad, error) {
	var out AppLoad
	now := time.Now()
	for _, o := range l.Nodes.List("") {
		n := o.(*api.Node)
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
