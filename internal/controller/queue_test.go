package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// tryGet takes a key from q if one is ready, without waiting.
func tryGet(q *queue) (string, bool) {
	q.mu.Lock()
	ready := len(q.pending) > 0
	q.mu.Unlock()
	if !ready {
		return "", false
	}
	return q.get()
}

func TestQueueDedup(t *testing.T) {
	t.Parallel()
	q := newQueue()
	defer q.close()
	for _, k := range []string{"a", "a", "b", "a", "b"} {
		q.add(k)
	}
	for _, want := range []string{"a", "b"} {
		got, ok := tryGet(q)
		if !ok || got != want {
			t.Fatalf("want key %q (first-added order, once each); got %q (ok=%v)", want, got, ok)
		}
		q.done(got, false)
	}
	if got, ok := tryGet(q); ok {
		t.Errorf("keys added several times before a worker took them were handed out again: %q", got)
	}
}

func TestQueueOneWorkerPerKey(t *testing.T) {
	t.Parallel()
	q := newQueue()
	defer q.close()
	q.add("a")
	if got, ok := tryGet(q); !ok || got != "a" {
		t.Fatalf("want a; got %q (ok=%v)", got, ok)
	}
	// Added again while a worker has it: held back, twice or not.
	q.add("a")
	q.add("a")
	q.add("b")
	if got, ok := tryGet(q); !ok || got != "b" {
		t.Fatalf("another key is not held back by an active one: want b; got %q (ok=%v)", got, ok)
	}
	if got, ok := tryGet(q); ok {
		t.Fatalf("key %q handed to a second worker while the first still has it", got)
	}
	// Done: the change seen meanwhile is reconciled, once.
	q.done("a", false)
	if got, ok := tryGet(q); !ok || got != "a" {
		t.Fatalf("a key added while active must run again when done: want a; got %q (ok=%v)", got, ok)
	}
	q.done("a", false)
	q.done("b", false)
	if got, ok := tryGet(q); ok {
		t.Errorf("want nothing left; got %q", got)
	}
}

func TestQueueClosed(t *testing.T) {
	t.Parallel()
	q := newQueue()
	time.AfterFunc(50*time.Millisecond, q.close)
	got := make(chan bool)
	go func() { _, ok := q.get(); got <- ok }() // waits on the empty queue
	select {
	case ok := <-got:
		if ok {
			t.Errorf("get on a closed queue returned a key")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("close did not wake a waiting get")
	}
	q.add("b")
	if key, ok := q.get(); ok {
		t.Errorf("add after close: want it ignored; get returned %q", key)
	}
}

// keyTracker records, per key, how many reconciles run at once.
type keyTracker struct {
	mu        sync.Mutex
	active    map[string]int
	maxPerKey int
	maxAll    int
	all       int
	added     map[string]int // sequence number of each key's last add
	seenAfter map[string]int // sequence number current when its last reconcile started
	seq       int
}

func (c *keyTracker) add(q *queue, key string) {
	c.mu.Lock()
	c.seq++
	c.added[key] = c.seq
	c.mu.Unlock()
	q.add(key)
}

func (c *keyTracker) Reconcile(_ context.Context, key string) error {
	c.mu.Lock()
	c.active[key]++
	c.all++
	c.maxPerKey = max(c.maxPerKey, c.active[key])
	c.maxAll = max(c.maxAll, c.all)
	c.seenAfter[key] = c.seq
	c.mu.Unlock()
	time.Sleep(time.Millisecond)
	c.mu.Lock()
	c.active[key]--
	c.all--
	c.mu.Unlock()
	return nil
}

func TestRunOneWorkerPerKeyAndLevelTriggered(t *testing.T) {
	t.Parallel()
	q := newQueue()
	c := &keyTracker{active: map[string]int{}, added: map[string]int{}, seenAfter: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		run(ctx, "test", c, q, 8, Config{Log: slog.New(slog.DiscardHandler)})
	}()

	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				c.add(q, fmt.Sprintf("k%d", rand.IntN(10)))
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()

	// Every key is reconciled after its last add.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		var behind []string
		for k, seq := range c.added {
			if c.seenAfter[k] < seq {
				behind = append(behind, k)
			}
		}
		c.mu.Unlock()
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys %v were not reconciled after their last add", behind)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatalf("run did not return after its context ended")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxPerKey != 1 {
		t.Errorf("want one reconcile per key at a time; saw %d at once", c.maxPerKey)
	}
	if c.maxAll < 2 {
		t.Errorf("want different keys reconciled in parallel by 8 workers; saw at most %d at once", c.maxAll)
	}
}

func TestBackoffGrowth(t *testing.T) {
	t.Parallel()
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000}
	for i, w := range want {
		if got := backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("backoff after %d failures: want %s; got %s", i+1, w*time.Millisecond, got)
		}
	}
	if got := backoff(1000); got != 10*time.Second {
		t.Errorf("backoff after 1000 failures: want the 10s cap; got %s", got)
	}

	q := newQueue()
	defer q.close()
	var prev time.Duration
	for i := 0; i < 4; i++ {
		q.add("a")
		key, _ := q.get()
		d := q.done(key, true)
		if d <= prev {
			t.Errorf("failure %d: retry in %s; want more than the previous %s", i+1, d, prev)
		}
		prev = d
	}
	q.add("a")
	key, _ := q.get()
	if d := q.done(key, false); d != 0 {
		t.Errorf("success: want no retry; got one in %s", d)
	}
	q.add("a")
	key, _ = q.get()
	if d := q.done(key, true); d != 100*time.Millisecond {
		t.Errorf("failure after a success: want back-off reset to 100ms; got %s", d)
	}
}

// failing fails its first n reconciles, noting when each call came.
type failing struct {
	mu    sync.Mutex
	n     int
	calls []time.Time
}

func (f *failing) Reconcile(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, time.Now())
	if len(f.calls) <= f.n {
		return errors.New("not yet")
	}
	return nil
}

func TestRunRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	q := newQueue()
	f := &failing{n: 3}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		run(ctx, "test", f, q, 2, Config{Log: slog.New(slog.DiscardHandler)})
	}()
	defer func() { cancel(); <-stopped }()
	q.add("x")

	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.calls)
		f.mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 4 calls (3 failures, then success) within 5s; got %d", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // no retry after the success
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 4 {
		t.Errorf("want no retry after a success; got %d calls", len(f.calls))
	}
	for i := 1; i < len(f.calls); i++ {
		gap, wait := f.calls[i].Sub(f.calls[i-1]), backoff(i)
		if gap < wait {
			t.Errorf("retry %d came %s after failure %d; want at least the %s back-off", i, gap, i, wait)
		}
	}
}
