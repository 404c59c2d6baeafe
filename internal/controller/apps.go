package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

var (
	appKind      = api.MustKind(api.KindApp)
	instanceKind = api.MustKind(api.KindInstance)
	nodeKind     = api.MustKind(api.KindNode)
)

// Apps turns each App into its Instances: one per replica of the current
// revision, replacing instances of older revisions one surge at a time.
//
// Instance names are APP-HASH-SLOT, where HASH identifies the revision's
// template and SLOT is the lowest number no instance of that revision
// uses. Two controllers (or one restarted mid-reconcile) that both decide
// to add a replica therefore try to create the same name, and the store's
// create-if-absent lets exactly one of them succeed: no duplicates.
type Apps struct {
	Store  *store.Store
	Log    *slog.Logger
	Events *Recorder
	// ServiceCIDR is where service addresses come from (DefaultServiceCIDR).
	ServiceCIDR string
	// Requeue asks for key to be reconciled again after d, even if nothing
	// changes (progress deadlines); nil in tests that drive Reconcile.
	Requeue func(key string, d time.Duration)
	// Draining, when set, says whether a node is being drained: its
	// instances are replaced as an old revision's are.
	Draining func(node string) bool
	// Admit, when set, is the servers' admission list: every template
	// the controller writes itself (an automatic rollback, a scheduled
	// image) passes it as an apply would.
	Admit func(ctx context.Context, obj api.Object) error
	// Now is the clock (tests inject one); nil is time.Now.
	Now func() time.Time
	// Cache, when set, is what the controller reads (the manager's); nil
	// reads the store.
	Cache *Caches
}

// Reconcile implements Reconciler for key "namespace/app".
//
// A reconcile writes its App at most once: scheduled changes, the
// Secrets' versions, a new revision, the status and a rollback are worked
// out on the reconcile's own copy (appChange) and written in one
// compare-and-swap at the end, with the events they make recorded after
// it. A write that lost to another writer is dropped: that writer's
// change comes back as an event, and the next reconcile starts from it.
func (c *Apps) Reconcile(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	if name == "" {
		return nil // a Job's instance: not ours
	}
	r := readerOf(c.Cache, c.Store)
	var stored *api.App
	obj, err := r.get(ctx, api.KindApp, ns, name)
	switch {
	case err == nil:
		stored = obj.(*api.App)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	insts, err := c.instancesOf(ctx, r, ns, name)
	if err != nil {
		return err
	}
	if stored == nil {
		for _, in := range insts {
			if _, err := c.remove(ctx, in); err != nil {
				return err
			}
		}
		return c.releaseServiceIPs(ctx, ns, name)
	}
	ch, err := newAppChange(stored)
	if err != nil {
		return err
	}
	c.applySchedule(ctx, ch)
	c.syncSecrets(ctx, r, ch)
	held := c.ensureRevision(ctx, ch)
	run := ch.app
	if held != "" {
		run = withCurrentRevision(ch.app)
	}
	// The status reflects what scale just did.
	if insts, err = c.scale(ctx, run, insts); err != nil {
		return err
	}
	if err := c.computeStatus(ctx, ch, insts, held); err != nil {
		return err
	}
	return c.write(ctx, ch)
}

// appChange is what one reconcile does to its App: its own copy of it
// (the cache's is shared), whether that differs from what was read beyond
// ObservedAt, and what to say once it is written.
type appChange struct {
	app    *api.App
	dirty  bool
	events []appEvent
	after  []func()
}

type appEvent struct{ typ, reason, msg string }

func newAppChange(read *api.App) (*appChange, error) {
	b, err := json.Marshal(read)
	if err != nil {
		return nil, fmt.Errorf("copy app %s/%s: %w", read.Metadata.Namespace, read.Metadata.Name, err)
	}
	cp := &api.App{}
	if err := json.Unmarshal(b, cp); err != nil {
		return nil, fmt.Errorf("copy app %s/%s: %w", read.Metadata.Namespace, read.Metadata.Name, err)
	}
	return &appChange{app: cp}, nil
}

func (ch *appChange) record(typ, reason, msg string) {
	ch.events = append(ch.events, appEvent{typ, reason, msg})
}

// write stores the change, if there is one, in one compare-and-swap on
// the revision the reconcile read, then records its events.
func (c *Apps) write(ctx context.Context, ch *appChange) error {
	if !ch.dirty {
		return nil
	}
	err := c.Store.Update(ctx, ch.app)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict):
		// Deleted, or written since it was read (an apply, the
		// autoscaler): that write's event reconciles it again.
		c.Log.Debug("app changed while reconciled; its event reconciles it again", "app", ch.app.Metadata.Namespace+"/"+ch.app.Metadata.Name, "err", err)
		return nil
	case err != nil:
		return err
	}
	readerOf(c.Cache, c.Store).wrote(api.KindApp, ch.app.Metadata.Revision)
	for _, ev := range ch.events {
		c.Events.Record(ctx, ch.app, ev.typ, ev.reason, ev.msg)
	}
	for _, f := range ch.after {
		f()
	}
	return nil
}

// instancesOf are the App's instances, by name, found by the owner index.
func (c *Apps) instancesOf(ctx context.Context, r reader, ns, app string) ([]*api.Instance, error) {
	objs, err := r.byIndex(ctx, api.KindInstance, indexOwner, ownerKey(ns, app))
	if err != nil {
		return nil, err
	}
	var out []*api.Instance
	for _, o := range objs {
		in := o.(*api.Instance)
		if in.Spec.App == app && in.Spec.Job == "" {
			out = append(out, in)
		}
	}
	sortByName(out)
	return out, nil
}

func sortByName(ins []*api.Instance) {
	sort.Slice(ins, func(i, j int) bool { return ins[i].Metadata.Name < ins[j].Metadata.Name })
}

// ensureRevision makes a changed template the App's next revision, unless
// rollouts are held (paused, or outside the maintenance window): then it
// says why.
func (c *Apps) ensureRevision(ctx context.Context, ch *appChange) (held string) {
	app := ch.app
	if app.Status.TemplateHash == api.TemplateHash(app) {
		return ""
	}
	if app.Status.Revision > 0 {
		if why := c.holdReason(app, c.now()); why != "" {
			c.Events.Record(ctx, app, "Normal", "RolloutHeld", why)
			return why
		}
	}
	cause := newRevision(app, time.Now().UTC())
	ch.dirty = true
	ch.record("Normal", "NewRevision", fmt.Sprintf("revision %d (template %s): %s", app.Status.Revision, app.Status.TemplateHash, cause))
	return ""
}

// syncSecrets records the versions of the Secrets the App uses in its
// status; a change there is a new template hash, so a new revision rolls
// out and the new instances read the new values.
func (c *Apps) syncSecrets(ctx context.Context, r reader, ch *appChange) {
	if want := c.secretsRevision(ctx, r, ch.app); ch.app.Status.SecretsRevision != want {
		ch.app.Status.SecretsRevision = want
		ch.dirty = true
	}
}

// secretsRevision is "name=version,…" of the Secrets the template uses; a
// missing one is "name=none" (its instances fail to start until it exists,
// and then roll).
func (c *Apps) secretsRevision(ctx context.Context, r reader, app *api.App) string {
	var parts []string
	for _, name := range app.Spec.Template.SecretNames() {
		v := "none"
		if obj, err := r.get(ctx, api.KindSecret, app.Metadata.Namespace, name); err == nil {
			v = strconv.FormatInt(obj.(*api.Secret).Status.Version, 10)
		}
		parts = append(parts, name+"="+v)
	}
	return strings.Join(parts, ",")
}

func live(in *api.Instance) bool { return in.Metadata.DeletedAt.IsZero() }

// available: may take traffic (running and passing readiness).
func available(in *api.Instance) bool {
	return live(in) && in.Status.Phase == api.PhaseRunning && in.Status.Ready
}

// scale creates and removes instances so that the current revision has
// spec.replicas live instances, surging by one while older revisions are
// replaced and removing old instances only as new ones become available.
// Instances on a draining node count as old. It returns the instances as
// they are after it, by name.
func (c *Apps) scale(ctx context.Context, app *api.App, insts []*api.Instance) ([]*api.Instance, error) {
	after := make(map[string]*api.Instance, len(insts))
	for _, in := range insts {
		after[in.Metadata.Name] = in
	}
	if err := c.scaleInto(ctx, app, insts, after); err != nil {
		return nil, err
	}
	out := make([]*api.Instance, 0, len(after))
	for _, in := range after {
		out = append(out, in)
	}
	sortByName(out)
	return out, nil
}

// scaleInto is scale; after holds every instance by name as it now is
// (a removed one deleted from it).
func (c *Apps) scaleInto(ctx context.Context, app *api.App, insts []*api.Instance, after map[string]*api.Instance) error {
	removeOne := func(in *api.Instance) error {
		now, err := c.remove(ctx, in)
		if err != nil {
			return err
		}
		if now == nil {
			delete(after, in.Metadata.Name)
		} else {
			after[in.Metadata.Name] = now
		}
		return nil
	}
	want := int(*app.Spec.Replicas)
	var cur, old []*api.Instance
	for _, in := range insts {
		if !live(in) {
			continue
		}
		if in.Metadata.Labels[LabelHash] == app.Status.TemplateHash && (c.Draining == nil || in.Spec.Node == "" || !c.Draining(in.Spec.Node)) {
			cur = append(cur, in)
		} else {
			old = append(old, in)
		}
	}
	surge, unavailable := int(*app.Spec.Update.MaxSurge), int(*app.Spec.Update.MaxUnavailable)
	create := want - len(cur)
	if len(old) > 0 {
		create = min(create, want+surge-len(cur)-len(old))
	}
	if create > 0 {
		used := map[string]bool{}
		for _, in := range insts {
			used[in.Metadata.Name] = true
		}
		if made, err := c.createAll(ctx, app, used, create); err != nil {
			return err
		} else if made != nil {
			for _, in := range made {
				after[in.Metadata.Name] = in
			}
			create = 0
		}
		for slot := 0; create > 0; slot++ {
			name := instanceName(app, slot)
			if used[name] {
				continue
			}
			made, err := c.create(ctx, app, name)
			if err == nil {
				after[name] = made
			} else {
				if !errors.Is(err, store.ErrAlreadyExists) {
					return err
				}
				// Another controller made the same decision since insts was
				// read: the replica exists, so count it. A name held by
				// another App (long names are truncated) is skipped.
				o, gerr := c.Store.Get(ctx, instanceKind, app.Metadata.Namespace, name)
				if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
					return gerr
				}
				if gerr != nil || o.(*api.Instance).Spec.App != app.Metadata.Name {
					continue
				}
				after[name] = o.(*api.Instance)
			}
			create--
		}
	}
	if extra := len(cur) - want; extra > 0 {
		sortForRemoval(cur)
		for _, in := range cur[:extra] {
			if err := removeOne(in); err != nil {
				return err
			}
		}
	}
	// Old revisions: unready ones go at once; ready ones go only while at
	// least replicas-maxUnavailable instances stay ready.
	availCur := 0
	for _, in := range cur {
		if available(in) {
			availCur++
		}
	}
	sortForRemoval(old)
	availOld := 0
	for _, in := range old {
		if available(in) {
			availOld++
		}
	}
	minAvailable := want - unavailable
	for _, in := range old {
		if available(in) {
			if availCur+availOld-1 < minAvailable {
				continue
			}
			availOld--
		}
		if err := removeOne(in); err != nil {
			return err
		}
	}
	return nil
}

func instanceName(app *api.App, slot int) string {
	base := app.Metadata.Name
	if len(base) > 45 {
		base = strings.TrimRight(base[:45], "-")
	}
	return base + "-" + app.Status.TemplateHash[:5] + "-" + strconv.Itoa(slot)
}

// sortForRemoval puts the instances cheapest to lose first: unplaced, then
// not running, then the newest.
func sortForRemoval(ins []*api.Instance) {
	rank := func(in *api.Instance) int {
		switch {
		case in.Spec.Node == "":
			return 0
		case !available(in):
			return 1
		}
		return 2
	}
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := ins[i], ins[j]
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		// Highest slot first, so scaling down undoes scaling up.
		if sa, sb := slotNumber(a.Metadata.Name), slotNumber(b.Metadata.Name); sa != sb {
			return sa > sb
		}
		return a.Metadata.Name > b.Metadata.Name
	})
}

// slotNumber is the SLOT of an APP-HASH-SLOT name (-1 if it has none).
func slotNumber(name string) int {
	i := strings.LastIndexByte(name, '-')
	n, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil {
		return -1
	}
	return n
}

func (c *Apps) create(ctx context.Context, app *api.App, name string) (*api.Instance, error) {
	in := newInstance(app, name)
	if err := c.Store.Create(ctx, in); err != nil {
		return nil, err
	}
	readerOf(c.Cache, c.Store).wrote(api.KindInstance, in.Metadata.Revision)
	c.Log.Debug("instance created", "instance", name, "app", app.Metadata.Name)
	return in, nil
}

// createAll creates the next n instances of app in free slots, in one
// transaction, and returns them. It returns none, creating nothing, if a
// name was taken meanwhile; the caller then goes slot by slot.
func (c *Apps) createAll(ctx context.Context, app *api.App, used map[string]bool, n int) ([]*api.Instance, error) {
	var made []*api.Instance
	var objs []api.Object
	for slot := 0; len(objs) < n; slot++ {
		if name := instanceName(app, slot); !used[name] {
			in := newInstance(app, name)
			made = append(made, in)
			objs = append(objs, in)
		}
	}
	err := c.Store.CreateAll(ctx, objs)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	readerOf(c.Cache, c.Store).wrote(api.KindInstance, made[0].Metadata.Revision)
	c.Log.Debug("instances created", "app", app.Metadata.Name, "count", n)
	return made, nil
}

func newInstance(app *api.App, name string) *api.Instance {
	labels := map[string]string{}
	for k, v := range app.Metadata.Labels {
		labels[k] = v
	}
	labels[api.LabelApp] = app.Metadata.Name
	labels[LabelHash] = app.Status.TemplateHash
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: name, Namespace: app.Metadata.Namespace, Labels: labels},
		Spec: api.InstanceSpec{
			App:       app.Metadata.Name,
			Revision:  app.Status.Revision,
			Placement: app.Spec.Placement,
			Template:  app.Spec.Template,
		},
		Status: api.InstanceStatus{Phase: api.PhasePending},
	}
}

// remove tears an instance down: an unplaced one is deleted at once, a
// placed one is marked so its agent stops the container and then deletes it.
// It returns the instance as it now is (nil: gone).
func (c *Apps) remove(ctx context.Context, in *api.Instance) (*api.Instance, error) {
	if in.Spec.Node == "" {
		err := c.Store.Delete(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, in.Metadata.Revision)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return in, err
	}
	if !in.Metadata.DeletedAt.IsZero() {
		return in, nil
	}
	obj, err := c.Store.Mutate(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, func(o api.Object) error {
		if o.GetMeta().DeletedAt.IsZero() {
			o.GetMeta().DeletedAt = time.Now().UTC()
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return in, err
	}
	readerOf(c.Cache, c.Store).wrote(api.KindInstance, obj.GetMeta().Revision)
	return obj.(*api.Instance), nil
}

// computeStatus records in ch what the current revision's instances are
// doing, moves the rollout's state (Progressing, Complete, Failed) and,
// past the progress deadline, rolls back to the last good revision when
// allowed.
func (c *Apps) computeStatus(ctx context.Context, ch *appChange, insts []*api.Instance, held string) error {
	app := ch.app
	now := c.now()
	st := app.Status // keeps revision, hash, history, service IP, rollout bookkeeping
	ip, err := c.ensureServiceIP(ctx, app)
	if err != nil {
		return err
	}
	st.ServiceIP = ip
	st.Replicas = *app.Spec.Replicas
	st.Placed, st.Running, st.Ready, st.Message = 0, 0, 0, ""
	var unplaced, failed string
	var old int32
	for _, in := range insts {
		if !live(in) {
			continue
		}
		if in.Metadata.Labels[LabelHash] != st.TemplateHash {
			old++
			continue
		}
		if in.Spec.Node != "" {
			st.Placed++
		} else if unplaced == "" {
			unplaced = in.Status.Message
		}
		if in.Status.Phase == api.PhaseRunning {
			st.Running++
		}
		if available(in) {
			st.Ready++
		} else if in.Status.Message != "" && failed == "" && in.Spec.Node != "" {
			failed = in.Metadata.Name + ": " + in.Status.Message
		}
	}
	switch {
	case unplaced != "":
		st.Message = fmt.Sprintf("%d/%d placed: %s", st.Placed, st.Replicas, unplaced)
	case failed != "":
		st.Message = failed
	case held != "":
		st.Message = held
	case st.Rollout == api.RolloutFailed:
		st.Message = app.Status.Message // why it failed (and why it was not rolled back)
	}
	rollback := c.advanceRollout(app, &st, old, now)
	if st.Rollout != api.RolloutFailed && app.Status.Rollout == api.RolloutFailed && st.Message == app.Status.Message {
		st.Message = "" // the failure's reason, kept while it lasted
	}
	if rollback != nil {
		c.rollBack(ctx, ch, rollback, st.Message)
		return nil
	}
	if st.Rollout == api.RolloutProgressing && c.Requeue != nil {
		deadline := time.Duration(app.Spec.Update.ProgressDeadlineSeconds) * time.Second
		c.Requeue(nsKey(app.Metadata.Namespace, app.Metadata.Name), st.ProgressAt.Add(deadline).Sub(now)+200*time.Millisecond)
	}
	if statusSame(&st, &app.Status) {
		return nil
	}
	st.ObservedAt = now.Truncate(time.Second)
	app.Status = st // its autoscale part is the autoscaler's, as read
	ch.dirty = true
	return nil
}

func statusSame(a, b *api.AppStatus) bool {
	return a.Replicas == b.Replicas && a.Placed == b.Placed && a.Running == b.Running && a.Ready == b.Ready &&
		a.Message == b.Message && a.Rollout == b.Rollout && a.LastGoodRevision == b.LastGoodRevision &&
		a.ProgressAt.Equal(b.ProgressAt) && a.ServiceIP == b.ServiceIP
}

var errStale = errors.New("stale")
