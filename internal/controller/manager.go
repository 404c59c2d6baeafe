package controller

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
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
	// MaxTxnOps is how many operations the store's etcd takes in one
	// transaction (its --max-txn-ops; 0: etcd's default, 128). The binder
	// commits its bindings in transactions this size.
	MaxTxnOps int
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

// runControllers runs every controller until ctx ends: one set of caches
// fed by the store, each controller's queue woken by the triggers it
// declares (Triggers), and its workers reconciling what the queue hands out.
func runControllers(ctx context.Context, cfg Config) {
	caches := NewCaches(cfg.Store)
	events := &Recorder{Store: cfg.Store, Log: cfg.Log, Source: "controller"}
	appQ, bindQ, nodeQ, jobQ, autoQ := newQueue(), newQueue(), newQueue(), newQueue(), newQueue()
	apps := &Apps{Store: cfg.Store, Log: cfg.Log, Events: events, ServiceCIDR: cfg.ServiceCIDR, Admit: cfg.Admit,
		Cache: caches, Requeue: appQ.addAfter, Draining: drainingIn(caches)}
	binder := &Binder{Store: cfg.Store, Log: cfg.Log, Events: events, Cache: caches, Batch: bindBatch(cfg.MaxTxnOps),
		Every: cfg.LeaseTimeout / 3}
	nodes := &Nodes{Store: cfg.Store, Log: cfg.Log, Events: events, LeaseTimeout: cfg.LeaseTimeout, LostAfter: cfg.LostAfter, ClusterCIDR: cfg.ClusterCIDR,
		Since: time.Now(), Cache: caches}
	jobs := &Jobs{Store: cfg.Store, Log: cfg.Log, Events: events, Cache: caches, Requeue: jobQ.addAfter}
	autoscaler := &Autoscaler{Store: cfg.Store, Log: cfg.Log, Events: events, Load: &NodeLoad{Nodes: caches.Of(api.KindNode)},
		Period: time.Second, Cache: caches, Requeue: autoQ.addAfter}
	managed := []struct {
		name    string
		r       triggered
		q       *queue
		workers int
	}{
		{"apps", apps, appQ, 4},
		{"binder", binder, bindQ, 1},
		{"nodes", nodes, nodeQ, 1},
		{"jobs", jobs, jobQ, 2},
		{"autoscaler", autoscaler, autoQ, 2},
	}

	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for _, m := range managed {
		for _, t := range m.r.Triggers() {
			if err := t.install(ctx, caches, m.q, spawn); err != nil {
				cfg.Log.Error("controller trigger not installed", "controller", m.name, "err", err)
			}
		}
	}
	spawn(func() { caches.Run(ctx, cfg.Resync, cfg.Log) })
	if caches.WaitSynced(ctx) == nil {
		for _, m := range managed {
			spawn(func() { run(ctx, m.name, m.r, m.q, m.workers, cfg) })
		}
	}
	wg.Wait()
}
