package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/server"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRUD(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	const path = "/api/v1/namespaces/default/apps/web"

	created := newApp("default", "web", 1)
	if err := e.cli.Create(ctx, created); err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Metadata.Revision == 0 || created.Metadata.UID == "" {
		t.Fatalf("create returned no revision or uid: %+v", created.Metadata)
	}
	obj, err := e.cli.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got := obj.(*api.App)
	if got.Metadata.UID != created.Metadata.UID || got.Metadata.Revision != created.Metadata.Revision ||
		*got.Spec.Replicas != 1 || got.Spec.RestartPolicy != api.RestartAlways {
		t.Fatalf("get = %+v, want what create stored, defaulted", got)
	}

	t.Run("create existing name is 409", func(t *testing.T) {
		code, body := e.do(t, http.MethodPost, "/api/v1/namespaces/default/apps", mustJSON(t, newApp("default", "web", 3)))
		msg := wantStatus(t, code, body, http.StatusConflict)
		if want := `App "web" in namespace "default": already exists`; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
	})

	t.Run("update with stale revision is 409", func(t *testing.T) {
		fresh, _ := e.cli.Get(ctx, apps, "default", "web")
		stale := fresh.(*api.App).Metadata.Revision
		*fresh.(*api.App).Spec.Replicas = 2
		if err := e.cli.Update(ctx, fresh); err != nil {
			t.Fatalf("update: %v", err)
		}
		now := fresh.GetMeta().Revision
		if now <= stale {
			t.Fatalf("update did not advance the revision: %d -> %d", stale, now)
		}
		old := newApp("default", "web", 7)
		old.Metadata.Revision = stale
		code, body := e.do(t, http.MethodPut, path, mustJSON(t, old))
		msg := wantStatus(t, code, body, http.StatusConflict)
		want := fmt.Sprintf(`App "web" in namespace "default" (revision %d, stored %d): conflict: the object was modified; read it again and retry`, stale, now)
		if msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		if err := e.cli.Update(ctx, old); !errors.Is(err, client.ErrConflict) {
			t.Errorf("client.Update with stale revision: %v, want ErrConflict", err)
		}
		cur, _ := e.cli.Get(ctx, apps, "default", "web")
		if r := *cur.(*api.App).Spec.Replicas; r != 2 {
			t.Errorf("replicas = %d after a stale update, want 2", r)
		}
	})

	t.Run("update without revision is 400", func(t *testing.T) {
		code, body := e.do(t, http.MethodPut, path, mustJSON(t, newApp("default", "web", 9)))
		wantStatus(t, code, body, http.StatusBadRequest, "metadata.revision is required for an update")
	})

	t.Run("update whose body names another object is 400", func(t *testing.T) {
		other := newApp("default", "other", 1)
		other.Metadata.Revision = 1
		code, body := e.do(t, http.MethodPut, path, mustJSON(t, other))
		wantStatus(t, code, body, http.StatusBadRequest, `metadata.name "other" does not match the path's name "web"`)
		code, body = e.do(t, http.MethodPost, "/api/v1/namespaces/kube/apps", mustJSON(t, other))
		wantStatus(t, code, body, http.StatusBadRequest, `metadata.namespace "default" does not match the path's namespace "kube"`)
	})

	t.Run("invalid object is 422", func(t *testing.T) {
		bad := newApp("default", "bad", -2)
		code, body := e.do(t, http.MethodPost, "/api/v1/namespaces/default/apps", mustJSON(t, bad))
		msg := wantStatus(t, code, body, http.StatusUnprocessableEntity)
		if want := `App "bad": spec.replicas: must not be negative`; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		code, body = e.do(t, http.MethodPost, "/api/v1/namespaces/nowhere/apps", mustJSON(t, newApp("nowhere", "x", 1)))
		msg = wantStatus(t, code, body, http.StatusUnprocessableEntity)
		if want := `App "x": metadata.namespace: namespace "nowhere" does not exist (apply a Namespace first)`; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
	})

	t.Run("delete, then 404 naming the object", func(t *testing.T) {
		code, body := e.do(t, http.MethodDelete, path, nil)
		if code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, body)
		}
		code, body = e.do(t, http.MethodGet, path, nil)
		msg := wantStatus(t, code, body, http.StatusNotFound)
		if want := `App "web" in namespace "default": not found`; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		if _, err := e.cli.Get(ctx, apps, "default", "web"); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("client.Get after delete: %v, want ErrNotFound", err)
		}
		code, body = e.do(t, http.MethodDelete, path, nil)
		wantStatus(t, code, body, http.StatusNotFound, `App "web" in namespace "default"`)
	})

	t.Run("unknown paths are 404", func(t *testing.T) {
		for _, p := range []string{"/api/v1/widgets", "/api/v1/apps/web", "/api/v1/namespaces/default/nodes/n1"} {
			code, body := e.do(t, http.MethodGet, p, nil)
			wantStatus(t, code, body, http.StatusNotFound)
		}
	})
}

func TestConcurrentScale(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	if err := e.cli.Create(ctx, newApp("default", "web", 1)); err != nil {
		t.Fatal(err)
	}
	const scalers, readers = 10, 4
	var (
		wg, rwg sync.WaitGroup
		errs    = make(chan error, scalers+readers)
		done    = make(chan struct{})
	)
	for r := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					if n == 0 {
						errs <- fmt.Errorf("reader %d never read", r)
					}
					return
				default:
				}
				obj, err := e.cli.Get(ctx, apps, "default", "web")
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				if n := *obj.(*api.App).Spec.Replicas; n < 1 || n > scalers {
					errs <- fmt.Errorf("reader %d saw replicas %d", r, n)
					return
				}
			}
		}()
	}
	for i := range scalers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := int32(i + 1)
			app, err := e.cli.Scale(ctx, "default", "web", want)
			if err != nil {
				errs <- fmt.Errorf("scale to %d: %w", want, err)
				return
			}
			if *app.Spec.Replicas != want {
				errs <- fmt.Errorf("scale to %d answered replicas %d", want, *app.Spec.Replicas)
			}
		}()
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	obj, err := e.cli.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if n := *obj.(*api.App).Spec.Replicas; n < 1 || n > scalers {
		t.Fatalf("final replicas = %d, want one of the values sent (1..%d)", n, scalers)
	}

	code, body := e.do(t, http.MethodPut, "/api/v1/namespaces/default/apps/web/scale", []byte(`{"replicas":-1}`))
	wantStatus(t, code, body, http.StatusUnprocessableEntity, "spec.replicas: must not be negative")
	code, body = e.do(t, http.MethodPut, "/api/v1/namespaces/default/apps/nope/scale", []byte(`{"replicas":1}`))
	wantStatus(t, code, body, http.StatusNotFound, `App "nope"`)
	code, body = e.do(t, http.MethodPut, "/api/v1/namespaces/default/apps/web/scale", []byte(`{"replicas":"two"}`))
	wantStatus(t, code, body, http.StatusBadRequest, "scale body")
}

// Read-modify-write with retry on 409 never loses an update.
func TestConcurrentUpdatesNeverLoseAnIncrement(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 25*time.Second)
	if err := e.cli.Create(ctx, newApp("default", "counter", 0)); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	conflicts := make(chan int, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 200; attempt++ {
				obj, err := e.cli.Get(ctx, apps, "default", "counter")
				if err != nil {
					errs <- fmt.Errorf("writer %d: get: %w", w, err)
					return
				}
				*obj.(*api.App).Spec.Replicas++
				err = e.cli.Update(ctx, obj)
				if err == nil {
					conflicts <- attempt
					return
				}
				if !errors.Is(err, client.ErrConflict) {
					errs <- fmt.Errorf("writer %d: update: %w", w, err)
					return
				}
			}
			errs <- fmt.Errorf("writer %d: still conflicting after 200 attempts", w)
		}()
	}
	wg.Wait()
	close(errs)
	close(conflicts)
	for err := range errs {
		t.Fatal(err)
	}
	retries := 0
	for n := range conflicts {
		retries += n
	}
	obj, err := e.cli.Get(ctx, apps, "default", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if n := *obj.(*api.App).Spec.Replicas; n != writers {
		t.Fatalf("replicas = %d after %d increments (%d retries on conflict)", n, writers, retries)
	}
	t.Logf("%d increments, %d retries on 409", writers, retries)
}

func TestStatusSubresource(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	app := newApp("default", "web", 2)
	if err := e.cli.Create(ctx, app); err != nil {
		t.Fatal(err)
	}

	// A status write carries a changed spec too; only the status may land.
	w := newApp("default", "web", 9)
	w.Spec.Image = "evil:latest"
	w.Status = api.AppStatus{Replicas: 2, Running: 1, Message: "starting"}
	if err := e.cli.UpdateStatus(ctx, w); err != nil {
		t.Fatalf("update status: %v", err)
	}
	if *w.Spec.Replicas != 2 || w.Spec.Image != "nginx:1.27" || w.Status.Running != 1 {
		t.Errorf("status PUT answered %+v, want the stored spec with the new status", w)
	}
	obj, _ := e.cli.Get(ctx, apps, "default", "web")
	got := obj.(*api.App)
	if *got.Spec.Replicas != 2 || got.Spec.Image != "nginx:1.27" {
		t.Errorf("status PUT changed the spec: %+v", got.Spec)
	}
	if got.Status.Running != 1 || got.Status.Message != "starting" {
		t.Errorf("status = %+v, want what was PUT", got.Status)
	}
	if got.Metadata.UID != app.Metadata.UID {
		t.Errorf("status PUT changed the uid")
	}

	// An object PUT with another status keeps the stored status.
	got.Status = api.AppStatus{Running: 99, Message: "forged"}
	*got.Spec.Replicas = 4
	if err := e.cli.Update(ctx, got); err != nil {
		t.Fatalf("update: %v", err)
	}
	obj, _ = e.cli.Get(ctx, apps, "default", "web")
	after := obj.(*api.App)
	if *after.Spec.Replicas != 4 {
		t.Errorf("replicas = %d, want 4", *after.Spec.Replicas)
	}
	if after.Status.Running != 1 || after.Status.Message != "starting" {
		t.Errorf("object PUT replaced the status: %+v", after.Status)
	}

	code, body := e.do(t, http.MethodPut, "/api/v1/namespaces/default/apps/nope/status", mustJSON(t, newApp("default", "nope", 1)))
	wantStatus(t, code, body, http.StatusNotFound, `App "nope" in namespace "default": not found`)
}

func TestDeleteInstanceGracefullyOrByForce(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	in := newInstance("default", "web-1", "n1")
	if err := e.cli.Create(ctx, in); err != nil {
		t.Fatal(err)
	}

	if err := e.cli.Delete(ctx, instances, "default", "web-1", client.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	obj, err := e.cli.Get(ctx, instances, "default", "web-1")
	if err != nil {
		t.Fatalf("an Instance deleted without force must stay until its agent removes it: %v", err)
	}
	marked := obj.GetMeta().DeletedAt
	if marked.IsZero() {
		t.Fatalf("deletedAt not set: %+v", obj.GetMeta())
	}

	// Deleting again keeps the first mark; an update keeps it too.
	if err := e.cli.Delete(ctx, instances, "default", "web-1", client.DeleteOptions{}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	obj, _ = e.cli.Get(ctx, instances, "default", "web-1")
	if !obj.GetMeta().DeletedAt.Equal(marked) {
		t.Errorf("deletedAt moved from %v to %v", marked, obj.GetMeta().DeletedAt)
	}
	obj.GetMeta().DeletedAt = time.Time{}
	if err := e.cli.Update(ctx, obj); err != nil {
		t.Fatalf("update: %v", err)
	}
	if !obj.GetMeta().DeletedAt.Equal(marked) {
		t.Errorf("an update cleared deletedAt: %v", obj.GetMeta().DeletedAt)
	}

	// A stale revision guard refuses.
	err = e.cli.Delete(ctx, instances, "default", "web-1", client.DeleteOptions{Revision: 1})
	if !errors.Is(err, client.ErrConflict) {
		t.Errorf("delete at a stale revision: %v, want ErrConflict", err)
	}

	if err := e.cli.Delete(ctx, instances, "default", "web-1", client.DeleteOptions{Force: true}); err != nil {
		t.Fatalf("force delete: %v", err)
	}
	if _, err := e.cli.Get(ctx, instances, "default", "web-1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after force delete: %v, want ErrNotFound", err)
	}
	if err := e.cli.Delete(ctx, instances, "default", "web-1", client.DeleteOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("delete of a missing instance: %v, want ErrNotFound", err)
	}
}

func TestDeleteNamespace(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := e.cli.Apply(ctx, []byte(namespaceDoc("team")+"---\n"+appDoc("team", "api")), client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}

	code, body := e.do(t, http.MethodDelete, "/api/v1/namespaces/team", nil)
	msg := wantStatus(t, code, body, http.StatusConflict)
	if want := `namespace "team" is not empty: it still has 1 apps; delete them first`; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	if _, err := e.cli.Get(ctx, namespaces, "", "team"); err != nil {
		t.Fatalf("refused delete removed the namespace: %v", err)
	}

	code, body = e.do(t, http.MethodDelete, "/api/v1/namespaces/default", nil)
	wantStatus(t, code, body, http.StatusBadRequest, `namespace "default" cannot be deleted`)

	if err := e.cli.Delete(ctx, apps, "team", "api", client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.cli.Delete(ctx, namespaces, "", "team", client.DeleteOptions{}); err != nil {
		t.Fatalf("delete of an empty namespace: %v", err)
	}
	if _, err := e.cli.Get(ctx, namespaces, "", "team"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("namespace still there: %v", err)
	}
}

func TestRequestLimitsAndUnsupportedMethods(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	if err := e.cli.Create(ctx, newApp("default", "web", 1)); err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, server.MaxObjectBytes+1)
	for i := range huge {
		huge[i] = ' '
	}
	tests := []struct {
		method, path string
		body         []byte
		code         int
		message      string
	}{
		{http.MethodPost, "/api/v1/namespaces/default/apps", huge, http.StatusRequestEntityTooLarge, "request body larger than 1 MiB"},
		{http.MethodPut, "/api/v1/namespaces/default/apps/web", huge, http.StatusRequestEntityTooLarge, "request body larger than 1 MiB"},
		{http.MethodPut, "/api/v1/namespaces/default/apps/web/status", huge, http.StatusRequestEntityTooLarge, "request body larger than 1 MiB"},
		{http.MethodPut, "/api/v1/namespaces/default/apps/web/scale", huge[:5000], http.StatusRequestEntityTooLarge, "request body larger than 4 KiB"},
		{http.MethodPut, "/api/v1/namespaces/default/apps", mustJSON(t, newApp("default", "web", 3)), http.StatusBadRequest, "PUT /api/v1/namespaces/default/apps is not supported"},
		{http.MethodDelete, "/api/v1/namespaces/default/apps", nil, http.StatusBadRequest, "DELETE /api/v1/namespaces/default/apps is not supported"},
		{http.MethodDelete, "/api/v1/namespaces", nil, http.StatusBadRequest, "DELETE /api/v1/namespaces is not supported"},
		{http.MethodPost, "/api/v1/namespaces/default/apps/web", nil, http.StatusBadRequest, "POST /api/v1/namespaces/default/apps/web is not supported"},
		{http.MethodPut, "/api/v1/namespaces/default/instances/x/scale", []byte(`{"replicas":1}`), http.StatusBadRequest, "is not supported"},
		{http.MethodPost, "/api/v1/images", []byte("not a tarball"), http.StatusBadRequest, "this server keeps no images"},
	}
	for _, tt := range tests {
		code, body := e.do(t, tt.method, tt.path, tt.body)
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantStatus(t, code, body, tt.code, tt.message)
		})
	}
	obj, _ := e.cli.Get(ctx, apps, "default", "web")
	if *obj.(*api.App).Spec.Replicas != 1 {
		t.Fatalf("a refused request changed the app: %+v", obj)
	}
}

func TestInstanceLogIsProxiedToItsNode(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	var gotPath, gotQuery string
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "line 1\nline 2\n")
	}))
	defer agent.Close()

	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: "n1"},
	}
	if err := e.cli.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*api.Instance{newInstance("default", "web-1", "n1"), newInstance("default", "web-2", "")} {
		if err := e.cli.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	code, body := e.do(t, http.MethodGet, "/api/v1/namespaces/default/instances/web-1/log", nil)
	wantStatus(t, code, body, http.StatusNotFound, `node "n1" has not said where its agent serves`)
	code, body = e.do(t, http.MethodGet, "/api/v1/namespaces/default/instances/web-2/log", nil)
	wantStatus(t, code, body, http.StatusBadRequest, `instance "web-2" is not placed on a node yet`)

	node.Status.Address = strings.TrimPrefix(agent.URL, "http://")
	if err := e.cli.UpdateStatus(ctx, node); err != nil {
		t.Fatal(err)
	}
	rc, err := e.cli.Logs(ctx, "default", "web-1", client.LogOptions{Tail: 5})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "line 1\nline 2\n" || gotPath != "/logs/default/web-1" || gotQuery != "tail=5" {
		t.Fatalf("logs = %q; agent saw %s?%s", b, gotPath, gotQuery)
	}
}

// Instance status writes start from the server's cache of stored
// instances: they keep the stored spec, and a spec changed since the cache
// last saw it (written straight to the store) is never overwritten.
func TestInstanceStatusWritesKeepTheStoredSpec(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	ik := api.MustKind(api.KindInstance)
	in := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance},
		Metadata: api.ObjectMeta{Name: "web-1", Namespace: "default"},
		Spec:     api.InstanceSpec{App: "web", Node: "n1", Template: api.Template{Image: "nginx:1.27"}}}
	if err := e.store.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		// Half the time the spec changes right before the status write,
		// faster than the cache can know.
		if i%2 == 1 {
			cur, err := e.store.Get(ctx, ik, "default", "web-1")
			if err != nil {
				t.Fatal(err)
			}
			cur.(*api.Instance).Spec.Template.Image = fmt.Sprintf("nginx:%d", i)
			if err := e.store.Update(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}
		w := *in
		w.Spec.Template.Image = "evil:latest"
		w.Status = api.InstanceStatus{Phase: api.PhaseRunning, Restarts: int32(i)}
		if err := e.cli.UpdateStatus(ctx, &w); err != nil {
			t.Fatalf("status write %d: %v", i, err)
		}
		obj, err := e.store.Get(ctx, ik, "default", "web-1")
		if err != nil {
			t.Fatal(err)
		}
		got := obj.(*api.Instance)
		want := "nginx:1.27"
		if i > 0 {
			want = fmt.Sprintf("nginx:%d", i-(1-i%2))
		}
		if got.Spec.Template.Image != want || got.Status.Restarts != int32(i) {
			t.Fatalf("after status write %d: image %q, restarts %d; want %q and %d", i, got.Spec.Template.Image, got.Status.Restarts, want, i)
		}
	}
}
