package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A probeKind is one kind of API call the bench times, such as a
// single-object read or a mutating call; i counts its probes from 0.
type probeKind struct {
	name string
	call func(ctx context.Context, i int) error
}

// probeResult is what the probes of one kind measured.
type probeResult struct {
	kind string
	// latencies of the probes that succeeded, each from the time the
	// probe was due, not the time it happened to leave.
	latencies []time.Duration
	sent      int
	// failed counts the probes that returned an error, ran past their
	// timeout, or were not sent because too many were in flight.
	failed   int
	firstErr error
}

// probeOpenLoop sends one probe of every kind every `every` until ctx is
// done, each at its scheduled time whether or not the earlier ones have
// returned, so a slow answer cannot hide the ticks behind it (a closed
// loop measures only the calls it managed to make). Each probe runs at
// most timeout; at most maxInFlight run at once, and a probe due while
// that many are out is counted as failed rather than queued. It returns
// once the last probe in flight has returned.
func probeOpenLoop(ctx context.Context, every, timeout time.Duration, maxInFlight int, kinds []probeKind) []probeResult {
	res := make([]probeResult, len(kinds))
	for k := range kinds {
		res[k].kind = kinds[k].name
	}
	var mu sync.Mutex
	record := func(k int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		r := &res[k]
		r.sent++
		if err != nil {
			r.failed++
			if r.firstErr == nil {
				r.firstErr = err
			}
			return
		}
		r.latencies = append(r.latencies, d)
	}
	var inFlight atomic.Int64
	var wg sync.WaitGroup
	// In-flight probes outlive ctx: the bench stops sending when the
	// instances run, and the slowest probes are the ones that matter.
	probeCtx := context.WithoutCancel(ctx)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * every)
		t.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-t.C:
		}
		for k, kind := range kinds {
			if inFlight.Add(1) > int64(maxInFlight) {
				inFlight.Add(-1)
				record(k, 0, fmt.Errorf("not sent: %d probes in flight", maxInFlight))
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { inFlight.Add(-1); wg.Done() }()
				cctx, cancel := context.WithTimeout(probeCtx, timeout)
				defer cancel()
				err := kind.call(cctx, i)
				record(k, time.Since(due), err)
			}()
		}
	}
}

// percentile is the nearest-rank q-quantile (0 < q <= 1) of d; 0 when d
// is empty.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// summary is the one-line account of one kind's probes.
func (r probeResult) summary() string {
	s := fmt.Sprintf("%s p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d of %d failed",
		r.kind, ms(percentile(r.latencies, 0.5)), ms(percentile(r.latencies, 0.99)), ms(percentile(r.latencies, 1)), r.failed, r.sent)
	if r.firstErr != nil {
		s += fmt.Sprintf(" (first: %v)", r.firstErr)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
