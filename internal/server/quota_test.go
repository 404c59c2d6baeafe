package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestQuotaRefusesWhatWouldExceedIt: a deployer past its namespace's
// objects quota or cpu quota gets a 403 that names the quota, what is
// used and what to do, on apply, create and scale, and nothing of the
// refused write is stored; viewers read the same figures.
func TestQuotaRefusesWhatWouldExceedIt(t *testing.T) {
	e := startTLS(t)
	ns := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: web}\nspec: {quota: {objects: 2, cpu: \"1\"}}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", ns); code != http.StatusOK {
		t.Fatalf("namespace: %d %s", code, msg)
	}
	dee := e.user(t, "dee", api.RoleBinding{Role: api.RoleDeployer, Namespace: "web"})
	vic := e.user(t, "vic", api.RoleBinding{Role: api.RoleViewer, Namespace: "web"})
	app := func(name string, replicas int) string {
		return "apiVersion: shoal/v1\nkind: App\nmetadata: {name: " + name + ", namespace: web}\nspec: {image: nginx, resources: {cpu: 250m}, replicas: " + itoa(replicas) + "}\n"
	}
	apply := func(doc string) (int, string) { return call(t, dee, http.MethodPost, e.url+"/api/v1/apply", doc) }
	stored := func(path string) bool {
		code, _ := call(t, e.admin, http.MethodGet, e.url+path, nil)
		return code == http.StatusOK
	}

	if code, msg := apply(app("a", 2)); code != http.StatusOK {
		t.Fatalf("a (500m of 1): %d %s", code, msg)
	}
	// cpu: 500m used, 4 × 250m more would be 1500m.
	code, msg := apply(app("b", 4))
	for _, want := range []string{`App "b"`, `namespace "web" would use 1500m requested CPU, past its quota of 1`, "spec.quota.cpu", "500m used now", "shoal get quota -n web"} {
		if code != http.StatusForbidden || !strings.Contains(msg, want) {
			t.Errorf("apply b × 4: %d %s; want 403 containing %q", code, msg, want)
		}
	}
	if stored("/api/v1/namespaces/web/apps/b") {
		t.Errorf("the refused App b is stored")
	}
	if code, msg := apply(app("b", 1)); code != http.StatusOK {
		t.Fatalf("b × 1 (750m of 1): %d %s", code, msg)
	}
	// objects: 2 of 2 used.
	secret := &api.Secret{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindSecret}, Metadata: api.ObjectMeta{Namespace: "web", Name: "s"},
		Spec: api.SecretSpec{Data: map[string]string{"k": "v"}}}
	code, msg = call(t, dee, http.MethodPost, e.url+"/api/v1/namespaces/web/secrets", secret)
	if code != http.StatusForbidden || !strings.Contains(msg, `would use 3 objects (Apps, Jobs and Secrets), past its quota of 2 (spec.quota.objects; 2 used now)`) {
		t.Errorf("create secret: %d %s; want 403 for the objects quota", code, msg)
	}
	if stored("/api/v1/namespaces/web/secrets/s") {
		t.Errorf("the refused Secret is stored")
	}
	// An update replaces what it updates: it adds no object.
	if code, msg := apply(app("b", 1) + "---\n" + app("a", 1)); code != http.StatusOK {
		t.Fatalf("re-apply a and b: %d %s", code, msg)
	}
	// scale: a at 3 is 750m + b's 250m = 1 (allowed); 4 is past it.
	if code, msg := call(t, dee, http.MethodPut, e.url+"/api/v1/namespaces/web/apps/a/scale", `{"replicas": 3}`); code != http.StatusOK {
		t.Fatalf("scale a to 3: %d %s", code, msg)
	}
	code, msg = call(t, dee, http.MethodPut, e.url+"/api/v1/namespaces/web/apps/a/scale", `{"replicas": 4}`)
	if code != http.StatusForbidden || !strings.Contains(msg, `would use 1250m requested CPU, past its quota of 1`) {
		t.Errorf("scale a to 4: %d %s; want 403 for the cpu quota", code, msg)
	}
	var a api.App
	_, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/web/apps/a", nil)
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Spec.Replicas == nil || *a.Spec.Replicas != 3 {
		t.Errorf("after the refused scale, a is %s; want 3 replicas", body)
	}
	// Lowering a quota below what is used refuses growth, not shrinking.
	lower := strings.Replace(ns, `cpu: "1"`, `cpu: 500m`, 1)
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", lower); code != http.StatusOK {
		t.Fatalf("lower the quota: %d %s", code, msg)
	}
	if code, msg := call(t, dee, http.MethodPut, e.url+"/api/v1/namespaces/web/apps/a/scale", `{"replicas": 2}`); code != http.StatusOK {
		t.Errorf("scale a down under a lowered quota: %d %s; want 200", code, msg)
	}

	// Anyone who reads the namespace reads its figures.
	code, body = call(t, vic, http.MethodGet, e.url+"/api/v1/namespaces/web/quota", nil)
	var q api.QuotaUsage
	if code != http.StatusOK || json.Unmarshal([]byte(body), &q) != nil {
		t.Fatalf("viewer GET quota: %d %s", code, body)
	}
	want := api.QuotaAmounts{Objects: 2, Instances: 3, MilliCPU: 750}
	if q.Used.Objects != want.Objects || q.Used.Instances != want.Instances || q.Used.MilliCPU != want.MilliCPU || q.Used.Bytes <= 0 ||
		q.Limit.Objects != 2 || q.Limit.MilliCPU != 500 || q.Limit.Instances != api.DefaultQuotaInstances || q.Limit.Bytes != api.DefaultQuotaBytes {
		t.Errorf("quota = %+v; want used %+v (and some bytes), limits objects 2, cpu 500m and the defaults", q, want)
	}
	if code, _ := call(t, vic, http.MethodGet, e.url+"/api/v1/namespaces/nothere/quota", nil); code != http.StatusNotFound {
		t.Errorf("quota of a missing namespace: %d; want 404", code)
	}
}

// TestEventTooLargeIsRefused: a node's Event about its own Node with a
// long message is a 422, and is not stored.
func TestEventTooLargeIsRefused(t *testing.T) {
	e := startTLS(t)
	n1, code, msg := e.join(t, "n1", e.token(t, api.TokenRoleAgent, time.Hour).String())
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, msg)
	}
	ev := &api.Event{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent}, Metadata: api.ObjectMeta{Namespace: "default", Name: "n1.big"},
		Object: "Node/n1", Type: "Warning", Reason: "Big", Message: strings.Repeat("x", 2048), Time: time.Now().UTC()}
	code, msg = call(t, n1, http.MethodPost, e.url+"/api/v1/namespaces/default/events", ev)
	if code != http.StatusUnprocessableEntity || !strings.Contains(msg, "message: 2048 bytes; an event's message holds at most 1024") {
		t.Errorf("create a 2 KiB event: %d %s; want 422 naming the message's size", code, msg)
	}
	if code, _ := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/default/events/n1.big", nil); code != http.StatusNotFound {
		t.Errorf("the refused event: GET %d; want 404", code)
	}
	ev.Message = "fits"
	if code, msg := call(t, n1, http.MethodPost, e.url+"/api/v1/namespaces/default/events", ev); code != http.StatusCreated {
		t.Errorf("create a small event: %d %s; want 201", code, msg)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestQuotaHoldsUnderConcurrentWrites: writes checked against a quota at
// the same moment cannot all be stored past it: the quota's guard lets
// one through and checks the others again against what it stored.
func TestQuotaHoldsUnderConcurrentWrites(t *testing.T) {
	e := startTLS(t)
	ns := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: web}\nspec: {quota: {objects: 3}}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", ns); code != http.StatusOK {
		t.Fatalf("namespace: %d %s", code, msg)
	}
	var users []*http.Client
	for _, name := range []string{"dee", "dan", "dot", "dax"} {
		users = append(users, e.user(t, name, api.RoleBinding{Role: api.RoleDeployer, Namespace: "web"}))
	}
	const writers = 12
	codes := make(chan int, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := "a" + itoa(i)
			doc := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: " + name + ", namespace: web}\nspec: {image: nginx}\n"
			code, msg := call(t, users[i%len(users)], http.MethodPost, e.url+"/api/v1/apply", doc)
			if code != http.StatusOK && code != http.StatusForbidden {
				t.Errorf("apply %s: %d %s", name, code, msg)
			}
			codes <- code
		}()
	}
	close(start)
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == http.StatusOK {
			ok++
		}
	}
	var list struct{ Items []json.RawMessage }
	_, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/web/apps", nil)
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if ok != 3 || len(list.Items) != 3 {
		t.Errorf("%d concurrent applies of one object each under a quota of 3 objects: %d accepted, %d stored; want 3 and 3", writers, ok, len(list.Items))
	}
}

// TestQuotaHoldsUnderConcurrentScales: scales checked at the same moment
// take the quota's guard as applies do.
func TestQuotaHoldsUnderConcurrentScales(t *testing.T) {
	e := startTLS(t)
	doc := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: web}\nspec: {quota: {cpu: \"1\"}}\n"
	const apps = 8
	for i := range apps {
		doc += "---\napiVersion: shoal/v1\nkind: App\nmetadata: {name: a" + itoa(i) + ", namespace: web}\nspec: {image: nginx, resources: {cpu: 500m}, replicas: 0}\n"
	}
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", doc); code != http.StatusOK {
		t.Fatalf("seed: %d %s", code, msg)
	}
	dee := e.user(t, "dee", api.RoleBinding{Role: api.RoleDeployer, Namespace: "web"})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, msg := call(t, dee, http.MethodPut, e.url+"/api/v1/namespaces/web/apps/a"+itoa(i)+"/scale", `{"replicas": 1}`)
			if code != http.StatusOK && code != http.StatusForbidden {
				t.Errorf("scale a%d: %d %s", i, code, msg)
			}
		}()
	}
	close(start)
	wg.Wait()
	scaled := 0
	for i := range apps {
		var a api.App
		_, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/namespaces/web/apps/a"+itoa(i), nil)
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatal(err)
		}
		if a.Spec.Replicas != nil && *a.Spec.Replicas == 1 {
			scaled++
		}
	}
	if scaled != 2 {
		t.Errorf("%d concurrent scales of 500m Apps under a 1 CPU quota: %d stored; want 2", apps, scaled)
	}
}
