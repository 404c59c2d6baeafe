package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/server"
)

// appDoc is a valid App document; extra lines are appended under spec.
func appDoc(ns, name string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: shoal/v1\nkind: App\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	b.WriteString("spec:\n  image: nginx:1.27\n")
	for _, l := range extra {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func namespaceDoc(name string) string {
	return fmt.Sprintf("apiVersion: shoal/v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
}

// bigDoc is an App document of more than 1 MiB.
func bigDoc(name string) string {
	return appDoc("", name, "args: ["+strings.Repeat(`"xxxxxxxxxxxxxx", `, (1<<20)/18+10)+`"x"]`)
}

// billionLaughs would expand to about 10^9 strings if aliases were followed.
const billionLaughs = `apiVersion: shoal/v1
kind: App
metadata:
  name: lol
spec:
  image: nginx
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
  args: *i
`

var nestingBomb = strings.Repeat("[", 100000)

// snapshot is everything apply could have written, to prove it wrote nothing.
type snapshot map[string]int64 // "kind ns/name" -> revision

func (e *testEnv) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out := snapshot{}
	for _, k := range []api.KindInfo{apps, instances, namespaces, api.MustKind(api.KindNode), api.MustKind(api.KindEvent)} {
		objs, _, err := e.cli.List(ctx, k, "", client.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", k.Plural, err)
		}
		for _, o := range objs {
			m := o.GetMeta()
			out[fmt.Sprintf("%s %s/%s", k.Kind, m.Namespace, m.Name)] = m.Revision
		}
	}
	return out
}

func TestApplyRejectsBadManifestsAndStoresNothing(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	// Something already stored, so "nothing changed" is not trivially true.
	if _, err := e.cli.Apply(ctx, []byte(namespaceDoc("existing")+"---\n"+appDoc("existing", "old")), client.ApplyOptions{}); err != nil {
		t.Fatalf("seed apply: %v", err)
	}

	tests := []struct {
		name string
		body string
		// exact is the whole message, where the API's wording is stable;
		// otherwise every one of parts must appear in it.
		exact string
		parts []string
		// maxTime bounds how long rejecting it may take.
		maxTime time.Duration
	}{
		{
			name:  "unknown field",
			body:  appDoc("", "web", "replicass: 3"),
			exact: `document 1 (App "web"): spec.replicass: unknown field`,
		},
		{
			name:  "wrong type",
			body:  appDoc("", "web", "replicas: three"),
			exact: `document 1 (App "web"): spec.replicas: expected integer, got string "three"`,
		},
		{
			name:  "missing image",
			body:  "apiVersion: shoal/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  replicas: 2\n",
			exact: `document 1 (App "web"): spec.image: required`,
		},
		{
			name:  "negative replicas",
			body:  appDoc("", "web", "replicas: -1"),
			exact: `document 1 (App "web"): spec.replicas: must not be negative`,
		},
		{
			name:  "memory in MB",
			body:  appDoc("", "web", "resources:", "  memory: 128MB"),
			parts: []string{"document 1", `App "web"`, "spec.resources.memory", `"128MB"`, "use Mi/Gi"},
		},
		{
			name:  "invalid name",
			body:  appDoc("", "Web_1"),
			parts: []string{"document 1", "metadata.name", `"Web_1" is not a valid name`, "lowercase"},
		},
		{
			name:  "document over 1 MiB",
			body:  appDoc("", "small") + "---\n" + bigDoc("big"),
			exact: `document 2: larger than 1 MiB`,
		},
		{
			name:    "billion laughs",
			body:    billionLaughs,
			parts:   []string{"document 1", "aliases are not allowed"},
			maxTime: 5 * time.Second,
		},
		{
			name:    "nesting bomb",
			body:    nestingBomb,
			parts:   []string{"document 1", "nested deeper than"},
			maxTime: 5 * time.Second,
		},
		{
			name:    "JSON nesting bomb",
			body:    `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web"},"spec":{"image":"x","args":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}}",
			parts:   []string{"document 1", "nested deeper than"},
			maxTime: 5 * time.Second,
		},
		{
			name: "third of three documents bad",
			body: namespaceDoc("team") + "---\n" + appDoc("team", "api") + "---\n" + appDoc("team", "worker", "replicas: -3"),
			// The namespace does not exist yet, but the file declares it, so the
			// only problem is document 3's.
			exact: `document 3 (App "worker"): spec.replicas: must not be negative`,
		},
		{
			name:  "namespace that does not exist",
			body:  appDoc("", "ok") + "---\n" + appDoc("nowhere", "web"),
			exact: `document 2 (App "web"): metadata.namespace: namespace "nowhere" does not exist (apply a Namespace first)`,
		},
		{
			name:  "namespace that does not exist, single document",
			body:  appDoc("nowhere", "web"),
			exact: `document 1 (App "web"): metadata.namespace: namespace "nowhere" does not exist (apply a Namespace first)`,
		},
		{
			name:  "kind Instance",
			body:  "apiVersion: shoal/v1\nkind: Instance\nmetadata:\n  name: web-1\nspec:\n  app: web\n  template:\n    image: nginx\n",
			exact: `document 1 (Instance "web-1"): kind: is managed by shoal and cannot be applied; apply an App instead`,
		},
		{
			name:  "kind Instance after a good document",
			body:  appDoc("", "web") + "---\napiVersion: shoal/v1\nkind: Instance\nmetadata:\n  name: web-1\nspec:\n  app: web\n  template:\n    image: nginx\n",
			exact: `document 2 (Instance "web-1"): kind: is managed by shoal and cannot be applied; apply an App instead`,
		},
		{
			name:  "same object twice",
			body:  appDoc("", "twice") + "---\n" + appDoc("default", "twice", "replicas: 2"),
			exact: `document 2 (App "twice"): metadata.name: document 1 already defines this object`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			begin := time.Now()
			code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tt.body))
			took := time.Since(begin)
			msg := wantStatus(t, code, body, http.StatusUnprocessableEntity, tt.parts...)
			if tt.exact != "" && msg != tt.exact {
				t.Errorf("message:\n got %s\nwant %s", msg, tt.exact)
			}
			if tt.maxTime > 0 && took > tt.maxTime {
				t.Errorf("rejecting took %v, want under %v", took, tt.maxTime)
			}
			if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
				t.Errorf("a rejected apply changed the store:\nbefore %v\nafter  %v", before, after)
			}
			// The client sees the same answer as a typed error.
			_, err := e.cli.Apply(ctx, []byte(tt.body), client.ApplyOptions{})
			var ae *client.APIError
			if !errors.As(err, &ae) || !errors.Is(err, client.ErrInvalid) || ae.Reason != "Invalid" {
				t.Errorf("client.Apply error = %#v, want an Invalid APIError", err)
			}
		})
	}
}

func TestApplyBodyOver16MiBIs413(t *testing.T) {
	e := start(t)
	before := e.snapshot(t)
	// Many small valid documents, so only the total size is wrong.
	doc := appDoc("", "web") + "---\n"
	body := strings.Repeat(doc, (server.MaxApplyBytes/len(doc))+2)
	code, resp := e.do(t, http.MethodPost, "/api/v1/apply", []byte(body))
	wantStatus(t, code, resp, http.StatusRequestEntityTooLarge, "larger than 16 MiB")
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("an oversized apply changed the store: %v -> %v", before, after)
	}
}

// An apply is one store transaction, so the number of documents is bounded;
// more is the client's mistake (413), not the server's (500).
func TestApplyDocumentCountLimit(t *testing.T) {
	e := start(t)
	manifest := func(n int) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%s---\n", namespaceDoc(fmt.Sprintf("ns-%d", i)))
		}
		return []byte(b.String())
	}
	before := e.snapshot(t)
	code, body := e.do(t, http.MethodPost, "/api/v1/apply", manifest(server.MaxApplyDocuments+1))
	wantStatus(t, code, body, http.StatusRequestEntityTooLarge,
		fmt.Sprintf("has %d documents; apply at most %d", server.MaxApplyDocuments+1, server.MaxApplyDocuments))
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused apply changed the store")
	}

	res, err := e.cli.Apply(ctxT(t, 20*time.Second), manifest(server.MaxApplyDocuments), client.ApplyOptions{})
	if err != nil || len(res) != server.MaxApplyDocuments {
		t.Fatalf("apply of exactly %d documents: %d results, %v", server.MaxApplyDocuments, len(res), err)
	}
}

// A manifest well under the 16 MiB body limit, with every document under
// 1 MiB, must apply.
func TestApplySeveralLargeDocuments(t *testing.T) {
	e := start(t)
	var docs []string
	for i := range 3 {
		docs = append(docs, appDoc("", fmt.Sprintf("big-%d", i), "args: ["+strings.Repeat(`"xxxxxxxxxxxxxx", `, 50000)+`"x"]`))
	}
	if _, err := e.cli.Apply(ctxT(t, 20*time.Second), []byte(strings.Join(docs, "---\n")), client.ApplyOptions{}); err != nil {
		t.Fatalf("apply of three 900 KiB documents: %v", err)
	}
}

func TestApplyCreatesUpdatesAndReportsActions(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)

	manifest := namespaceDoc("team") + "---\n" + appDoc("team", "api", "replicas: 2")
	res, err := e.cli.Apply(ctx, []byte(manifest), client.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply Namespace+App in one file: %v", err)
	}
	want := []string{"Namespace /team created", "App team/api created"}
	if got := actions(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("results = %v, want %v", got, want)
	}
	if res[1].Revision == 0 {
		t.Errorf("result has no revision: %+v", res[1])
	}
	obj, err := e.cli.Get(ctx, apps, "team", "api")
	if err != nil {
		t.Fatalf("get applied app: %v", err)
	}
	if a := obj.(*api.App); *a.Spec.Replicas != 2 || a.Spec.Image != "nginx:1.27" || a.Metadata.UID == "" {
		t.Fatalf("stored app = %+v", a)
	}

	res, err = e.cli.Apply(ctx, []byte(manifest), client.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), []string{"Namespace /team unchanged", "App team/api unchanged"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("re-apply results = %v, want %v", got, want)
	}

	res, err = e.cli.Apply(ctx, []byte(namespaceDoc("team")+"---\n"+appDoc("team", "api", "replicas: 5")), client.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), []string{"Namespace /team unchanged", "App team/api configured"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("changed apply results = %v, want %v", got, want)
	}

	// A single JSON document works too.
	js := `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"j"},"spec":{"image":"x"}}`
	if res, err := e.cli.Apply(ctx, []byte(js), client.ApplyOptions{}); err != nil || len(res) != 1 || res[0].Namespace != "default" {
		t.Fatalf("JSON apply: %v %v", res, err)
	}
}

func actions(res []api.ApplyResult) []string {
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = fmt.Sprintf("%s %s/%s %s", r.Kind, r.Namespace, r.Name, r.Action)
	}
	return out
}

// A stream of hostile or broken manifests from several clients leaves the
// server healthy, quick, and not holding on to memory.
func TestServerSurvivesStreamOfBadInput(t *testing.T) {
	e := start(t)
	big := bigDoc("big")
	bad := []string{
		appDoc("", "web", "replicass: 3"),
		appDoc("", "web", "replicas: -1"),
		appDoc("", "Web_1"),
		appDoc("", "web", "resources:", "  memory: 128MB"),
		appDoc("nowhere", "web"),
		"apiVersion: shoal/v1\nkind: Instance\nmetadata:\n  name: i\nspec:\n  app: web\n  template:\n    image: x\n",
		"{not json",
		"\t- : :\n  ][",
		"kind: [",
		"\x00\xff\xfe",
		`{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web"},"spec":{"image":1}}`,
		billionLaughs,
		nestingBomb,
		big,
	}
	const total, workers = 300, 4
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	begin := time.Now()

	jobs := make(chan string)
	go func() {
		defer close(jobs)
		for i := range total {
			body := bad[i%len(bad)]
			// Big documents are the expensive kind: send a handful only.
			if body == big && i/len(bad) >= 5 {
				body = bad[0]
			}
			select {
			case jobs <- body:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		fails []string
		wg    sync.WaitGroup
	)
	hc := &http.Client{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/api/v1/apply", strings.NewReader(body))
				resp, err := hc.Do(req)
				mu.Lock()
				if err != nil {
					fails = append(fails, err.Error())
				} else {
					codes[resp.StatusCode]++
					var st api.Status
					if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Message == "" {
						fails = append(fails, fmt.Sprintf("%d with no Status body", resp.StatusCode))
					}
					resp.Body.Close()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(begin)
	if ctx.Err() != nil {
		t.Fatalf("sending %d bad manifests did not finish in time (%v); codes so far %v", total, took, codes)
	}
	if len(fails) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(fails), fails[0])
	}
	if codes[http.StatusUnprocessableEntity] != total {
		t.Fatalf("status codes = %v, want all %d to be 422", codes, total)
	}
	t.Logf("%d bad manifests rejected in %v", total, took)

	code, body := e.do(t, http.MethodGet, "/healthz", nil)
	if code != http.StatusOK {
		t.Fatalf("/healthz after bad input: %d %s", code, body)
	}
	gctx := ctxT(t, 10*time.Second)
	if _, err := e.cli.Apply(gctx, []byte(appDoc("", "after", "replicas: 3")), client.ApplyOptions{}); err != nil {
		t.Fatalf("good apply after bad input: %v", err)
	}
	obj, err := e.cli.Get(gctx, apps, "default", "after")
	if err != nil || *obj.(*api.App).Spec.Replicas != 3 {
		t.Fatalf("get after bad input: %v %v", obj, err)
	}
	objs, _, err := e.cli.List(gctx, apps, "", client.ListOptions{})
	if err != nil || len(objs) != 1 {
		t.Fatalf("after 300 rejected applies the store holds %d apps (%v), want only the good one", len(objs), err)
	}

	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	growth := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("heap %d MiB -> %d MiB", m0.HeapAlloc>>20, m1.HeapAlloc>>20)
	if growth > 200<<20 {
		t.Fatalf("heap grew by %d MiB over a stream of bad input", growth>>20)
	}
}

// A published port opens on every node, so two Apps cannot publish one.
func TestApplyRejectsAPortPublishedTwice(t *testing.T) {
	e := start(t)
	pub := func(name string, port int) string {
		return appDoc("", name, fmt.Sprintf("ports: [{containerPort: 8080, publish: %d}]", port))
	}
	code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(pub("a", 30080)))
	if code != http.StatusOK {
		t.Fatalf("first publish: %d %s", code, body)
	}
	code, body = e.do(t, http.MethodPost, "/api/v1/apply", []byte(pub("b", 30080)))
	if msg := wantStatus(t, code, body, http.StatusUnprocessableEntity); msg != `document 1 (App "b"): spec.ports[0].publish: port 30080 is already published by App "a" in namespace "default"` {
		t.Errorf("message %q", msg)
	}
	// Within one manifest too, and nothing of it is stored.
	before := e.snapshot(t)
	code, body = e.do(t, http.MethodPost, "/api/v1/apply", []byte(pub("c", 30081)+"---\n"+pub("d", 30081)))
	wantStatus(t, code, body, http.StatusUnprocessableEntity, `document 2 (App "d"): spec.ports[0].publish: port 30081 is also published by document 1`)
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a rejected apply stored something")
	}
	// Re-applying the owner itself is fine.
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(pub("a", 30080))); code != http.StatusOK {
		t.Fatalf("re-apply of the owner: %d %s", code, body)
	}
}

// A dry run checks and compares like an apply, says what would change, and
// stores nothing.
func TestApplyDryRun(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := e.cli.Apply(ctx, []byte(appDoc("", "web", "replicas: 3")), client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := e.cli.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatal(err)
	}

	manifest := appDoc("", "web", "replicas: 5", "env: [{name: MODE, value: fast}]") + "---\n" + appDoc("", "new")
	res, err := e.cli.Apply(ctx, []byte(manifest), client.ApplyOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got, want := actions(res), []string{"App default/web configured", "App default/new created"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("dry-run results = %v, want %v", got, want)
	}
	wantDiff := []string{`spec.env[0].name: <none> -> "MODE"`, `spec.env[0].value: <none> -> "fast"`, "spec.replicas: 3 -> 5"}
	if !reflect.DeepEqual(res[0].Diff, wantDiff) {
		t.Errorf("diff = %q, want %q", res[0].Diff, wantDiff)
	}

	after, err := e.cli.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if after.GetMeta().Revision != before.GetMeta().Revision || *after.(*api.App).Spec.Replicas != 3 {
		t.Errorf("a dry run changed the stored app: revision %d -> %d, replicas %d", before.GetMeta().Revision, after.GetMeta().Revision, *after.(*api.App).Spec.Replicas)
	}
	if _, err := e.cli.Get(ctx, apps, "default", "new"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a dry run created app new: get = %v", err)
	}
	// Bad input fails the same way as a real apply.
	if _, err := e.cli.Apply(ctx, []byte(appDoc("", "web", "replicas: -1")), client.ApplyOptions{DryRun: true}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("dry run of an invalid app: %v, want invalid", err)
	}
}

// A privileged App, or one adding a capability beyond the defaults, is
// refused (403, nothing stored) unless its namespace's policy allows it.
func TestApplyRefusesPrivilegeTheNamespaceDoesNotAllow(t *testing.T) {
	e := start(t)
	privileged := func(ns, name string) string {
		return appDoc(ns, name, "securityContext: {privileged: true}")
	}
	before := e.snapshot(t)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"privileged", privileged("", "p"),
			`document 1 (App "p"): spec.securityContext.privileged: namespace "default" does not allow privileged containers or added capabilities (set spec.policy.allowPrivileged on the Namespace)`},
		{"an added capability", appDoc("", "c", "securityContext: {capabilities: {add: [SYS_ADMIN]}}"),
			`document 1 (App "c"): spec.securityContext.capabilities.add[0] (CAP_SYS_ADMIN): namespace "default" does not allow privileged containers or added capabilities (set spec.policy.allowPrivileged on the Namespace)`},
		{"second document", appDoc("", "fine") + "---\n" + privileged("", "p"),
			`document 2 (App "p"): spec.securityContext.privileged: namespace "default"`},
	} {
		code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tc.body))
		wantStatus(t, code, body, http.StatusForbidden, tc.want)
	}
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused apply stored something")
	}
	// Dropping capabilities, or adding a default one back, needs nothing.
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(appDoc("", "d", "securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}, runAsUser: 1000, readOnlyRootFilesystem: true}"))); code != http.StatusOK {
		t.Errorf("dropping capabilities: %d %s", code, body)
	}
	// A namespace that allows it, declared in the same manifest or before.
	ops := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: ops}\nspec: {policy: {allowPrivileged: true}}\n"
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(ops+"---\n"+privileged("ops", "p"))); code != http.StatusOK {
		t.Fatalf("privileged in a namespace that allows it: %d %s", code, body)
	}
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(privileged("ops", "p2"))); code != http.StatusOK {
		t.Fatalf("privileged in a stored namespace that allows it: %d %s", code, body)
	}
	// The create endpoint applies the same policy.
	app := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "default", Name: "direct"},
		Spec: api.AppSpec{Template: api.Template{Image: "nginx", SecurityContext: &api.SecurityContext{Privileged: true}}}}
	err := e.cli.Create(ctxT(t, 10*time.Second), app)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusForbidden || !strings.Contains(ae.Message, `App "direct": spec.securityContext.privileged`) {
		t.Errorf("create of a privileged App: %v", err)
	}
}

// Host namespaces and host paths are refused (403, nothing stored) unless
// the namespace's policy allows them, path by path.
func TestApplyRefusesHostAccessTheNamespaceDoesNotAllow(t *testing.T) {
	e := start(t)
	ops := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: ops}\nspec: {policy: {allowHostNamespaces: true, allowHostPaths: [/var/log, /srv/data]}}\n"
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(ops)); code != http.StatusOK {
		t.Fatalf("namespace: %d %s", code, body)
	}
	vol := func(hostPath string) string {
		return "volumes: [{name: v, hostPath: " + hostPath + ", mountPath: /host}]"
	}
	before := e.snapshot(t)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"hostPID", appDoc("", "p", "hostPID: true"),
			`document 1 (App "p"): spec.hostPID: namespace "default" does not allow host namespaces (set spec.policy.allowHostNamespaces on the Namespace)`},
		{"hostIPC", appDoc("", "p", "hostIPC: true"), `spec.hostIPC: namespace "default" does not allow host namespaces`},
		{"a host path", appDoc("", "v", vol("/var/log")),
			`document 1 (App "v"): spec.volumes[0].hostPath: namespace "default" does not allow mounting /var/log from the node (its policy allows none; set spec.policy.allowHostPaths on the Namespace)`},
		{"a path outside the allowed ones", appDoc("ops", "v", vol("/etc")),
			`spec.volumes[0].hostPath: namespace "ops" does not allow mounting /etc from the node (its policy allows /var/log, /srv/data;`},
		{"a prefix that is not a parent", appDoc("ops", "v", vol("/var/logs")), `does not allow mounting /var/logs`},
	} {
		code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tc.body))
		wantStatus(t, code, body, http.StatusForbidden, tc.want)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"a relative host path", appDoc("ops", "v", vol("var/log")), `spec.volumes[0].hostPath: required: a clean absolute path on the node ("var/log" is not)`},
		{"a path with ..", appDoc("ops", "v", vol("/var/log/../../etc")), `spec.volumes[0].hostPath: required: a clean absolute path`},
		{"mounted over secrets", appDoc("ops", "v", "volumes: [{name: v, hostPath: /var/log, mountPath: /run/secrets/x}]"), `spec.volumes[0].mountPath: "/run/secrets/x" is mounted by shoal itself`},
		{"mounted twice", appDoc("ops", "v", "volumes: [{name: a, hostPath: /var/log, mountPath: /l}, {name: a, hostPath: /var/log, mountPath: /l}]"),
			`spec.volumes[1].name: "a" is already the name of volume 0; spec.volumes[1].mountPath: "/l" is already mounted by volume 0`},
	} {
		code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tc.body))
		wantStatus(t, code, body, http.StatusUnprocessableEntity, tc.want)
	}
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused apply stored something")
	}
	for _, body := range []string{
		appDoc("ops", "a", "hostPID: true\n  hostIPC: true"),
		appDoc("ops", "b", vol("/var/log")),
		appDoc("ops", "c", vol("/srv/data/x/y")),
	} {
		if code, msg := e.do(t, http.MethodPost, "/api/v1/apply", []byte(body)); code != http.StatusOK {
			t.Errorf("allowed host access: %d %s\n%s", code, msg, body)
		}
	}
}

// A namespace that requires signed Apps refuses unsigned, tampered,
// foreign-signed, replayed and tag-named ones (403, nothing stored) and
// takes the right ones.
func TestApplyRequiresSignaturesTheNamespaceAsksFor(t *testing.T) {
	e := start(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key := "ed25519:" + base64.StdEncoding.EncodeToString(pub)
	_, opriv, _ := ed25519.GenerateKey(rand.Reader)
	ns := &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: "prod"},
		Spec: api.NamespaceSpec{Policy: api.NamespacePolicy{RequireSignedBy: []string{key}}}}
	if err := e.cli.Create(ctxT(t, 10*time.Second), ns); err != nil {
		t.Fatal(err)
	}
	const image = "nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// app is signed for signedFor and applied in namespace "prod".
	app := func(name, img string, signer ed25519.PrivateKey, signedFor string, tamper bool) string {
		a := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "prod", Name: name},
			Spec: api.AppSpec{Template: api.Template{Image: img}}}
		if signer != nil {
			k := "ed25519:" + base64.StdEncoding.EncodeToString(signer.Public().(ed25519.PublicKey))
			a.Spec.Template.Signature = &api.Signature{Key: k, Namespace: signedFor,
				Value: base64.StdEncoding.EncodeToString(ed25519.Sign(signer, api.SignedBytes(&a.Spec.Template, signedFor)))}
		}
		if tamper {
			a.Spec.Template.Image = "nginx:evil"
		}
		b, _ := json.Marshal(a)
		return string(b)
	}
	before := e.snapshot(t)
	for _, tc := range []struct{ name, body, want string }{
		{"unsigned", app("a", image, nil, "", false), `document 1 (App "a"): spec.signature: not signed`},
		{"tampered", app("b", image, priv, "prod", true), `document 1 (App "b"): spec.signature: signature does not match spec (namespace "prod")`},
		{"another key", app("c", image, opriv, "prod", false), `document 1 (App "c"): spec.signature: signed by`},
		{"signed for another namespace", app("f", image, priv, "default", false), `document 1 (App "f"): spec.signature: signed for namespace "default", not "prod"`},
		{"an image named by tag", app("g", "nginx:1.27", priv, "prod", false), `document 1 (App "g"): spec.image: "nginx:1.27" names a tag`},
	} {
		code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tc.body))
		wantStatus(t, code, body, http.StatusForbidden, tc.want)
	}
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused apply stored something")
	}
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(app("d", image, priv, "prod", false))); code != http.StatusOK {
		t.Fatalf("a signed App: %d %s", code, body)
	}
	// In a namespace without the policy a signature is still checked,
	// for the namespace it is in.
	code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(strings.Replace(app("e", image, priv, "prod", true), `"namespace":"prod"`, `"namespace":"default"`, 1)))
	wantStatus(t, code, body, http.StatusForbidden, `spec.signature: signed for namespace "prod", not "default"`)
	code, body = e.do(t, http.MethodPost, "/api/v1/apply", []byte(strings.Replace(app("h", image, priv, "default", false), `"namespace":"prod"`, `"namespace":"default"`, 1)))
	if code != http.StatusOK {
		t.Errorf("an App signed for default, in default: %d %s", code, body)
	}
}
