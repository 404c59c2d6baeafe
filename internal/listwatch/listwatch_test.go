package listwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

var errGone = errors.New("410 gone")

// script is a Source that plays one step per List: an error, or objects
// and then a watch that sends events and ends with werr.
type script struct {
	mu    sync.Mutex
	steps []step
	lists int
	done  chan struct{} // closed when the script has run out
}

type step struct {
	listErr error
	objs    []string
	events  []string // names of ADDED objects
	werr    error    // nil: the watch stays open until ctx ends
}

func (s *script) List(ctx context.Context) ([]api.Object, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lists >= len(s.steps) {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	st := s.steps[s.lists]
	s.lists++
	if st.listErr != nil {
		return nil, 0, st.listErr
	}
	return objects(st.objs), int64(s.lists), nil
}

func (s *script) Watch(ctx context.Context, rev int64) (<-chan api.WatchEvent, func() error, error) {
	s.mu.Lock()
	st := s.steps[s.lists-1]
	s.mu.Unlock()
	out := make(chan api.WatchEvent, len(st.events)+1)
	for _, n := range st.events {
		out <- api.WatchEvent{Type: api.WatchAdded, Object: objects([]string{n})[0]}
	}
	out <- api.WatchEvent{Type: api.WatchBookmark, Revision: rev}
	var werr error
	if st.werr != nil {
		werr = st.werr
		close(out)
	} else {
		go func() { <-ctx.Done(); close(out) }()
	}
	return out, func() error { return werr }, nil
}

func objects(names []string) []api.Object {
	var out []api.Object
	for _, n := range names {
		out = append(out, &api.App{Metadata: api.ObjectMeta{Name: n}})
	}
	return out
}

// run plays steps through a Loop and returns what the view saw, in order
// ("list a,b", "add c") and the back-off waits it asked for.
func run(t *testing.T, steps []step, resync time.Duration) (seen []string, waits []time.Duration) {
	t.Helper()
	src := &script{steps: steps, done: make(chan struct{})}
	var mu sync.Mutex
	l := &Loop{
		Name:   "apps",
		Source: src,
		Replace: func(objs []api.Object, _ int64) {
			var names []string
			for _, o := range objs {
				names = append(names, o.GetMeta().Name)
			}
			mu.Lock()
			seen = append(seen, fmt.Sprint("list ", names))
			mu.Unlock()
		},
		Update: func(events []api.WatchEvent) {
			for _, ev := range events {
				if ev.Type == api.WatchBookmark {
					t.Errorf("Update got a bookmark")
				}
				mu.Lock()
				seen = append(seen, "add "+ev.Object.GetMeta().Name)
				mu.Unlock()
			}
		},
		Expired:    func(err error) bool { return errors.Is(err, errGone) },
		Resync:     resync,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond,
		wait: func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err() == nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { l.Run(ctx); close(stopped) }()
	select {
	case <-src.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the loop did not play its script: saw %v", seen)
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(seen), slices.Clone(waits)
}

func TestLoopRelistsAtOnceAfterExpiry(t *testing.T) {
	seen, waits := run(t, []step{
		{objs: []string{"a"}, events: []string{"b"}, werr: errGone},
		{objs: []string{"a", "b", "c"}, werr: errGone},
	}, 0)
	if want := []string{"list [a]", "add b", "list [a b c]"}; !slices.Equal(seen, want) {
		t.Errorf("view saw %q, want %q", seen, want)
	}
	if len(waits) != 0 {
		t.Errorf("waited %v before listing again after a 410; want no wait", waits)
	}
}

// The server goes away (the watch breaks, lists fail) and comes back: the
// loop backs off, doubling with each failure in a row (the broken watch
// counts as the first) up to the cap, keeps the last view meanwhile, and
// starts over from the shortest wait once a list succeeds.
func TestLoopBacksOffWhileTheServerIsAway(t *testing.T) {
	down := errors.New("connection refused")
	seen, waits := run(t, []step{
		{objs: []string{"a"}, werr: io.ErrUnexpectedEOF},
		{listErr: down}, {listErr: down}, {listErr: down}, {listErr: down},
		{objs: []string{"a", "b"}, werr: io.ErrUnexpectedEOF},
		{listErr: down},
	}, 0)
	if want := []string{"list [a]", "list [a b]"}; !slices.Equal(seen, want) {
		t.Errorf("view saw %q, want %q (nothing replaced while the server was away)", seen, want)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms, 100 * ms, 200 * ms}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

func TestLoopResyncListsAgain(t *testing.T) {
	seen, waits := run(t, []step{
		{objs: []string{"a"}},
		{objs: []string{"a", "b"}},
	}, 20*time.Millisecond)
	if want := []string{"list [a]", "list [a b]"}; !slices.Equal(seen, want) {
		t.Errorf("view saw %q, want %q", seen, want)
	}
	if len(waits) != 0 {
		t.Errorf("waited %v at a resync; want none", waits)
	}
}

// A bookmark reaches Progress only after every event before it has
// reached Update: a cache then counts that revision as whole.
func TestLoopReportsBookmarksAfterTheirEvents(t *testing.T) {
	src := &script{steps: []step{{objs: []string{"a"}, events: []string{"b", "c"}}}, done: make(chan struct{})}
	var mu sync.Mutex
	var seen []string
	progressed := make(chan struct{})
	l := &Loop{
		Name:    "apps",
		Source:  src,
		Replace: func([]api.Object, int64) {},
		Update: func(events []api.WatchEvent) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range events {
				seen = append(seen, "add "+ev.Object.GetMeta().Name)
			}
		},
		Progress: func(rev int64) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprint("through ", rev))
			close(progressed)
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { l.Run(ctx); close(stopped) }()
	select {
	case <-progressed:
	case <-time.After(10 * time.Second):
		t.Fatal("no bookmark reached Progress")
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"add b", "add c", "through 1"}; !slices.Equal(seen, want) {
		t.Errorf("saw %q, want %q", seen, want)
	}
}
