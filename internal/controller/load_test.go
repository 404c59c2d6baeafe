package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/listwatch"
)

// TestNodeLoadConcurrentReaders runs two readers against one NodeLoad, as
// the autoscaler's two workers do, while the Node cache it reads is
// replaced under them (a relist): a reader still summing one view must not
// see the next one written over it (go test -race reports it if it is).
func TestNodeLoadConcurrentReaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const nodes = 8
	view := func() []api.Object {
		var out []api.Object
		for i := 0; i < nodes; i++ {
			out = append(out, &api.Node{
				TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
				Metadata: api.ObjectMeta{Name: fmt.Sprintf("node-%d", i)},
				Status: api.NodeStatus{
					Ready:         true,
					LastHeartbeat: time.Now().UTC(),
					Usage:         []api.InstanceUsage{{Namespace: testNS, App: "web", Instance: fmt.Sprintf("web-%d", i), MilliCPU: 10}},
					Traffic:       []api.AppTraffic{{Namespace: testNS, App: "web", RequestsPerSecond: 1}},
				},
			})
		}
		return out
	}
	c := listwatch.NewCache()
	c.Replace(view(), 1)
	want := AppLoad{Instances: nodes, MilliCPU: 10 * nodes, RequestsPerSecond: nodes}
	l := &NodeLoad{Nodes: c}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	stop := make(chan struct{})
	relisted := make(chan struct{})
	go func() {
		defer close(relisted)
		for rev := int64(2); ; rev++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Replace(view(), rev)
		}
	}()
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
	close(stop)
	<-relisted
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
