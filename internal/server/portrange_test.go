package server_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// Published ports and hostPorts must be inside the cluster's publish range:
// otherwise any deployer could publish 22 or the API's port and have every
// node hand its SSH or API to their container.
func TestPortsOutsideTheClusterRangeAreRefused(t *testing.T) {
	e := start(t)
	outside := "(set by the cluster admin with --port-range); choose a port in the range"
	job := "apiVersion: shoal/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  image: busybox\n  restartPolicy: Never\n  ports: [{containerPort: 80, hostPort: 8080}]\n"
	published := func(name string, port int32) string {
		a := newApp("default", name, 1)
		a.Spec.Ports = []api.Port{{ContainerPort: 80, Publish: port}}
		return string(mustJSON(t, a))
	}
	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"apply, publish 22", http.MethodPost, "/api/v1/apply", appDoc("", "ssh", "ports: [{containerPort: 22, publish: 22}]"),
			`document 1 (App "ssh"): spec.ports[0].publish: 22 is outside the cluster's publish range 30000-32767 ` + outside},
		{"apply, the second document's hostPort", http.MethodPost, "/api/v1/apply",
			appDoc("", "fine", "ports: [{containerPort: 80, publish: 30081}]") + "---\n" + appDoc("", "api", "ports: [{containerPort: 80, hostPort: 7070}]"),
			`document 2 (App "api"): spec.ports[0].hostPort: 7070 is outside the cluster's publish range 30000-32767 ` + outside},
		{"apply, a Job's hostPort", http.MethodPost, "/api/v1/apply", job,
			`document 1 (Job "once"): spec.ports[0].hostPort: 8080 is outside the cluster's publish range 30000-32767 ` + outside},
		{"create", http.MethodPost, "/api/v1/namespaces/default/apps", published("web", 18081),
			`App "web": spec.ports[0].publish: 18081 is outside the cluster's publish range 30000-32767 ` + outside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			code, body := e.do(t, tt.method, tt.path, []byte(tt.body))
			if msg := wantStatus(t, code, body, http.StatusUnprocessableEntity); msg != tt.want {
				t.Errorf("message\n got %q\nwant %q", msg, tt.want)
			}
			if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused write stored something:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	// An update is checked too.
	code, body := e.do(t, http.MethodPost, "/api/v1/namespaces/default/apps", []byte(published("web", 30080)))
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("create with publish 30080: %d %s", code, body)
	}
	ctx := ctxT(t, 10*time.Second)
	obj, err := e.cli.Get(ctx, apps, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	app := obj.(*api.App)
	app.Spec.Ports[0].Publish = 443
	err = e.cli.Update(ctx, app)
	if want := "spec.ports[0].publish: 443 is outside the cluster's publish range 30000-32767"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("update to publish 443: got %v, want an error with %q", err, want)
	}
}

// The range lives in the store: the first server stores its own, a later
// one without --port-range keeps it, and one given --port-range changes it
// for every server, which admit by the stored range at once.
func TestClusterPortRangeIsStored(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 20*time.Second)
	first, changed, err := e.store.InitPortRange(ctx, api.PortRange{Min: 20000, Max: 20999}, false)
	if err != nil || first != (api.PortRange{Min: 20000, Max: 20999}) || changed {
		t.Fatalf("first server: %v changed %v, %v; want 20000-20999 stored", first, changed, err)
	}
	second, changed, err := e.store.InitPortRange(ctx, api.DefaultPortRange, false)
	if err != nil || second != first || changed {
		t.Fatalf("a server without --port-range: %v changed %v, %v; want the stored 20000-20999 kept", second, changed, err)
	}
	code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(appDoc("", "a", "ports: [{containerPort: 80, publish: 30080}]")))
	wantStatus(t, code, body, http.StatusUnprocessableEntity, "spec.ports[0].publish: 30080 is outside the cluster's publish range 20000-20999")
	if code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(appDoc("", "a", "ports: [{containerPort: 80, publish: 20080}]"))); code != http.StatusOK {
		t.Fatalf("publish 20080 inside the stored range: %d %s", code, body)
	}

	third, changed, err := e.store.InitPortRange(ctx, api.DefaultPortRange, true)
	if err != nil || third != api.DefaultPortRange || !changed {
		t.Fatalf("a server given --port-range 30000-32767: %v changed %v, %v; want it stored", third, changed, err)
	}
	code, body = e.do(t, http.MethodPost, "/api/v1/apply", []byte(appDoc("", "b", "ports: [{containerPort: 80, publish: 20081}]")))
	wantStatus(t, code, body, http.StatusUnprocessableEntity, "20081 is outside the cluster's publish range 30000-32767")
}
