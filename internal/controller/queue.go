package controller

import (
	"context"
	"sync"
	"time"
)

// Reconciler is the contract every controller implements.
type Reconciler interface {
	// Reconcile makes the world match the desired state for key. An error
	// retries the key with back-off.
	Reconcile(ctx context.Context, key string) error
}

// queue hands keys to workers: a key queued several times before a worker
// takes it is reconciled once, and a key is never reconciled by two
// workers at a time.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []string
	queued  map[string]bool
	active  map[string]bool
	dirty   map[string]bool // queued again while active
	fails   map[string]int
	closed  bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{}, fails: map[string]int{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.active[key] {
		q.dirty[key] = true
		return
	}
	if q.queued[key] {
		return
	}
	q.queued[key] = true
	q.pending = append(q.pending, key)
	q.cond.Signal()
}

func (q *queue) addAfter(key string, d time.Duration) {
	time.AfterFunc(d, func() { q.add(key) })
}

func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pending) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.pending[0]
	q.pending = q.pending[1:]
	delete(q.queued, key)
	q.active[key] = true
	return key, true
}

func (q *queue) done(key string, failed bool) (retryIn time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	if failed {
		q.fails[key]++
		retryIn = backoff(q.fails[key])
	} else {
		delete(q.fails, key)
	}
	if q.dirty[key] {
		delete(q.dirty, key)
		q.queued[key] = true
		q.pending = append(q.pending, key)
		q.cond.Signal()
	}
	return retryIn
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func backoff(fails int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < fails && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// run drives r with workers until ctx ends.
func run(ctx context.Context, name string, r Reconciler, q *queue, workers int, cfg Config) {
	log := cfg.Log
	if cfg.reconciles == nil {
		cfg.defaults()
	}
	passed, failed := cfg.reconciles.WithLabelValues(name, "ok"), cfg.reconciles.WithLabelValues(name, "error")
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.get()
				if !ok {
					return
				}
				err := r.Reconcile(ctx, key)
				if err == nil {
					passed.Inc()
				} else {
					failed.Inc()
				}
				if err != nil && ctx.Err() == nil {
					log.Warn("reconcile failed; will retry", "controller", name, "key", key, "err", err)
				}
				if d := q.done(key, err != nil); d > 0 && ctx.Err() == nil {
					q.addAfter(key, d)
				}
			}
		}()
	}
	<-ctx.Done()
	q.close()
	wg.Wait()
}
