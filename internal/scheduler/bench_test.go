package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSchedule10kOn1k places 100 apps × 100 replicas with mixed
// requests, some with node selectors or host ports, on 1,000 nodes, building
// the snapshot each round as a controller would. `make bench` reads the
// placements/s metric.
func BenchmarkSchedule10kOn1k(b *testing.B) {
	const numNodes, numApps, replicas = 1000, 100, 100
	rng := rand.New(rand.NewPCG(42, 42))

	zones := []string{"a", "b", "c"}
	nodes := make([]NodeInfo, numNodes)
	for i := range nodes {
		nodes[i] = NodeInfo{
			Name:        fmt.Sprintf("node-%04d", i),
			Labels:      map[string]string{"zone": zones[i%len(zones)]},
			Ready:       i%50 != 0,
			MilliCPU:    []int64{8000, 16000, 32000}[i%3],
			MemoryBytes: []int64{16, 32, 64}[i%3] * gi,
		}
		if i%4 == 0 {
			nodes[i].Labels["disk"] = "ssd"
		}
	}

	cpus := []int64{0, 100, 250, 500, 1000, 2000}
	mems := []int64{0, 64 * mi, 256 * mi, 512 * mi, gi, 2 * gi}
	reqs := make([]Request, 0, numApps*replicas)
	for a := range numApps {
		tmpl := Request{
			App:         fmt.Sprintf("ns%d/app%d", a%7, a),
			MilliCPU:    cpus[rng.IntN(len(cpus))],
			MemoryBytes: mems[rng.IntN(len(mems))],
		}
		switch a % 10 {
		case 0:
			tmpl.NodeSelector = map[string]string{"zone": zones[a%len(zones)]}
		case 1:
			tmpl.NodeSelector = map[string]string{"zone": zones[a%len(zones)], "disk": "ssd"}
		case 2:
			tmpl.HostPorts = []HostPort{{Port: 8000 + int32(a)}}
		}
		for r := range replicas {
			req := tmpl
			req.Key = fmt.Sprintf("%s-%d", tmpl.App, r)
			reqs = append(reqs, req)
		}
	}

	placements := 0
	for b.Loop() {
		s := NewSnapshot(nodes, nil)
		for _, r := range reqs {
			if _, err := s.Place(r); err != nil {
				b.Fatalf("place %s: %v", r.Key, err)
			}
		}
		placements += len(reqs)
	}
	b.ReportMetric(float64(placements)/b.Elapsed().Seconds(), "placements/s")
}
