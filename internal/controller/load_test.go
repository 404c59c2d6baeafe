package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestNodeLoadConcurrentReaders runs two readers against one NodeLoad, as
// the autoscaler's two workers do, with every call relisting the Nodes: a
// reader still summing one list must not see the next one written over
// it (go test -race reports it if it is).
func TestNodeLoadConcurrentReaders(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const nodes = 8
	for i := 0; i < nodes; i++ {
		n := &api.Node{
			TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("node-%d", i)},
			Status: api.NodeStatus{
				Ready:         true,
				LastHeartbeat: time.Now().UTC(),
				Usage:         []api.InstanceUsage{{Namespace: testNS, App: "web", Instance: fmt.Sprintf("web-%d", i), MilliCPU: 10}},
				Traffic:       []api.AppTraffic{{Namespace: testNS, App: "web", RequestsPerSecond: 1}},
			},
		}
		if err := h.st.Create(ctx, n); err != nil {
			t.Fatalf("create node %d: %v", i, err)
		}
	}
	want := AppLoad{Instances: nodes, MilliCPU: 10 * nodes, RequestsPerSecond: nodes}
	l := &NodeLoad{Store: h.st, MaxAge: time.Nanosecond}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				got, err := l.Load(ctx, testNS, "web")
				if err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("Load = %+v, want %+v", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
