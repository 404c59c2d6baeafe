package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// The tests in this package run the controllers against a real embedded
// etcd. Nodes are played by fakeNode: it heartbeats like an agent, marks the
// instances bound to it Running, and deletes the ones marked for deletion,
// which is what a real agent does through the API.

const testNS = api.DefaultNamespace

// harness is one embedded etcd with its fake nodes and controllers.
type harness struct {
	t   *testing.T
	st  *store.Store
	log *slog.Logger
	// Timings of fake nodes added afterwards.
	heartbeat  time.Duration
	startDelay time.Duration
	stopDelay  time.Duration
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, _ := storetest.Start(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &harness{t: t, st: st, log: log, heartbeat: 250 * time.Millisecond}
}

// config is a controller configuration for tests: quick resync, and node
// timeouts long enough that a slow heartbeat under -race loses nothing.
func (h *harness) config(identity string) Config {
	return Config{
		Store:        h.st,
		Log:          h.log.With("server", identity),
		Identity:     identity,
		Resync:       2 * time.Second,
		LeaseTimeout: 10 * time.Second,
		LostAfter:    30 * time.Second,
	}
}

// runControllers runs Run(cfg) until the returned stop is called or the
// test ends; stop waits for Run to return.
func (h *harness) runControllers(cfg Config) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Run(ctx, cfg)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				h.t.Errorf("controller.Run(%s) did not return within 15s of its context ending", cfg.Identity)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// newApp builds a defaulted App.
func newApp(name string, replicas int32, image string) *api.App {
	a := &api.App{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp},
		Metadata: api.ObjectMeta{Name: name, Namespace: testNS},
		Spec:     api.AppSpec{Template: api.Template{Image: image}, Replicas: &replicas},
	}
	api.SetDefaults(a)
	return a
}

// apply writes objects as `shoal apply` does.
func (h *harness) apply(objs ...api.Object) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.st.Apply(ctx, objs); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

// setReplicas changes an App's spec.replicas, keeping the rest.
func (h *harness) setReplicas(name string, n int32) {
	h.t.Helper()
	a := h.getApp(name)
	a.Spec.Replicas = &n
	h.apply(a)
}

func (h *harness) getApp(name string) *api.App {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := h.st.Get(ctx, appKind, testNS, name)
	if err != nil {
		h.t.Fatalf("get app %s: %v", name, err)
	}
	return o.(*api.App)
}

func (h *harness) getNode(name string) *api.Node {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := h.st.Get(ctx, nodeKind, "", name)
	if err != nil {
		h.t.Fatalf("get node %s: %v", name, err)
	}
	return o.(*api.Node)
}

// instances lists the instances of an App ("" for all), sorted by name.
func (h *harness) instances(appName string) []*api.Instance {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	objs, _, err := h.st.List(ctx, instanceKind, "")
	if err != nil {
		h.t.Fatalf("list instances: %v", err)
	}
	var out []*api.Instance
	for _, o := range objs {
		in := o.(*api.Instance)
		if appName == "" || in.Spec.App == appName {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

func liveOnly(ins []*api.Instance) []*api.Instance {
	var out []*api.Instance
	for _, in := range ins {
		if live(in) {
			out = append(out, in)
		}
	}
	return out
}

// summary renders instances for failure messages.
func summary(ins []*api.Instance) string {
	if len(ins) == 0 {
		return "no instances"
	}
	parts := make([]string, 0, len(ins))
	for _, in := range ins {
		s := fmt.Sprintf("%s(rev %d, %s", in.Metadata.Name, in.Spec.Revision, in.Status.Phase)
		if in.Spec.Node != "" {
			s += " on " + in.Spec.Node
		}
		if !live(in) {
			s += ", terminating"
		}
		if in.Status.Message != "" {
			s += fmt.Sprintf(", %q", in.Status.Message)
		}
		parts = append(parts, s+")")
	}
	return fmt.Sprintf("%d instances: %s", len(ins), strings.Join(parts, " "))
}

// eventually polls cond until it holds, failing the test after timeout with
// what cond last reported seeing.
func (h *harness) eventually(timeout time.Duration, want string, cond func() (ok bool, seen string)) {
	h.t.Helper()
	testutil.Eventually(h.t, timeout, want, cond)
}

// waitRunning waits until the App has exactly n instances in the store, all
// live, bound, Running and of the App's current revision, and its status
// says so.
func (h *harness) waitRunning(appName string, n int, timeout time.Duration) []*api.Instance {
	h.t.Helper()
	var got []*api.Instance
	h.eventually(timeout, fmt.Sprintf("app %s with exactly %d instances, all Running and current", appName, n), func() (bool, string) {
		a := h.getApp(appName)
		got = h.instances(appName)
		seen := fmt.Sprintf("%s; app status %+v", summary(got), a.Status)
		if len(got) != n || a.Status.Running != int32(n) || a.Status.Placed != int32(n) || a.Status.Message != "" {
			return false, seen
		}
		for _, in := range got {
			if !live(in) || in.Spec.Node == "" || in.Status.Phase != api.PhaseRunning || in.Metadata.Labels[LabelHash] != a.Status.TemplateHash {
				return false, seen
			}
		}
		return true, seen
	})
	return got
}

// waitRevision waits until the App's status names revision rev.
func (h *harness) waitRevision(appName string, rev int64, timeout time.Duration) {
	h.t.Helper()
	h.eventually(timeout, fmt.Sprintf("app %s at status.revision %d", appName, rev), func() (bool, string) {
		a := h.getApp(appName)
		return a.Status.Revision == rev, fmt.Sprintf("status.revision %d", a.Status.Revision)
	})
}

// parseSlot splits an instance name APP-HASH-SLOT.
func parseSlot(name string) (hash string, slot int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return "", 0, false
	}
	j := strings.LastIndexByte(name[:i], '-')
	slot, err := strconv.Atoi(name[i+1:])
	if j < 0 || err != nil {
		return "", 0, false
	}
	return name[j+1 : i], slot, true
}

// slotOf is parseSlot for the test goroutine.
func slotOf(t *testing.T, name string) (hash string, slot int) {
	t.Helper()
	hash, slot, ok := parseSlot(name)
	if !ok {
		t.Fatalf("instance name %q is not APP-HASH-SLOT", name)
	}
	return hash, slot
}

// fakeNode plays a node's agent until stopped.
type fakeNode struct {
	name   string
	st     *store.Store
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// startDelay is how long an instance takes to start, stopDelay how long
	// a marked one takes to stop.
	startDelay, stopDelay time.Duration

	mu      sync.Mutex
	working map[string]bool // instances with a delayed action under way
}

// addNode registers a ready node with the given capacity and starts its
// fake agent. It is stopped when the test ends.
func (h *harness) addNode(name string, milliCPU, memBytes int64) *fakeNode {
	h.t.Helper()
	now := time.Now().UTC()
	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: name},
		Status: api.NodeStatus{
			Hostname:      name,
			Capacity:      api.NodeResources{MilliCPU: milliCPU, MemoryBytes: memBytes},
			Ready:         true,
			LastHeartbeat: now,
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.st.Create(ctx, node); err != nil {
		cancel()
		h.t.Fatalf("create node %s: %v", name, err)
	}
	n := &fakeNode{name: name, st: h.st, log: h.log.With("node", name), cancel: cancel, startDelay: h.startDelay, stopDelay: h.stopDelay, working: map[string]bool{}}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.heartbeatLoop(ctx, h.heartbeat) }()
	go func() { defer n.wg.Done(); n.instanceLoop(ctx) }()
	h.t.Cleanup(n.stop)
	return n
}

// addNodes adds count nodes node-0… with 4 cores and 8Gi each.
func (h *harness) addNodes(count int) []*fakeNode {
	var out []*fakeNode
	for i := 0; i < count; i++ {
		out = append(out, h.addNode(fmt.Sprintf("node-%d", i), 4000, 8<<30))
	}
	return out
}

// stop silences the node as if its machine died: no heartbeats, nothing
// started or stopped any more.
func (n *fakeNode) stop() {
	n.cancel()
	n.wg.Wait()
}

func (n *fakeNode) heartbeatLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = n.st.Mutate(ctx, nodeKind, "", n.name, func(o api.Object) error {
			node := o.(*api.Node)
			node.Status.Ready = true
			node.Status.Message = ""
			node.Status.LastHeartbeat = time.Now().UTC()
			return nil
		})
	}
}

// instanceLoop lists and watches instances like the agent, relisting when
// the watch ends.
func (n *fakeNode) instanceLoop(ctx context.Context) {
	for ctx.Err() == nil {
		objs, rev, err := n.st.List(ctx, instanceKind, "")
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		for _, o := range objs {
			n.handle(ctx, o.(*api.Instance))
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		for ev := range n.st.Watch(wctx, instanceKind, "", rev) {
			if ev.Type == api.WatchError {
				break
			}
			if ev.Type != api.WatchDeleted {
				n.handle(ctx, ev.Object.(*api.Instance))
			}
		}
		cancel()
	}
}

var errSkip = errors.New("nothing to do")

func (n *fakeNode) handle(ctx context.Context, in *api.Instance) {
	if in.Spec.Node != n.name {
		return
	}
	switch {
	case !live(in):
		n.later(ctx, in, n.stopDelay, func() {
			err := n.st.Delete(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, 0)
			n.log.Debug("fake agent deleted instance", "instance", in.Metadata.Name, "err", err)
		})
	case in.Status.Phase != api.PhaseRunning && !in.Status.Phase.Terminal():
		n.later(ctx, in, n.startDelay, func() {
			_, err := n.st.Mutate(ctx, instanceKind, in.Metadata.Namespace, in.Metadata.Name, func(o api.Object) error {
				cur := o.(*api.Instance)
				if cur.Spec.Node != n.name || !live(cur) || cur.Status.Phase == api.PhaseRunning || cur.Status.Phase.Terminal() {
					return errSkip
				}
				now := time.Now().UTC()
				cur.Status.Phase = api.PhaseRunning
				// An image named "unready..." runs but never passes readiness.
				cur.Status.Ready = !strings.HasPrefix(cur.Spec.Template.Image, "unready")
				cur.Status.Node = n.name
				cur.Status.StartedAt = now
				cur.Status.UpdatedAt = now
				cur.Status.Message = ""
				return nil
			})
			n.log.Debug("fake agent started instance", "instance", in.Metadata.Name, "err", err)
		})
	}
}

// later runs f after d, at most one delayed action per instance at a time.
func (n *fakeNode) later(ctx context.Context, in *api.Instance, d time.Duration, f func()) {
	if d == 0 {
		f()
		return
	}
	key := in.Metadata.Namespace + "/" + in.Metadata.Name
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.working[key] {
		return
	}
	n.working[key] = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		sleep(ctx, d)
		if ctx.Err() == nil {
			f()
		}
		n.mu.Lock()
		delete(n.working, key)
		n.mu.Unlock()
	}()
}

// tracker follows every change to instances through a watch and checks an
// invariant after each one, so a violation between two polls is not missed.
type tracker struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	objs       map[string]*api.Instance
	maxLive    int
	atMax      string
	minAvail   int // -1 until the first state is seen
	violations []string
}

// track starts a tracker over the instances of appName ("" for all); check,
// if not nil, is called with every state and returns a violation or "".
func (h *harness) track(appName string, check func(all []*api.Instance) string) *tracker {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	objs, rev, err := h.st.List(ctx, instanceKind, "")
	if err != nil {
		cancel()
		h.t.Fatalf("list instances: %v", err)
	}
	tr := &tracker{cancel: cancel, done: make(chan struct{}), objs: map[string]*api.Instance{}, minAvail: -1}
	keep := func(in *api.Instance) bool { return appName == "" || in.Spec.App == appName }
	for _, o := range objs {
		if in := o.(*api.Instance); keep(in) {
			tr.objs[in.Metadata.Namespace+"/"+in.Metadata.Name] = in
		}
	}
	tr.observe(check)
	go func() {
		defer close(tr.done)
		for ev := range h.st.Watch(ctx, instanceKind, "", rev) {
			if ev.Type == api.WatchError {
				if ctx.Err() == nil {
					tr.mu.Lock()
					tr.violations = append(tr.violations, "tracker watch broke: "+ev.Err.Error())
					tr.mu.Unlock()
				}
				return
			}
			in := ev.Object.(*api.Instance)
			if !keep(in) {
				continue
			}
			key := in.Metadata.Namespace + "/" + in.Metadata.Name
			tr.mu.Lock()
			if ev.Type == api.WatchDeleted {
				delete(tr.objs, key)
			} else {
				tr.objs[key] = in
			}
			tr.mu.Unlock()
			tr.observe(check)
		}
	}()
	h.t.Cleanup(tr.stop)
	return tr
}

func (tr *tracker) observe(check func([]*api.Instance) string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	all := make([]*api.Instance, 0, len(tr.objs))
	for _, in := range tr.objs {
		all = append(all, in)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Metadata.Name < all[j].Metadata.Name })
	liveN, avail := 0, 0
	for _, in := range all {
		if live(in) {
			liveN++
		}
		if available(in) {
			avail++
		}
	}
	if liveN > tr.maxLive {
		tr.maxLive, tr.atMax = liveN, summary(all)
	}
	if tr.minAvail < 0 || avail < tr.minAvail {
		tr.minAvail = avail
	}
	if check != nil {
		if v := check(all); v != "" && len(tr.violations) < 5 {
			tr.violations = append(tr.violations, v)
		}
	}
}

// resetMinAvailable starts measuring the fewest available instances anew.
func (tr *tracker) resetMinAvailable() {
	tr.mu.Lock()
	tr.minAvail = -1
	tr.mu.Unlock()
}

func (tr *tracker) stop() {
	tr.cancel()
	<-tr.done
}

// report returns the most live instances seen at once, the state then, the
// fewest available since the last reset and any violations.
func (tr *tracker) report() (maxLive int, atMax string, minAvail int, violations []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.maxLive, tr.atMax, tr.minAvail, append([]string(nil), tr.violations...)
}
