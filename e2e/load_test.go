package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// load sends GETs to url from a few workers, each on a new connection,
// until stop is called or max requests have been sent. It is bounded in
// count and time.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       map[string]int
	bodies     map[string]int // first word pairs of answers ("hello v1")
	cancel     context.CancelFunc
	done       sync.WaitGroup
}

func startLoad(url string, workers int, max int64, timeout time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	l := &load{errs: map[string]int{}, bodies: map[string]int{}, cancel: cancel}
	tr := &http.Transport{DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var sent atomic.Int64
	for i := 0; i < workers; i++ {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for ctx.Err() == nil && sent.Add(1) <= max {
				resp, err := cl.Get(url)
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil && resp.StatusCode == 200 {
						l.ok.Add(1)
						f := strings.Fields(string(b))
						key := strings.Join(f[:min(2, len(f))], " ")
						l.mu.Lock()
						l.bodies[key]++
						l.mu.Unlock()
						continue
					}
					err = fmt.Errorf("status %d %v", resp.StatusCode, rerr)
				}
				if ctx.Err() != nil {
					return
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.errs[err.Error()]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and returns a summary.
func (l *load) stop() string {
	l.cancel()
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for e, n := range l.errs {
		errs = append(errs, fmt.Sprintf("%dx %s", n, e))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%d ok, %d failed %v, answers %v", l.ok.Load(), l.failed.Load(), errs, l.bodies)
}

// startPacedLoad sends about rps GETs a second to url, each on a new
// connection, from as many goroutines as it takes (at most 64 at once),
// until stop or timeout.
func startPacedLoad(url string, rps int, timeout time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	l := &load{errs: map[string]int{}, bodies: map[string]int{}, cancel: cancel}
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	slots := make(chan struct{}, 64)
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		t := time.NewTicker(time.Second / time.Duration(rps))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // 64 in flight: skip a beat rather than pile up
			}
			l.done.Add(1)
			go func() {
				defer l.done.Done()
				defer func() { <-slots }()
				resp, err := cl.Get(url)
				if err == nil {
					_, rerr := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if rerr == nil && resp.StatusCode == 200 {
						l.ok.Add(1)
						return
					}
					err = fmt.Errorf("status %d %v", resp.StatusCode, rerr)
				}
				if ctx.Err() != nil {
					return
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.errs[err.Error()]++
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

// stopSummary is the load's counts so far, without stopping it.
func (l *load) stopSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d ok, %d failed %v", l.ok.Load(), l.failed.Load(), l.errs)
}
