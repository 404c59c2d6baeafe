package listwatch

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

func inst(ns, name, app, node string, rev int64) *api.Instance {
	return &api.Instance{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Namespace: ns, Name: name, Revision: rev},
		Spec:     api.InstanceSpec{App: app, Node: node},
	}
}

func names(objs []api.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetMeta().Namespace+"/"+o.GetMeta().Name)
	}
	slices.Sort(out)
	return out
}

// The cache answers by name, by namespace and by index, and keeps its
// indexes right as objects move between values and go.
func TestCacheIndexesFollowChanges(t *testing.T) {
	c := NewCache()
	byApp := func(o api.Object) []string {
		in := o.(*api.Instance)
		return []string{Key(in.Metadata.Namespace, in.Spec.App)}
	}
	c.AddIndex("app", byApp)
	c.Replace([]api.Object{inst("a", "w-1", "web", "", 5), inst("a", "w-2", "web", "", 5), inst("b", "w-1", "web", "", 5)}, 5)
	if got, want := names(c.ByIndex("app", "a/web")), []string{"a/w-1", "a/w-2"}; !slices.Equal(got, want) {
		t.Fatalf("index a/web after the list: %v, want %v", got, want)
	}
	c.Update([]api.WatchEvent{
		{Type: api.WatchModified, Object: inst("a", "w-2", "api", "", 6), Revision: 6},
		{Type: api.WatchDeleted, Object: inst("b", "w-1", "web", "", 7), Revision: 7},
	})
	if got, want := names(c.ByIndex("app", "a/web")), []string{"a/w-1"}; !slices.Equal(got, want) {
		t.Errorf("index a/web after w-2 moved to api: %v, want %v", got, want)
	}
	if got, want := names(c.ByIndex("app", "a/api")), []string{"a/w-2"}; !slices.Equal(got, want) {
		t.Errorf("index a/api: %v, want %v", got, want)
	}
	if got := c.ByIndex("app", "b/web"); len(got) != 0 {
		t.Errorf("index b/web after its one instance went: %v", names(got))
	}
	if got := names(c.List("b")); len(got) != 0 {
		t.Errorf("namespace b after its one instance went: %v", got)
	}
	if got, want := names(c.List("")), []string{"a/w-1", "a/w-2"}; !slices.Equal(got, want) {
		t.Errorf("all: %v, want %v", got, want)
	}
	if o, ok := c.Get("a", "w-2"); !ok || o.(*api.Instance).Spec.App != "api" {
		t.Errorf("get a/w-2: %v %v", o, ok)
	}
	if c.Rev() != 6 {
		t.Errorf("revision %d after events up to 7 and no bookmark, want 6 (7 may have more to come)", c.Rev())
	}
	c.Progress(7)
	if c.Rev() != 7 {
		t.Errorf("revision %d after a bookmark at 7", c.Rev())
	}
	// An index added later covers what is held already.
	c.AddIndex("node", func(o api.Object) []string { return []string{o.(*api.Instance).Spec.Node} })
	if got := c.ByIndex("node", ""); len(got) != 2 {
		t.Errorf("a late index holds %v, want both instances", names(got))
	}
}

// Handlers hear every change with the object before and after, and a
// relist reports what went while the watch was away.
func TestCacheOnChange(t *testing.T) {
	c := NewCache()
	type seen struct{ old, cur string }
	var got []seen
	str := func(o api.Object) string {
		if o == nil {
			return "-"
		}
		return o.GetMeta().Name + "@" + o.(*api.Instance).Spec.Node
	}
	c.OnChange(func(old, cur api.Object) { got = append(got, seen{str(old), str(cur)}) })
	c.Replace([]api.Object{inst("a", "x", "web", "", 1), inst("a", "y", "web", "", 1)}, 1)
	c.Update([]api.WatchEvent{{Type: api.WatchModified, Object: inst("a", "x", "web", "n1", 2), Revision: 2}})
	c.Replace([]api.Object{inst("a", "x", "web", "n1", 3)}, 3)
	want := []seen{{"-", "x@"}, {"-", "y@"}, {"x@", "x@n1"}, {"x@n1", "x@n1"}, {"y@", "-"}}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// WaitRev returns once the cache reflects a revision, and not before.
func TestCacheWaitRev(t *testing.T) {
	c := NewCache()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WaitRev(ctx, 0); err == nil {
		t.Fatal("WaitRev returned before the cache listed")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- c.WaitRev(ctx, 4)
	}()
	c.Replace(nil, 3)
	select {
	case err := <-done:
		t.Fatalf("WaitRev(4) returned at revision 3: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Update([]api.WatchEvent{{Type: api.WatchAdded, Object: inst("a", "x", "web", "", 4), Revision: 4}})
	c.Progress(4)
	if err := <-done; err != nil {
		t.Fatalf("WaitRev(4) at revision 4: %v", err)
	}
}

// One transaction's events can reach the cache in two batches; the
// revision counts as held only once all of it is in (a later revision
// or a bookmark), or a reader waiting for its own write would see half.
func TestCacheRevisionIsWholeOnlyWhenAllOfItIsIn(t *testing.T) {
	c := NewCache()
	c.Replace(nil, 5)
	c.Update([]api.WatchEvent{
		{Type: api.WatchAdded, Object: inst("a", "x", "web", "", 6), Revision: 6},
		{Type: api.WatchAdded, Object: inst("a", "y", "web", "", 6), Revision: 6},
	})
	if c.Rev() != 5 {
		t.Fatalf("revision %d after half of revision 6", c.Rev())
	}
	c.Update([]api.WatchEvent{{Type: api.WatchAdded, Object: inst("a", "z", "web", "", 6), Revision: 6}})
	if c.Rev() != 5 {
		t.Fatalf("revision %d after more of revision 6 but no end", c.Rev())
	}
	c.Update([]api.WatchEvent{{Type: api.WatchAdded, Object: inst("a", "q", "web", "", 7), Revision: 7}})
	if c.Rev() != 6 {
		t.Fatalf("revision %d once revision 7 began, want 6", c.Rev())
	}
	c.Progress(7)
	if c.Rev() != 7 || len(c.List("a")) != 4 {
		t.Fatalf("revision %d holding %v after a bookmark at 7", c.Rev(), names(c.List("a")))
	}
	c.Progress(3)
	if c.Rev() != 7 {
		t.Fatalf("an old bookmark moved the revision back to %d", c.Rev())
	}
}
