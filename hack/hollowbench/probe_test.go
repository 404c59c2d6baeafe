package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A probe that does not return must not hold back the ones due after it:
// they are sent at their times, and the stuck one's latency counts from
// when it was due.
func TestProbesAreSentOpenLoop(t *testing.T) {
	release := make(chan struct{})
	later := make(chan int, 100)
	var first, held time.Time
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan []probeResult)
	go func() {
		done <- probeOpenLoop(ctx, time.Millisecond, time.Minute, 1000, []probeKind{{"stuck", func(ctx context.Context, i int) error {
			if i == 0 {
				<-release
				return nil
			}
			later <- i
			return nil
		}}})
	}()
	for n := range 5 {
		select {
		case <-later:
			if n == 0 {
				first = time.Now()
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no probe was sent while the first had not returned")
		}
	}
	held = time.Now()
	close(release)
	stop()
	res := <-done
	if len(res) != 1 || res[0].sent < 6 || res[0].failed != 0 {
		t.Fatalf("want one kind with at least 6 probes sent and none failed, got %+v", res)
	}
	// The stuck probe was due before the first later one was sent and
	// returned after five of them had.
	if got, want := percentile(res[0].latencies, 1), held.Sub(first); got < want {
		t.Errorf("max latency %v: want the stuck probe's, at least %v", got, want)
	}
}

// Errors, timeouts and probes not sent for want of room are all failures,
// and none of them is a latency.
func TestFailedProbesAreCounted(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	var calls atomic.Int64
	enough := make(chan struct{})
	done := make(chan []probeResult)
	go func() {
		done <- probeOpenLoop(ctx, time.Millisecond, 50*time.Millisecond, 3, []probeKind{
			{"broken", func(ctx context.Context, i int) error { return errors.New("refused") }},
			{"hung", func(ctx context.Context, i int) error {
				if calls.Add(1) == 20 {
					close(enough)
				}
				<-ctx.Done()
				return ctx.Err()
			}},
		})
	}()
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
		t.Fatal("the hung kind was not probed 20 times")
	}
	stop()
	res := <-done
	broken, hung := res[0], res[1]
	if broken.failed != broken.sent || broken.sent == 0 || len(broken.latencies) != 0 {
		t.Errorf("broken: want every probe failed and no latency, got %d of %d failed, %d latencies", broken.failed, broken.sent, len(broken.latencies))
	}
	if hung.failed != hung.sent || hung.sent < 20 || len(hung.latencies) != 0 {
		t.Errorf("hung: want every probe failed (timed out or not sent), got %d of %d failed, %d latencies", hung.failed, hung.sent, len(hung.latencies))
	}
	if s := broken.summary(); !strings.Contains(s, "failed (first: refused)") {
		t.Errorf("summary %q: want the first error named", s)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := percentile(d, c.q); got != c.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("percentile of one = %v, want it", got)
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile of none = %v, want 0", got)
	}
}
