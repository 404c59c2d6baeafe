package containerd_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/runtime"
	"github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/runtime/containerd/containerdtest"
)

// TestUsageCost (make bench, SHOAL_BENCH_USAGE=1): the time one Usage
// sample of 100 running containers takes, and what sampling every
// DefaultSampleEvery costs the agent.
func TestUsageCost(t *testing.T) {
	if os.Getenv("SHOAL_BENCH_USAGE") == "" {
		t.Skip("a benchmark: make bench runs it (SHOAL_BENCH_USAGE=1)")
	}
	address := containerdtest.Start(t)
	netC := containerd.NetworkConfig{Bridge: "shoaltc0", Subnet: "10.213.202.0/24"}
	resetOnCleanup(t, address, testNamespace("cost"), netC)
	registryURL := serveTestImage(t)
	d := newDriver(t, containerd.Config{Address: address, Namespace: testNamespace("cost"), StateDir: t.TempDir(), Network: netC,
		Registries: map[string]string{"shoal.local": registryURL}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := d.EnsureImage(ctx, testImage); err != nil {
		t.Fatal(err)
	}
	const n = 100
	logDir := t.TempDir()
	for i := range n {
		id := fmt.Sprintf("c%03d", i)
		removeOnCleanup(t, d, id)
		if _, err := d.Create(ctx, runtime.Spec{ID: id, Image: testImage, MemoryBytes: 32 << 20, LogPath: fmt.Sprintf("%s/%s.log", logDir, id)}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var total time.Duration
	const rounds = 10
	cpuBefore := cpuTime(t)
	for range rounds {
		start := time.Now()
		got, err := d.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += time.Since(start)
		if len(got) != n {
			t.Fatalf("Usage saw %d of %d containers", len(got), n)
		}
	}
	per := total / rounds
	cpu := (cpuTime(t) - cpuBefore) / rounds
	fmt.Printf("usage: one sample of %d containers takes %.1f ms (containerd and its shims at work), of which %.1f ms of the agent's own CPU; every 2 s that is %.1f%% of a core for the agent\n",
		n, float64(per.Microseconds())/1000, float64(cpu.Microseconds())/1000, 100*cpu.Seconds()/2)
}

// cpuTime is the CPU this process has used (user and system).
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
