package netproxy

import (
	"context"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

var (
	appKind      = api.MustKind(api.KindApp)
	instanceKind = api.MustKind(api.KindInstance)
)

// watchLoop keeps one kind's view current: list, then watch from the
// list's revision; on any error list again, with back-off. A failed list
// leaves the last view in place, so the node keeps serving while the
// server is away.
func (p *Proxy) watchLoop(ctx context.Context, k api.KindInfo) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := p.listAndWatch(ctx, k)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			delay = 200 * time.Millisecond
		}
		p.log.Warn("watch broken; keeping the last endpoints and retrying", "kind", k.Kind, "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (p *Proxy) listAndWatch(ctx context.Context, k api.KindInfo) error {
	objs, rev, err := p.cfg.Client.List(ctx, k, "", client.ListOptions{})
	if err != nil {
		return err
	}
	p.replace(k.Kind, objs)
	events, werr, err := p.cfg.Client.Watch(ctx, k, "", rev, client.ListOptions{})
	if err != nil {
		return err
	}
	for ev := range events {
		// Take whatever else is already buffered, so a burst costs one
		// recompute.
		batch := []client.Event{ev}
	more:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		p.update(batch)
	}
	return werr()
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
	}
	p.listed[kind] = true
	p.recomputeLocked()
	p.mu.Unlock()
	p.poke()
}

// update applies watch events.
func (p *Proxy) update(events []client.Event) {
	p.mu.Lock()
	changed := false
	for _, ev := range events {
		switch o := ev.Object.(type) {
		case *api.App:
			changed = true
			if ev.Type == "DELETED" {
				delete(p.apps, objKey(&o.Metadata))
			} else {
				p.apps[objKey(&o.Metadata)] = o
			}
		case *api.Instance:
			changed = true
			if ev.Type == "DELETED" {
				delete(p.insts, objKey(&o.Metadata))
			} else {
				p.insts[objKey(&o.Metadata)] = o
			}
		}
	}
	if changed {
		p.recomputeLocked()
	}
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}
