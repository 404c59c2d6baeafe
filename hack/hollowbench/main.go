// Command hollowbench measures the control plane alone: one real server
// (embedded etcd, API, controllers) and many hollow agents (in-memory
// runtime) in one process. It applies Apps with -instances replicas in
// all, waits until every one is reported Running, and meanwhile probes
// the API. It prints
//
//	control plane: N instances/s to Running on 1000 hollow nodes, API p99 X ms
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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controlplane"
	"github.com/shoal-dev/shoal/internal/runtime/fake"
)

func main() {
	nodes := flag.Int("nodes", 1000, "hollow nodes")
	instances := flag.Int("instances", 10000, "instances in all")
	perApp := flag.Int("per-app", 1000, "replicas per App")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	verbose = flag.Bool("v", false, "report progress on stderr")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*nodes, *instances, *perApp, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "hollowbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(nodes, instances, perApp int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "hollowbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)

	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = filepath.Join(dir, "server"), "127.0.0.1:0", quiet
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	srv, err := controlplane.Start(srvCtx, cfg)
	if err != nil {
		return err
	}
	defer func() { stopServer(); _ = srv.Wait() }()
	c, err := srv.Client()
	if err != nil {
		return err
	}

	// Every hollow node joins as a real one does: a token, its own key, a
	// certificate; then it speaks mutual TLS.
	token, err := srv.CreateToken(ctx, api.TokenRoleAgent, time.Hour, int32(nodes), "hollowbench")
	if err != nil {
		return err
	}
	ids := make([]*agent.Identity, nodes)
	sem := make(chan struct{}, 16)
	var jwg sync.WaitGroup
	var joinErr error
	var jmu sync.Mutex
	for i := range nodes {
		jwg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; jwg.Done() }()
			id, err := agent.LoadOrJoin(ctx, srv.URL(), api.JoinRequest{Token: token, Node: fmt.Sprintf("hollow-%04d", i)}, filepath.Join(dir, "agents", fmt.Sprint(i), "pki"))
			jmu.Lock()
			defer jmu.Unlock()
			ids[i] = id
			joinErr = cmp.Or(joinErr, err)
		}()
	}
	jwg.Wait()
	if joinErr != nil {
		return joinErr
	}

	agentCtx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	for i := range nodes {
		a := agent.New(agent.Config{
			NodeName: fmt.Sprintf("hollow-%04d", i), Client: client.NewTLS(srv.URL(), ids[i].ClientTLS()), Driver: fake.NewHollow(),
			DataDir: filepath.Join(dir, "agents", fmt.Sprint(i)), Log: quiet, DrainDelay: -1, TLS: ids[i].ServerTLS(),
			MilliCPU: 64000, MemoryBytes: 256 << 30,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(agentCtx) }()
	}
	if err := waitFor(ctx, "nodes ready", func() (bool, error) {
		objs, _, err := c.List(ctx, api.MustKind(api.KindNode), "", client.ListOptions{})
		ready := 0
		for _, o := range objs {
			if o.(*api.Node).Status.Ready {
				ready++
			}
		}
		return ready == nodes, err
	}); err != nil {
		return err
	}

	// The probe: one read and one write every 20ms while instances start.
	var reads, writes []time.Duration
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probeDone := make(chan struct{})
	if _, err := c.Apply(ctx, []byte("apiVersion: shoal/v1\nkind: App\nmetadata: {name: probe}\nspec: {image: x/probe:v1, replicas: 0}\n"), client.ApplyOptions{}); err != nil {
		return err
	}
	go func() {
		defer close(probeDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-probeCtx.Done():
				return
			case <-t.C:
			}
			t0 := time.Now()
			if _, err := c.Get(probeCtx, api.MustKind(api.KindApp), "default", "probe"); err == nil {
				reads = append(reads, time.Since(t0))
			}
			t0 = time.Now()
			if _, err := c.Scale(probeCtx, "default", "probe", 0); err == nil {
				writes = append(writes, time.Since(t0))
			}
		}
	}()

	var b strings.Builder
	// More instances than a namespace's default quota allows.
	fmt.Fprintf(&b, "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: default}\nspec: {quota: {instances: %d}}\n", max(instances, api.DefaultQuotaInstances))
	apps := (instances + perApp - 1) / perApp
	for i := range apps {
		n := min(perApp, instances-i*perApp)
		fmt.Fprintf(&b, "---\napiVersion: shoal/v1\nkind: App\nmetadata: {name: load-%d}\nspec: {image: x/load:v1, replicas: %d}\n", i, n)
	}
	start := time.Now()
	if _, err := c.Apply(ctx, []byte(b.String()), client.ApplyOptions{}); err != nil {
		return err
	}
	lastReport := time.Now()
	if err := waitFor(ctx, fmt.Sprintf("%d instances running", instances), func() (bool, error) {
		objs, _, err := c.List(ctx, api.MustKind(api.KindApp), "", client.ListOptions{})
		running, placed := 0, 0
		for _, o := range objs {
			running += int(o.(*api.App).Status.Running)
			placed += int(o.(*api.App).Status.Placed)
		}
		if *verbose && time.Since(lastReport) > 5*time.Second {
			fmt.Fprintf(os.Stderr, "%5.0fs: %d placed, %d running\n", time.Since(start).Seconds(), placed, running)
			lastReport = time.Now()
		}
		return running >= instances, err
	}); err != nil {
		return err
	}
	took := time.Since(start)
	stopProbe()
	<-probeDone
	fmt.Printf("control plane: %.0f instances/s to Running on %d hollow nodes, API p99 %.1f ms (writes; reads p99 %.1f ms; %d instances in %.1f s)\n",
		float64(instances)/took.Seconds(), nodes, ms(p99(writes)), ms(p99(reads)), instances, took.Seconds())
	return nil
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

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
