package listwatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// Source lists and watches one kind: the API through the client, or the
// store.
type Source interface {
	// List returns the objects and the revision to watch from.
	List(ctx context.Context) ([]api.Object, int64, error)
	// Watch streams changes after rev (bookmarks may be included). The
	// channel closes when the watch ends; the func then says why.
	Watch(ctx context.Context, rev int64) (<-chan api.WatchEvent, func() error, error)
}

// Loop defaults.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Loop runs one view. Replace and Update are called from Run's goroutine
// only, never at the same time.
type Loop struct {
	// Name says what the view is, for logs ("instances").
	Name   string
	Source Source
	// Replace installs every successful list, taken at store revision rev.
	Replace func(objs []api.Object, rev int64)
	// Update applies a batch of watch events: whatever had arrived
	// together, so a burst costs one recompute. Bookmarks are left out.
	Update func(events []api.WatchEvent)
	// Progress, when set, is told of each bookmark's revision after the
	// events before it were applied: every change through it is in.
	Progress func(rev int64)
	// Expired says that a watch error means its revision is gone
	// (compacted): the loop lists again at once, without complaint.
	Expired func(error) bool
	// Resync ends each watch after this long and lists again, so a missed
	// event costs at most one period (0: never).
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the wait before listing again after
	// an error (defaults DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger

	// wait sleeps d unless ctx ends first (tests record it).
	wait func(ctx context.Context, d time.Duration) bool
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run keeps the view until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	minB, maxB := l.MinBackoff, l.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB < minB {
		maxB = max(DefaultMaxBackoff, minB)
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	delay := minB
	for ctx.Err() == nil {
		listed, err := l.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if listed {
			delay = minB
		}
		if err == nil || (l.Expired != nil && l.Expired(err)) {
			log.Debug("listing again", "view", l.Name, "err", err)
			continue
		}
		log.Warn("list or watch failed; keeping the last view and retrying", "view", l.Name, "err", err, "in", delay)
		wait := l.wait
		if wait == nil {
			wait = sleep
		}
		if !wait(ctx, delay) {
			return
		}
		delay = min(delay*2, maxB)
	}
}

// once lists, then watches until the watch ends. It reports whether the
// list succeeded, and why the round ended (nil: Resync).
func (l *Loop) once(ctx context.Context) (listed bool, err error) {
	objs, rev, err := l.Source.List(ctx)
	if err != nil {
		return false, err
	}
	l.Replace(objs, rev)
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if l.Resync > 0 {
		wctx, cancel = context.WithTimeout(ctx, l.Resync)
	}
	defer cancel()
	events, werr, err := l.Source.Watch(wctx, rev)
	if err != nil {
		return true, err
	}
	for ev := range events {
		batch := l.appendEvent(nil, ev)
	more:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break more
				}
				batch = l.appendEvent(batch, ev)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			l.Update(batch)
		}
	}
	err = werr()
	if wctx.Err() != nil && ctx.Err() == nil {
		return true, nil // Resync
	}
	return true, err
}

// appendEvent adds ev to batch; a bookmark applies the batch first and
// then reports its revision (Progress).
func (l *Loop) appendEvent(batch []api.WatchEvent, ev api.WatchEvent) []api.WatchEvent {
	if ev.Type != api.WatchBookmark && ev.Object != nil {
		return append(batch, ev)
	}
	if ev.Type != api.WatchBookmark || l.Progress == nil {
		return batch
	}
	if len(batch) > 0 {
		l.Update(batch)
	}
	l.Progress(ev.Revision)
	return nil
}
