// Command hollowbench measures the control plane alone: one real server
// (embedded etcd, API, controllers; a process of its own) and many hollow
// agents (in-memory runtime; all in this process) speaking mutual TLS. It
// measures etcd's write rate while the registered nodes idle, applies
// Apps with -instances replicas in all, waits until every one is reported
// Running while it probes the API open loop, and measures the write rate
// again with the instances running. It prints
//
//	control plane: N instances/s to Running on 1000 hollow nodes, API p99 X ms (writes; reads p99 Y ms; …; server peak RSS M MB)
//	control plane API on 1000 hollow nodes (open loop, …): writes p50 …, p99 …, max …, F of S failed; reads …
//	etcd writes at 1000 idle nodes: W writes/s, B KiB/s (…) before the instances
//	etcd writes at 1000 idle nodes: W writes/s, B KiB/s (…) with 10000 instances running
//
// (make bench runs it). Everything stays on loopback and in a temporary
// directory that is removed at the end.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/runtime/fake"
)

// options are the bench's flags.
type options struct {
	nodes, instances, perApp int
	timeout                  time.Duration
	// probeEvery is the interval between two probes of a kind,
	// probeTimeout the longest a probe may take before it counts as
	// failed.
	probeEvery, probeTimeout time.Duration
	// idleWindow is how long etcd's write rate is measured; settle is
	// how long the cluster is left first.
	idleWindow, settle time.Duration
	serverProfile      string
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "hollow nodes")
	flag.IntVar(&o.instances, "instances", 10000, "instances in all")
	flag.IntVar(&o.perApp, "per-app", 1000, "replicas per App")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	// 10 a second of each: at 50 the probes' own writes (and the reconciles
	// they wake) slowed 100 hollow nodes' start from 3.5 s to 13.6 s.
	flag.DurationVar(&o.probeEvery, "probe-every", 100*time.Millisecond, "send a read probe and a write probe this often")
	flag.DurationVar(&o.probeTimeout, "probe-timeout", 10*time.Second, "a probe that takes longer counts as failed")
	flag.DurationVar(&o.idleWindow, "idle-window", 20*time.Second, "measure etcd's write rate at idle over this long")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "leave the cluster this long before measuring at idle")
	verbose = flag.Bool("v", false, "report progress on stderr")
	flag.StringVar(&o.serverProfile, "cpuprofile", "", "write a CPU profile of the server process here")
	agentProfile := flag.String("agent-cpuprofile", "", "write a CPU profile of the hollow agents' process here")
	serveDir := flag.String("serve", "", "run as the bench's server process, with its data here (the bench starts it)")
	flag.Parse()
	if *serveDir != "" {
		if err := serve(*serveDir, o.nodes, o.serverProfile); err != nil {
			fmt.Fprintln(os.Stderr, "hollowbench server:", err)
			os.Exit(1)
		}
		return
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "hollowbench:", err)
		os.Exit(2)
	}
	if *agentProfile != "" {
		f, err := os.Create(*agentProfile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "hollowbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// check says which flag is out of range.
func (o options) check() error {
	switch {
	case o.nodes < 1:
		return fmt.Errorf("-nodes %d: want at least 1", o.nodes)
	case o.instances < 1:
		return fmt.Errorf("-instances %d: want at least 1", o.instances)
	case o.perApp < 1:
		return fmt.Errorf("-per-app %d: want at least 1", o.perApp)
	case o.probeEvery <= 0:
		return fmt.Errorf("-probe-every %v: want more than 0", o.probeEvery)
	case o.probeTimeout <= 0:
		return fmt.Errorf("-probe-timeout %v: want more than 0", o.probeTimeout)
	case o.idleWindow <= 0:
		return fmt.Errorf("-idle-window %v: want more than 0", o.idleWindow)
	}
	return nil
}

// joiners is how many nodes join at once, each joiner with a token of
// its own.
const joiners = 16

// probeApps are the Apps the write probes scale (to 0, as they are) in
// turn, so that probes in flight together seldom retry on each other's
// writes.
const probeApps = 4

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "hollowbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)

	srv, err := startServer(ctx, filepath.Join(dir, "server"), o.nodes, o.serverProfile)
	if err != nil {
		return err
	}
	defer srv.stop()
	c, err := client.FromConfig(srv.Admin)
	if err != nil {
		return err
	}

	// Every hollow node joins as a real one does: a token, its own key, a
	// certificate; then it speaks mutual TLS.
	ids := make([]*agent.Identity, o.nodes)
	var jwg sync.WaitGroup
	var joinErr error
	var jmu sync.Mutex
	for j := range joiners {
		jwg.Add(1)
		go func() {
			defer jwg.Done()
			for i := j; i < o.nodes; i += joiners {
				id, err := agent.LoadOrJoin(ctx, srv.URL, api.JoinRequest{Token: srv.Tokens[j], Node: nodeName(i)}, filepath.Join(dir, "agents", fmt.Sprint(i), "pki"))
				jmu.Lock()
				ids[i] = id
				joinErr = cmp.Or(joinErr, err)
				jmu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	jwg.Wait()
	if joinErr != nil {
		return joinErr
	}
	progress("%d nodes joined", o.nodes)

	agentCtx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	for i := range o.nodes {
		a := agent.New(agent.Config{
			NodeName: nodeName(i), Client: client.NewTLS(srv.URL, ids[i].ClientTLS()), Driver: fake.NewHollow(),
			DataDir: filepath.Join(dir, "agents", fmt.Sprint(i)), Log: quiet, DrainDelay: -1, TLS: ids[i].ServerTLS(),
			MilliCPU: 64000, MemoryBytes: 256 << 30,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(agentCtx) }()
	}
	if err := waitFor(ctx, "nodes ready", func() (bool, error) {
		objs, _, err := c.List(ctx, api.MustKind(api.KindNode), "", client.ListOptions{})
		ready := 0
		for _, obj := range objs {
			if obj.(*api.Node).Status.Ready {
				ready++
			}
		}
		return ready == o.nodes, err
	}); err != nil {
		return err
	}
	progress("%d nodes ready", o.nodes)
	idleBefore, err := idleWrites(ctx, srv.Metrics, o)
	if err != nil {
		return err
	}

	var m strings.Builder
	for i := range probeApps {
		fmt.Fprintf(&m, "apiVersion: shoal/v1\nkind: App\nmetadata: {name: probe-%d}\nspec: {image: x/probe:v1, replicas: 0}\n---\n", i)
	}
	if _, err := c.Apply(ctx, []byte(m.String()), client.ApplyOptions{}); err != nil {
		return err
	}
	// The probes: a single-object read and a mutating call every
	// probeEvery while the instances start, open loop.
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	var probes []probeResult
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		probes = probeOpenLoop(probeCtx, o.probeEvery, o.probeTimeout, 1000, []probeKind{
			{"writes", func(ctx context.Context, i int) error {
				_, err := c.Scale(ctx, "default", fmt.Sprintf("probe-%d", i%probeApps), 0)
				return err
			}},
			{"reads", func(ctx context.Context, i int) error {
				_, err := c.Get(ctx, api.MustKind(api.KindApp), "default", fmt.Sprintf("probe-%d", i%probeApps))
				return err
			}},
		})
	}()

	var b strings.Builder
	// More instances than a namespace's default quota allows.
	fmt.Fprintf(&b, "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: default}\nspec: {quota: {instances: %d}}\n", max(o.instances, api.DefaultQuotaInstances))
	apps := (o.instances + o.perApp - 1) / o.perApp
	for i := range apps {
		n := min(o.perApp, o.instances-i*o.perApp)
		fmt.Fprintf(&b, "---\napiVersion: shoal/v1\nkind: App\nmetadata: {name: load-%d}\nspec: {image: x/load:v1, replicas: %d}\n", i, n)
	}
	start := time.Now()
	if _, err := c.Apply(ctx, []byte(b.String()), client.ApplyOptions{}); err != nil {
		return err
	}
	lastReport := time.Now()
	if err := waitFor(ctx, fmt.Sprintf("%d instances running", o.instances), func() (bool, error) {
		objs, _, err := c.List(ctx, api.MustKind(api.KindApp), "", client.ListOptions{})
		running, placed := 0, 0
		for _, obj := range objs {
			running += int(obj.(*api.App).Status.Running)
			placed += int(obj.(*api.App).Status.Placed)
		}
		if time.Since(lastReport) > 5*time.Second {
			progress("%5.0fs: %d placed, %d running", time.Since(start).Seconds(), placed, running)
			lastReport = time.Now()
		}
		return running >= o.instances, err
	}); err != nil {
		return err
	}
	took := time.Since(start)
	stopProbe()
	<-probeDone
	writes, reads := probes[0], probes[1]
	idleAfter, err := idleWrites(ctx, srv.Metrics, o)
	if err != nil {
		return err
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return fmt.Errorf("the server's peak RSS: %w", err)
	}

	fmt.Printf("control plane: %.0f instances/s to Running on %d hollow nodes, API p99 %.1f ms (writes; reads p99 %.1f ms; %d instances in %.1f s; server peak RSS %.1f MB)\n",
		float64(o.instances)/took.Seconds(), o.nodes, ms(percentile(writes.latencies, 0.99)), ms(percentile(reads.latencies, 0.99)), o.instances, took.Seconds(), float64(rss)/(1<<20))
	fmt.Printf("control plane API on %d hollow nodes (open loop, a read and a scale every %v while %d instances start): %s; %s\n",
		o.nodes, o.probeEvery, o.instances, writes.summary(), reads.summary())
	fmt.Printf("etcd writes at %d idle nodes: %v before the instances\n", o.nodes, idleBefore)
	fmt.Printf("etcd writes at %d idle nodes: %v with %d instances running\n", o.nodes, idleAfter, o.instances)
	return nil
}

func nodeName(i int) string { return fmt.Sprintf("hollow-%04d", i) }

// idleWrites leaves the cluster o.settle, then measures etcd's write rate
// over o.idleWindow.
func idleWrites(ctx context.Context, metrics string, o options) (writeRate, error) {
	if err := sleep(ctx, o.settle); err != nil {
		return writeRate{}, err
	}
	a, err := scrapeEtcd(ctx, metrics)
	if err != nil {
		return writeRate{}, err
	}
	if err := sleep(ctx, o.idleWindow); err != nil {
		return writeRate{}, err
	}
	b, err := scrapeEtcd(ctx, metrics)
	if err != nil {
		return writeRate{}, err
	}
	r := rateBetween(a, b)
	progress("etcd at idle: %v", r)
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func progress(format string, args ...any) {
	if *verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

var verbose *bool

func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s (last error: %v)", what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
