// Command httpbench sends a bounded number of small GETs to one URL from a
// few keep-alive connections and prints throughput and latency, for
// `make bench`: the same load against an instance's own address, its
// service address and a published port tells what the proxy costs.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	n := flag.Int("n", 20000, "requests in all")
	c := flag.Int("c", 8, "concurrent connections")
	warm := flag.Int("warmup", 500, "requests sent first and not measured")
	label := flag.String("label", "", "name printed with the figures")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "httpbench: -url is required")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	run(cl, *url, *warm, *c, nil)
	lat := make([]time.Duration, 0, *n)
	var mu sync.Mutex
	start := time.Now()
	failed := run(cl, *url, *n, *c, func(d time.Duration) {
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("%s: %.0f req/s, p50 %.3f ms, p99 %.3f ms, %d failed\n", *label,
		float64(len(lat))/elapsed.Seconds(), ms(pct(0.50)), ms(pct(0.99)), failed)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run sends n requests over c workers and returns how many failed.
func run(cl *http.Client, url string, n, c int, observe func(time.Duration)) int64 {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				resp, err := cl.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				if observe != nil {
					observe(time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}
