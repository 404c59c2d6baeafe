package controller

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// Config tunes the controllers.
type Config struct {
	Store *store.Store
	Log   *slog.Logger
	// Identity names this server in the leader election; it must be stable
	// across restarts of the same server and unique among servers.
	Identity string
	// Resync is how often everything is reconciled even without events.
	Resync time.Duration
	// LeaseTimeout marks silent nodes not ready; LostAfter releases their
	// instances.
	LeaseTimeout time.Duration
	LostAfter    time.Duration
	// ServiceCIDR is where Apps' service addresses come from.
	ServiceCIDR string
	// ClusterCIDR is where nodes' container subnets come from.
	ClusterCIDR string
	// Admit, if set, is the servers' admission list, which the templates
	// controllers write themselves pass (Apps.Admit).
	Admit func(ctx context.Context, obj api.Object) error
	// Metrics, if set, receives shoal_controller_reconciles_total.
	Metrics prometheus.Registerer

	reconciles *prometheus.CounterVec
}

func (c *Config) defaults() {
	if c.Resync == 0 {
		c.Resync = 30 * time.Second
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = api.DefaultNodeGracePeriod
	}
	if c.LostAfter == 0 {
		c.LostAfter = api.DefaultNodeGracePeriod
	}
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
	}
	c.reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_controller_reconciles_total",
		Help: "Reconciles run by this server's controllers while it leads, by controller and result.",
	}, []string{"controller", "result"})
	if c.Metrics != nil {
		_ = c.Metrics.Register(c.reconciles)
	}
}

const electionPrefix = store.ControllersElection

// electionTTL is the leader's session lease, in seconds: how long the
// controllers stay leaderless after their leader dies. (etcd renews every
// lease when its own leader changes, so when both die at once it is this
// plus an etcd election and the election timeout etcd adds to every
// lease.) The session renews itself every third of it; a leader that
// misses that for 2 s loses leadership, and its writes are fenced.
const electionTTL = 2

// Run campaigns for leadership and, while leader, runs every controller.
// It returns when ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	for ctx.Err() == nil {
		if err := lead(ctx, cfg); err != nil && ctx.Err() == nil {
			cfg.Log.Warn("leadership lost; campaigning again", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

func lead(ctx context.Context, cfg Config) error {
	term, err := cfg.Store.Election(electionPrefix).Campaign(ctx, cfg.Identity, electionTTL*time.Second)
	if err != nil {
		return err
	}
	defer term.Close()
	cfg.Log.Info("controllers leading", "identity", cfg.Identity)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-term.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	// Every write of this term is fenced on the election key: should the
	// session expire while a reconcile is under way, its writes fail
	// instead of racing the next leader's.
	fenced := cfg
	fenced.Store = term.Store()
	runControllers(lctx, fenced)
	if ctx.Err() == nil {
		return errLostSession
	}
	resign, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	_ = term.Resign(resign)
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errLostSession = errString("election session expired")

func runControllers(ctx context.Context, cfg Config) {
	events := &Recorder{Store: cfg.Store, Log: cfg.Log, Source: "controller"}
	apps := &Apps{Store: cfg.Store, Log: cfg.Log, Events: events, ServiceCIDR: cfg.ServiceCIDR, Admit: cfg.Admit}
	binder := &Binder{Store: cfg.Store, Log: cfg.Log, Events: events}
	nodes := &Nodes{Store: cfg.Store, Log: cfg.Log, Events: events, LeaseTimeout: cfg.LeaseTimeout, LostAfter: cfg.LostAfter, ClusterCIDR: cfg.ClusterCIDR,
		Since: time.Now()}
	jobs := &Jobs{Store: cfg.Store, Log: cfg.Log, Events: events}
	autoscaler := &Autoscaler{Store: cfg.Store, Log: cfg.Log, Events: events, Load: &NodeLoad{Store: cfg.Store}, Period: time.Second}
	appQ, bindQ, nodeQ, jobQ, autoQ := newQueue(), newQueue(), newQueue(), newQueue(), newQueue()
	autoscaler.Requeue = autoQ.addAfter
	apps.Requeue = appQ.addAfter
	jobs.Requeue = jobQ.addAfter
	drains := &drainingNodes{}
	apps.Draining = drains.has

	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	spawn(func() { run(ctx, "apps", apps, appQ, 4, cfg) })
	spawn(func() { run(ctx, "binder", binder, bindQ, 1, cfg) })
	spawn(func() { run(ctx, "nodes", nodes, nodeQ, 1, cfg) })
	spawn(func() { run(ctx, "jobs", jobs, jobQ, 2, cfg) })
	spawn(func() { run(ctx, "autoscaler", autoscaler, autoQ, 2, cfg) })
	spawn(func() {
		watchKind(ctx, cfg.Store, jobKind, cfg.Resync, cfg.Log, func(o api.Object) {
			m := o.GetMeta()
			jobQ.add(nsKey(m.Namespace, m.Name))
			if parent := m.Labels[api.LabelCronJob]; parent != "" {
				jobQ.add(nsKey(m.Namespace, parent))
			}
		})
	})

	spawn(func() {
		watchKind(ctx, cfg.Store, appKind, cfg.Resync, cfg.Log, func(o api.Object) {
			appQ.add(nsKey(o.GetMeta().Namespace, o.GetMeta().Name))
			if o.(*api.App).Spec.Autoscale != nil {
				autoQ.add(nsKey(o.GetMeta().Namespace, o.GetMeta().Name))
			}
		})
	})
	spawn(func() {
		watchKind(ctx, cfg.Store, instanceKind, cfg.Resync, cfg.Log, func(o api.Object) {
			in := o.(*api.Instance)
			if in.Spec.Job != "" {
				jobQ.add(nsKey(in.Metadata.Namespace, in.Spec.Job))
			} else {
				appQ.add(nsKey(in.Metadata.Namespace, in.Spec.App))
			}
			if in.Spec.Node == "" || !live(in) || in.Status.Phase.Terminal() {
				bindQ.add(bindKey)
			}
		})
	})
	// A changed Secret rolls the Apps that use it: reconcile them.
	spawn(func() {
		watchKind(ctx, cfg.Store, api.MustKind(api.KindSecret), cfg.Resync, cfg.Log, func(o api.Object) {
			ns, name := o.GetMeta().Namespace, o.GetMeta().Name
			objs, _, err := cfg.Store.List(ctx, appKind, ns)
			if err != nil {
				return
			}
			for _, a := range objs {
				if slices.Contains(a.(*api.App).Spec.Template.SecretNames(), name) {
					appQ.add(nsKey(ns, a.GetMeta().Name))
				}
			}
		})
	})
	spawn(func() {
		watchKind(ctx, cfg.Store, nodeKind, cfg.Resync, cfg.Log, func(o api.Object) {
			nodeQ.add(o.GetMeta().Name)
			bindQ.add(bindKey)
			n := o.(*api.Node)
			if drains.set(n.Metadata.Name, n.Spec.Draining && n.Metadata.DeletedAt.IsZero()) {
				// A drain began or ended: every App may have instances there.
				objs, _, err := cfg.Store.List(ctx, appKind, "")
				if err != nil {
					return
				}
				for _, a := range objs {
					appQ.add(nsKey(a.GetMeta().Namespace, a.GetMeta().Name))
				}
			}
		})
	})
	// Heartbeats going silent produce no event: look at every node often.
	spawn(func() {
		t := time.NewTicker(cfg.LeaseTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				objs, _, err := cfg.Store.List(ctx, nodeKind, "")
				if err != nil {
					continue
				}
				for _, o := range objs {
					nodeQ.add(o.GetMeta().Name)
				}
				bindQ.add(bindKey)
			}
		}
	})
	wg.Wait()
}

// drainingNodes are the nodes being drained, as the node watch last saw
// them.
type drainingNodes struct {
	mu sync.Mutex
	m  map[string]bool
}

// set records whether node drains and says whether that changed.
func (d *drainingNodes) set(node string, draining bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[node] == draining {
		return false
	}
	if d.m == nil {
		d.m = map[string]bool{}
	}
	if draining {
		d.m[node] = true
	} else {
		delete(d.m, node)
	}
	return true
}

func (d *drainingNodes) has(node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[node]
}
