package netproxy

import (
	"context"
	"net/netip"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/listwatch"
)

var (
	appKind      = api.MustKind(api.KindApp)
	instanceKind = api.MustKind(api.KindInstance)
	nodeKind     = api.MustKind(api.KindNode)
	nsKind       = api.MustKind(api.KindNamespace)
)

// watchLoop keeps one kind's view current. A failed list leaves the last
// view in place, so the node keeps serving while the server is away.
func (p *Proxy) watchLoop(ctx context.Context, k api.KindInfo) {
	l := &listwatch.Loop{
		Name:    k.Plural,
		Source:  p.cfg.Client.Source(k, "", client.ListOptions{}),
		Replace: func(objs []api.Object, _ int64) { p.replace(k.Kind, objs) },
		Update:  p.update,
		Expired: client.Expired,
		Log:     p.log,
	}
	l.Run(ctx)
}

// replace installs the result of a list.
func (p *Proxy) replace(kind api.Kind, objs []api.Object) {
	p.mu.Lock()
	switch kind {
	case api.KindApp:
		p.apps = make(map[string]*api.App, len(objs))
		for _, o := range objs {
			if a, ok := o.(*api.App); ok {
				p.apps[objKey(&a.Metadata)] = a
			}
		}
	case api.KindInstance:
		p.insts = make(map[string]*api.Instance, len(objs))
		for _, o := range objs {
			if in, ok := o.(*api.Instance); ok {
				p.insts[objKey(&in.Metadata)] = in
			}
		}
	case api.KindNode:
		p.subnets = make(map[string]netip.Prefix, len(objs))
		for _, o := range objs {
			if n, ok := o.(*api.Node); ok {
				p.setNodeLocked(n)
			}
		}
	case api.KindNamespace:
		p.isolated = map[string]bool{}
		for _, o := range objs {
			if ns, ok := o.(*api.Namespace); ok {
				p.setNamespaceLocked(ns, false)
			}
		}
	}
	p.listed[kind] = true
	p.recomputeLocked()
	p.mu.Unlock()
	p.poke()
	p.pokeIsolation()
}

// update applies watch events.
func (p *Proxy) update(events []api.WatchEvent) {
	p.mu.Lock()
	changed, isolation := false, false
	for _, ev := range events {
		switch o := ev.Object.(type) {
		case *api.App:
			changed = true
			if ev.Type == api.WatchDeleted {
				delete(p.apps, objKey(&o.Metadata))
			} else {
				p.apps[objKey(&o.Metadata)] = o
			}
		case *api.Instance:
			changed = true
			if ev.Type == api.WatchDeleted {
				delete(p.insts, objKey(&o.Metadata))
			} else {
				p.insts[objKey(&o.Metadata)] = o
			}
		case *api.Node:
			// Heartbeats change Nodes every few seconds; only a subnet
			// matters here.
			old, had := p.subnets[o.Metadata.Name]
			if ev.Type == api.WatchDeleted {
				delete(p.subnets, o.Metadata.Name)
			} else {
				p.setNodeLocked(o)
			}
			now, has := p.subnets[o.Metadata.Name]
			changed = changed || had != has || old != now
		case *api.Namespace:
			isolation = p.setNamespaceLocked(o, ev.Type == api.WatchDeleted) || isolation
		}
	}
	if changed {
		p.recomputeLocked()
	}
	p.mu.Unlock()
	if changed {
		p.poke()
	}
	if changed || isolation {
		p.pokeIsolation()
	}
}
