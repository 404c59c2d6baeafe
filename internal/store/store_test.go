package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

var apps = api.MustKind(api.KindApp)

func newApp(name string, replicas int32) *api.App {
	return &api.App{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp},
		Metadata: api.ObjectMeta{Name: name, Namespace: "default"},
		Spec:     api.AppSpec{Template: api.Template{Image: "img"}, Replicas: &replicas},
	}
}

func TestCreateGetUpdateConflictDelete(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	a := newApp("web", 1)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Metadata.UID == "" || a.Metadata.Revision == 0 || a.Metadata.CreatedAt.IsZero() {
		t.Fatalf("create did not set uid/revision/createdAt: %+v", a.Metadata)
	}
	if err := s.Create(ctx, newApp("web", 1)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second create: got %v, want ErrAlreadyExists", err)
	}
	got, err := s.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	stale := got.(*api.App)
	fresh, _ := s.Get(ctx, apps, "default", "web")
	*fresh.(*api.App).Spec.Replicas = 5
	if err := s.Update(ctx, fresh); err != nil {
		t.Fatalf("update: %v", err)
	}
	*stale.Spec.Replicas = 7
	if err := s.Update(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	final, _ := s.Get(ctx, apps, "default", "web")
	if r := *final.(*api.App).Spec.Replicas; r != 5 {
		t.Fatalf("replicas = %d, want 5 (stale write must not win)", r)
	}
	if err := s.Delete(ctx, apps, "default", "web", stale.Metadata.Revision); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete at old revision: got %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, apps, "default", "web", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, apps, "default", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: got %v, want ErrNotFound", err)
	}
}

func TestMutateConcurrentNeverLosesAWrite(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	if err := s.Create(ctx, newApp("web", 0)); err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Mutate(ctx, apps, "default", "web", func(o api.Object) error {
				*o.(*api.App).Spec.Replicas++
				return nil
			})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(ctx, apps, "default", "web")
	if r := *got.(*api.App).Spec.Replicas; r != n {
		t.Fatalf("replicas = %d after %d concurrent increments", r, n)
	}
}

func TestApplyIsAllOrNothingAndKeepsStatus(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	a := newApp("a", 1)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Status.Running = 1
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, []api.Object{newApp("a", 3), newApp("b", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Action != "configured" || res[1].Action != "created" {
		t.Fatalf("actions = %s, %s", res[0].Action, res[1].Action)
	}
	got, _ := s.Get(ctx, apps, "default", "a")
	if g := got.(*api.App); *g.Spec.Replicas != 3 || g.Status.Running != 1 || g.Metadata.UID != a.Metadata.UID {
		t.Fatalf("apply lost something: %+v", g)
	}
	res, err = s.Apply(ctx, []api.Object{newApp("a", 3)})
	if err != nil || res[0].Action != "unchanged" {
		t.Fatalf("re-apply: %v %v", res, err)
	}
	// Two documents naming the same object: nothing is written.
	if _, err := s.Apply(ctx, []api.Object{newApp("c", 1), newApp("c", 2)}); err == nil {
		t.Fatal("duplicate objects in one apply were accepted")
	}
	if _, err := s.Get(ctx, apps, "default", "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("half-applied: %v", err)
	}
}

func TestWatchResumesFromRevision(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, rev, err := s.List(ctx, apps, "")
	if err != nil {
		t.Fatal(err)
	}
	a := newApp("w", 1)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	createdRev := a.Metadata.Revision
	*a.Spec.Replicas = 2
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, apps, "default", "w", 0); err != nil {
		t.Fatal(err)
	}
	// From the list revision: all three events.
	var types []api.WatchEventType
	for ev := range s.Watch(ctx, apps, "", rev) {
		types = append(types, ev.Type)
		if len(types) == 3 {
			break
		}
	}
	if want := []api.WatchEventType{api.WatchAdded, api.WatchModified, api.WatchDeleted}; !equal(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	// Resuming after the create skips it.
	ev := <-s.Watch(ctx, apps, "", createdRev)
	if ev.Type != api.WatchModified {
		t.Fatalf("resumed watch: first event %v, want MODIFIED", ev.Type)
	}
}

// A Source's watch ends each transaction with a bookmark at its
// revision, after all of its events: a cache fed by it knows when a
// revision is whole.
func TestSourceMarksTheEndOfEachTransaction(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := s.Source(apps, "")
	_, rev, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs := []api.Object{newApp("a", 1), newApp("b", 1), newApp("c", 1)}
	if err := s.CreateAll(ctx, objs); err != nil {
		t.Fatal(err)
	}
	txn := objs[0].GetMeta().Revision
	events, _, err := src.Watch(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range events {
		got = append(got, fmt.Sprintf("%s@%d", ev.Type, ev.Revision-txn))
		if ev.Type == api.WatchBookmark {
			break
		}
	}
	if want := []string{"ADDED@0", "ADDED@0", "ADDED@0", "BOOKMARK@0"}; !slices.Equal(got, want) {
		t.Errorf("watch sent %v (revisions after the transaction's), want %v", got, want)
	}
}

func TestWatchCompactedRevision(t *testing.T) {
	s, e := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		a := newApp("c", 1)
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, apps, "default", "c", 0); err != nil {
			t.Fatal(err)
		}
	}
	_, rev, _ := s.List(ctx, apps, "")
	if _, err := e.Client().Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	ev := <-s.Watch(ctx, apps, "", 1)
	if ev.Type != api.WatchError || !errors.Is(ev.Err, store.ErrCompacted) {
		t.Fatalf("watch from compacted revision: %+v, want ErrCompacted", ev)
	}
}

func equal(a, b []api.WatchEventType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCreateAllAndUpdateAllAreAllOrNothing(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx := context.Background()
	if err := s.Create(ctx, newApp("b", 1)); err != nil {
		t.Fatal(err)
	}
	// One name taken: nothing is created.
	if err := s.CreateAll(ctx, []api.Object{newApp("a", 1), newApp("b", 1)}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("CreateAll with a taken name: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Get(ctx, apps, "default", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed CreateAll left %q behind: %v", "a", err)
	}
	objs := []api.Object{newApp("a", 1), newApp("c", 1)}
	if err := s.CreateAll(ctx, objs); err != nil {
		t.Fatal(err)
	}
	// One stale revision: nothing is updated.
	a, _ := s.Get(ctx, apps, "default", "a")
	c, _ := s.Get(ctx, apps, "default", "c")
	stale := *c.(*api.App)
	*c.(*api.App).Spec.Replicas = 9
	if err := s.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	*a.(*api.App).Spec.Replicas = 5
	*stale.Spec.Replicas = 7
	if err := s.UpdateAll(ctx, []api.Object{a, &stale}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateAll with a stale object: %v, want ErrConflict", err)
	}
	got, _ := s.Get(ctx, apps, "default", "a")
	if r := *got.(*api.App).Spec.Replicas; r != 1 {
		t.Fatalf("a failed UpdateAll changed a: replicas %d", r)
	}
	fresh, _ := s.Get(ctx, apps, "default", "c")
	if err := s.UpdateAll(ctx, []api.Object{a, fresh}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, apps, "default", "a")
	if r := *got.(*api.App).Spec.Replicas; r != 5 {
		t.Fatalf("UpdateAll did not write a: replicas %d", r)
	}
}

func TestObjectsWithTTLShareALease(t *testing.T) {
	s, e := storetest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"e1", "e2", "e3"} {
		ev := &api.Event{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent}, Metadata: api.ObjectMeta{Name: name, Namespace: "default"}}
		if err := s.CreateWithTTL(ctx, ev, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	leases, err := e.Client().Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(leases.Leases); n != 1 {
		t.Fatalf("3 events made %d leases, want 1 shared", n)
	}
}

func TestFencedWritesStopWhenTheFenceGoes(t *testing.T) {
	s, e := storetest.Start(t)
	ctx := context.Background()
	put, err := e.Client().Put(ctx, "/leader", "me")
	if err != nil {
		t.Fatal(err)
	}
	f := s.Fenced("/leader", put.Header.Revision)
	if err := f.Create(ctx, newApp("a", 1)); err != nil {
		t.Fatalf("write while the fence holds: %v", err)
	}
	if err := f.Create(ctx, newApp("a", 1)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("an ordinary failure under a fence: %v, want ErrAlreadyExists", err)
	}
	if _, err := e.Client().Delete(ctx, "/leader"); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx, newApp("b", 1)); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("write after the fence went: %v, want ErrNotLeader", err)
	}
	if _, err := s.Get(ctx, apps, "default", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a fenced-off write was stored: %v", err)
	}
	// A new leader's key with the same name is not the old fence either.
	if _, err := e.Client().Put(ctx, "/leader", "other"); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(ctx, apps, "default", "a", 0); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("delete under a stale fence: %v, want ErrNotLeader", err)
	}
}
