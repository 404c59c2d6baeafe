package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// Trigger is one thing that wakes a controller: a change of one kind that
// the predicate accepts, mapped to the keys to reconcile; or a timer.
// Each controller declares its own (Triggers); the manager only installs
// them.
type Trigger struct {
	// Kind is the kind whose changes (in the manager's caches) wake the
	// controller.
	Kind api.Kind
	// When is the predicate: whether this change matters (nil: every
	// change). old is nil for a new (or listed) object, cur nil for one
	// gone. Both are the cache's own: read only.
	When func(old, cur api.Object) bool
	// Keys maps the changed object (cur, or old when it went) to the keys
	// to reconcile. With Every it is called with nil on each tick.
	Keys func(obj api.Object) []string
	// Every, instead of Kind, queues Keys(nil) this often: for what
	// changes without an event (a node falling silent).
	Every time.Duration
}

// triggered is a Reconciler that declares what wakes it.
type triggered interface {
	Reconciler
	Triggers() []Trigger
}

// install wires t to q: a handler on its kind's cache, or a ticker run by
// spawn until ctx ends.
func (t Trigger) install(ctx context.Context, c *Caches, q *queue, spawn func(func())) error {
	if t.Keys == nil {
		return fmt.Errorf("a trigger on %q without Keys", t.Kind)
	}
	if t.Kind == "" {
		if t.Every <= 0 {
			return fmt.Errorf("a trigger with neither a kind nor a period")
		}
		spawn(func() {
			tick := time.NewTicker(t.Every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					for _, k := range t.Keys(nil) {
						q.add(k)
					}
				}
			}
		})
		return nil
	}
	lc := c.Of(t.Kind)
	if lc == nil {
		return fmt.Errorf("a trigger on %s, which the controllers do not cache", t.Kind)
	}
	lc.OnChange(func(old, cur api.Object) {
		if t.When != nil && !t.When(old, cur) {
			return
		}
		obj := cur
		if obj == nil {
			obj = old
		}
		for _, k := range t.Keys(obj) {
			q.add(k)
		}
	})
	return nil
}

func keyOfObject(o api.Object) []string {
	m := o.GetMeta()
	return []string{nsKey(m.Namespace, m.Name)}
}

func draining(o api.Object) bool {
	n, ok := o.(*api.Node)
	return ok && n.Spec.Draining && n.Metadata.DeletedAt.IsZero()
}

// drainingIn says whether a node is being drained, as the cache has it.
func drainingIn(c *Caches) func(node string) bool {
	return func(node string) bool {
		o, ok := c.Of(api.KindNode).Get("", node)
		return ok && draining(o)
	}
}

// Triggers: an App's own changes; its instances' changes; a change of a
// Secret it uses (a new version rolls it); a drain beginning or ending
// (every App may have instances on that node).
func (c *Apps) Triggers() []Trigger {
	return []Trigger{
		{Kind: api.KindApp, Keys: keyOfObject},
		{Kind: api.KindInstance,
			When: func(old, cur api.Object) bool { return either(old, cur).(*api.Instance).Spec.Job == "" },
			Keys: func(o api.Object) []string {
				in := o.(*api.Instance)
				return []string{nsKey(in.Metadata.Namespace, in.Spec.App)}
			}},
		{Kind: api.KindSecret, Keys: func(o api.Object) []string {
			m := o.GetMeta()
			return c.keysOf(c.Cache.Of(api.KindApp).ByIndex(indexSecret, nsKey(m.Namespace, m.Name)))
		}},
		{Kind: api.KindNode,
			When: func(old, cur api.Object) bool { return isDraining(old) != isDraining(cur) },
			Keys: func(api.Object) []string { return c.keysOf(c.Cache.Of(api.KindApp).List("")) }},
	}
}

func isDraining(o api.Object) bool { return o != nil && draining(o) }

func either(old, cur api.Object) api.Object {
	if cur != nil {
		return cur
	}
	return old
}

func (c *Apps) keysOf(objs []api.Object) []string {
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, keyOfObject(o)...)
	}
	return keys
}

// Triggers: one round (bindKey) for an instance waiting for a node or
// giving one back, for any change of a node that placement reads (not its
// heartbeat or figures), and every Every in case a round was refused.
func (b *Binder) Triggers() []Trigger {
	round := func(api.Object) []string { return []string{bindKey} }
	ts := []Trigger{
		{Kind: api.KindInstance,
			When: func(old, cur api.Object) bool {
				in := either(old, cur).(*api.Instance)
				return in.Spec.Node == "" || !live(in) || in.Status.Phase.Terminal()
			},
			Keys: round},
		{Kind: api.KindNode, When: placementChanged, Keys: round},
	}
	if b.Every > 0 {
		ts = append(ts, Trigger{Every: b.Every, Keys: round})
	}
	return ts
}

// placementChanged says whether a Node changed in what the scheduler
// reads of it.
func placementChanged(old, cur api.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	a, b := old.(*api.Node), cur.(*api.Node)
	return a.Status.Ready != b.Status.Ready || a.Spec.Unschedulable != b.Spec.Unschedulable ||
		a.Allocatable() != b.Allocatable() ||
		!reflect.DeepEqual(a.Metadata.Labels, b.Metadata.Labels) ||
		!reflect.DeepEqual(a.Status.Accepts, b.Status.Accepts)
}

// Triggers: a Node's arrival, departure, spec or readiness; and every
// node every third of the lease timeout, since silence makes no event.
func (c *Nodes) Triggers() []Trigger {
	return []Trigger{
		{Kind: api.KindNode,
			When: func(old, cur api.Object) bool {
				if old == nil || cur == nil {
					return true
				}
				a, b := old.(*api.Node), cur.(*api.Node)
				return a.Spec != b.Spec || a.Status.Ready != b.Status.Ready || !a.Metadata.DeletedAt.Equal(b.Metadata.DeletedAt)
			},
			Keys: func(o api.Object) []string { return []string{o.GetMeta().Name} }},
		{Every: c.LeaseTimeout / 3, Keys: func(api.Object) []string {
			nodes := c.Cache.Of(api.KindNode).List("")
			keys := make([]string, 0, len(nodes))
			for _, n := range nodes {
				keys = append(keys, n.GetMeta().Name)
			}
			slices.Sort(keys)
			return keys
		}},
	}
}

// Triggers: a Job's changes (and a run's, to its scheduled parent); its
// instances' changes.
func (c *Jobs) Triggers() []Trigger {
	return []Trigger{
		{Kind: api.KindJob, Keys: func(o api.Object) []string {
			m := o.GetMeta()
			keys := []string{nsKey(m.Namespace, m.Name)}
			if parent := m.Labels[api.LabelCronJob]; parent != "" {
				keys = append(keys, nsKey(m.Namespace, parent))
			}
			return keys
		}},
		{Kind: api.KindInstance,
			When: func(old, cur api.Object) bool { return either(old, cur).(*api.Instance).Spec.Job != "" },
			Keys: func(o api.Object) []string {
				in := o.(*api.Instance)
				return []string{nsKey(in.Metadata.Namespace, in.Spec.Job)}
			}},
	}
}

// Triggers: a change of an App that has or had spec.autoscale (then it
// requeues itself every Period while autoscale is on).
func (c *Autoscaler) Triggers() []Trigger {
	autoscaled := func(o api.Object) bool { return o != nil && o.(*api.App).Spec.Autoscale != nil }
	return []Trigger{{Kind: api.KindApp,
		When: func(old, cur api.Object) bool { return autoscaled(old) || autoscaled(cur) },
		Keys: keyOfObject}}
}
