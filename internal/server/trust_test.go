package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

// trustRig is a cluster of two joined nodes, a namespace "web" whose
// policy allows nothing privileged, an App in it, one Instance on each
// node, and a client for every identity of the trust model.
type trustRig struct {
	*tlsEnv
	as map[string]*http.Client
}

// identities, in the order the matrix runs them (the server last: what it
// may do changes the store).
var identities = []string{"viewer", "deployer", "namespace admin", "cluster-admin", "node n1", "server"}

func newTrustRig(t *testing.T) *trustRig {
	t.Helper()
	e := startTLS(t)
	r := &trustRig{tlsEnv: e, as: map[string]*http.Client{}}
	for _, n := range []string{"n1", "n2"} {
		hc, code, msg := e.join(t, n, e.token(t, api.TokenRoleAgent, time.Hour).String())
		if code != http.StatusOK {
			t.Fatalf("join %s: %d %s", n, code, msg)
		}
		r.as["node "+n] = hc
	}
	seed := "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: web}\n---\n" +
		"apiVersion: shoal/v1\nkind: App\nmetadata: {name: a, namespace: web}\nspec: {image: nginx, ports: [{name: http, containerPort: 80}]}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", seed); code != http.StatusOK {
		t.Fatalf("seed: %d %s", code, msg)
	}
	for _, in := range []struct{ name, node string }{{"a-1", "n1"}, {"a-2", "n2"}} {
		obj := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Namespace: "web", Name: in.name},
			Spec: api.InstanceSpec{App: "a", Node: in.node, Template: api.Template{Image: "nginx"}}}
		if err := e.st.Create(ctxT(t, 5*time.Second), obj); err != nil {
			t.Fatal(err)
		}
	}
	in := func(role api.Role) api.RoleBinding { return api.RoleBinding{Role: role, Namespace: "web"} }
	r.as["viewer"] = e.user(t, "vic", in(api.RoleViewer))
	r.as["deployer"] = e.user(t, "dee", in(api.RoleDeployer))
	r.as["namespace admin"] = e.user(t, "ada", in(api.RoleAdmin))
	r.as["cluster-admin"] = e.admin
	r.as["server"] = e.clientAs(issue(t, e.ca, "server:other", []string{pki.GroupServers}, nil, time.Hour))
	return r
}

// get reads an object as the cluster-admin.
func (r *trustRig) get(t *testing.T, path string, into any) {
	t.Helper()
	code, body := call(t, r.admin, http.MethodGet, r.url+path, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), into); err != nil {
		t.Fatal(err)
	}
}

func privilegedApp(name string) *api.App {
	return &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "web", Name: name},
		Spec: api.AppSpec{Template: api.Template{Image: "nginx", SecurityContext: &api.SecurityContext{Privileged: true}}}}
}

// TestTrustMatrix: every write path (apply, create, update, status) for
// every identity, each with what would reach past that identity: a
// privileged template, a hand-made Instance on a chosen node, a forged
// status, a node's own spec, an Event by hand. 0 means allowed (2xx);
// anything else is the one status code expected. After the matrix, nothing
// refused is in the store.
func TestTrustMatrix(t *testing.T) {
	r := newTrustRig(t)
	const (
		ok        = 0
		forbidden = http.StatusForbidden
		invalid   = http.StatusUnprocessableEntity
	)
	all := func(code int) map[string]int {
		m := map[string]int{}
		for _, id := range identities {
			m[id] = code
		}
		return m
	}
	except := func(m map[string]int, id string, code int) map[string]int { m[id] = code; return m }
	appWithRevision := func(mut func(*api.App)) func() any {
		return func() any {
			var a api.App
			r.get(t, "/api/v1/namespaces/web/apps/a", &a)
			mut(&a)
			return &a
		}
	}
	evil := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Namespace: "web", Name: "evil"},
		Spec: api.InstanceSpec{App: "a", Node: "n2", Template: api.Template{Image: "nginx", SecurityContext: &api.SecurityContext{Privileged: true},
			HostPID: true, Volumes: []api.Volume{{Name: "root", HostPath: "/", MountPath: "/host"}}}}}
	forgedStatus := func() any {
		var a api.App
		r.get(t, "/api/v1/namespaces/web/apps/a", &a)
		a.Status.ServiceIP, a.Status.LastGoodRevision = "169.254.169.254", 1
		a.Status.History = []api.RevisionRecord{{Revision: 1, Template: privilegedApp("x").Spec.Template}}
		return &a
	}
	event := func(object string) func() any {
		return func() any {
			return &api.Event{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent}, Metadata: api.ObjectMeta{Namespace: "web", Name: "ev-" + strings.ToLower(strings.NewReplacer("/", "-").Replace(object))},
				Object: object, Type: "Normal", Reason: "Forged", Message: "m", Time: time.Now().UTC(), Source: "controller"}
		}
	}
	privilegedDoc := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: p, namespace: web}\nspec: {image: nginx, securityContext: {privileged: true}}\n"
	instanceDoc := "apiVersion: shoal/v1\nkind: Instance\nmetadata: {name: evil2, namespace: web}\nspec: {app: a, node: n2, template: {image: nginx}}\n"

	for _, tc := range []struct {
		name, method, path string
		body               func() any
		want               map[string]int
	}{
		// A namespace's policy holds for everyone, servers too: nothing
		// reaches past it by any path.
		{"apply a privileged App", "POST", "/api/v1/apply", func() any { return privilegedDoc }, all(forbidden)},
		{"create a privileged App", "POST", "/api/v1/namespaces/web/apps", func() any { return privilegedApp("p") }, all(forbidden)},
		{"update an App to privileged", "PUT", "/api/v1/namespaces/web/apps/a", appWithRevision(func(a *api.App) {
			a.Spec.SecurityContext = &api.SecurityContext{Privileged: true}
		}), all(forbidden)},
		{"update an App to hostPID", "PUT", "/api/v1/namespaces/web/apps/a", appWithRevision(func(a *api.App) { a.Spec.HostPID = true }), all(forbidden)},
		// Only servers make Instances.
		{"create a privileged Instance on a chosen node", "POST", "/api/v1/namespaces/web/instances", func() any { return evil },
			except(all(forbidden), "server", ok)},
		{"apply an Instance", "POST", "/api/v1/apply", func() any { return instanceDoc }, except(all(invalid), "node n1", forbidden)},
		{"update another's Instance", "PUT", "/api/v1/namespaces/web/instances/a-2", func() any {
			var in api.Instance
			r.get(t, "/api/v1/namespaces/web/instances/a-2", &in)
			in.Spec.Template.Args = []string{"--by-hand"}
			return &in
		}, except(all(forbidden), "server", ok)},
		// Status: servers, and nodes for their own objects.
		{"write an App's status", "PUT", "/api/v1/namespaces/web/apps/a/status", forgedStatus, except(all(forbidden), "server", ok)},
		{"write the status of an Instance on n2", "PUT", "/api/v1/namespaces/web/instances/a-2/status", func() any {
			var in api.Instance
			r.get(t, "/api/v1/namespaces/web/instances/a-2", &in)
			in.Status.IP = "10.0.0.1"
			return &in
		}, except(all(forbidden), "server", ok)},
		{"write the status of an Instance on n1", "PUT", "/api/v1/namespaces/web/instances/a-1/status", func() any {
			var in api.Instance
			r.get(t, "/api/v1/namespaces/web/instances/a-1", &in)
			in.Status.Phase = api.PhaseRunning
			return &in
		}, except(except(all(forbidden), "server", ok), "node n1", ok)},
		// A node's spec is the cluster's.
		{"uncordon and relabel node n1", "PUT", "/api/v1/nodes/n1", func() any {
			var n api.Node
			r.get(t, "/api/v1/nodes/n1", &n)
			n.Spec.Unschedulable = false
			n.Metadata.Labels = map[string]string{"tier": "trusted"}
			return &n
		}, except(except(all(forbidden), "cluster-admin", ok), "server", ok)},
		// Events: by servers, and by nodes about their own objects.
		{"record an event about an Instance on n2", "POST", "/api/v1/namespaces/web/events", event("Instance/a-2"), except(all(forbidden), "server", ok)},
		{"record an event about App a", "POST", "/api/v1/namespaces/web/events", event("App/a"), except(all(forbidden), "server", ok)},
	} {
		for _, id := range identities {
			code, msg := call(t, r.as[id], tc.method, r.url+tc.path, tc.body())
			want := tc.want[id]
			switch {
			case want == ok && (code < 200 || code > 299):
				t.Errorf("%s: %s: %d %s, want it allowed", id, tc.name, code, msg)
			case want != ok && code != want:
				t.Errorf("%s: %s: %d %s, want %d", id, tc.name, code, msg, want)
			case code == forbidden && !strings.Contains(msg, "may not") && !strings.Contains(msg, "does not allow"):
				t.Errorf("%s: %s: the 403 %q does not say what was refused", id, tc.name, msg)
			}
		}
	}

	// Nothing refused was stored.
	var a api.App
	r.get(t, "/api/v1/namespaces/web/apps/a", &a)
	if a.Spec.SecurityContext != nil || a.Spec.HostPID {
		t.Errorf("a refused update was stored: %+v", a.Spec.Template)
	}
	for _, path := range []string{"/api/v1/namespaces/web/apps/p", "/api/v1/namespaces/web/instances/evil2"} {
		if code, _ := call(t, r.admin, http.MethodGet, r.url+path, nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404: a refused write was stored", path, code)
		}
	}
	var n api.Node
	r.get(t, "/api/v1/nodes/n1", &n)
	if n.Metadata.Labels["tier"] != "trusted" {
		t.Errorf("the cluster-admin's relabel of n1 was lost: %v", n.Metadata.Labels)
	}
}

// TestClientsCannotWriteStatus: what a user sends outside spec and
// metadata is dropped, on apply, create and update alike. A forged
// status.history with a lastGoodRevision would have the controller's
// automatic rollback write a template nobody admitted; a forged serviceIP
// would have every node DNAT that address to the deployer's container.
func TestClientsCannotWriteStatus(t *testing.T) {
	r := newTrustRig(t)
	dee := r.as["deployer"]
	forged := api.AppStatus{ServiceIP: "169.254.169.254", LastGoodRevision: 1, Revision: 7,
		History: []api.RevisionRecord{{Revision: 1, Template: privilegedApp("x").Spec.Template}}}
	check := func(how, name string) {
		t.Helper()
		var a api.App
		r.get(t, "/api/v1/namespaces/web/apps/"+name, &a)
		if a.Status.ServiceIP != "" || a.Status.LastGoodRevision != 0 || len(a.Status.History) != 0 || a.Status.Revision != 0 {
			t.Errorf("%s: the client's status was stored: %+v", how, a.Status)
		}
		if !a.Metadata.DeletedAt.IsZero() || a.Metadata.UID == "forged" {
			t.Errorf("%s: the client's metadata was stored: %+v", how, a.Metadata)
		}
	}
	// create
	app := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp},
		Metadata: api.ObjectMeta{Namespace: "web", Name: "c", UID: "forged", DeletedAt: time.Now().UTC()},
		Spec:     api.AppSpec{Template: api.Template{Image: "nginx"}}, Status: forged}
	if code, msg := call(t, dee, http.MethodPost, r.url+"/api/v1/namespaces/web/apps", app); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, msg)
	}
	check("create", "c")
	// apply, as JSON with a status (a manifest is JSON or YAML)
	app.Metadata.Name = "d"
	doc, _ := json.Marshal(app)
	if code, msg := call(t, dee, http.MethodPost, r.url+"/api/v1/apply", string(doc)); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, msg)
	}
	check("apply", "d")
	// update: the stored status stays, whatever the body says
	var cur api.App
	r.get(t, "/api/v1/namespaces/web/apps/c", &cur)
	cur.Status = forged
	if code, msg := call(t, dee, http.MethodPut, r.url+"/api/v1/namespaces/web/apps/c", &cur); code != http.StatusOK {
		t.Fatalf("update: %d %s", code, msg)
	}
	check("update", "c")
}

// TestNodesSpeakOnlyForThemselves: a node's heartbeat counts only for
// what runs on it; its events concern its own objects and carry its name;
// it activates only an App that waits at zero with a port.
func TestNodesSpeakOnlyForThemselves(t *testing.T) {
	r := newTrustRig(t)
	n1 := r.as["node n1"]
	// Another App, with its only instance on n2.
	doc := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: b, namespace: web}\nspec: {image: nginx, ports: [{name: http, containerPort: 80}]}\n"
	if code, msg := call(t, r.admin, http.MethodPost, r.url+"/api/v1/apply", doc); code != http.StatusOK {
		t.Fatalf("apply b: %d %s", code, msg)
	}
	b1 := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Namespace: "web", Name: "b-1"},
		Spec: api.InstanceSpec{App: "b", Node: "n2", Template: api.Template{Image: "nginx"}}}
	if err := r.st.Create(ctxT(t, 5*time.Second), b1); err != nil {
		t.Fatal(err)
	}
	var node api.Node
	r.get(t, "/api/v1/nodes/n1", &node)
	node.Status = api.NodeStatus{Ready: true, LastHeartbeat: time.Now().UTC(),
		Usage: []api.InstanceUsage{
			{Namespace: "web", Instance: "a-1", App: "a", MilliCPU: 100},
			{Namespace: "web", Instance: "a-2", App: "a", MilliCPU: 900000}, // on n2
			{Namespace: "web", Instance: "a-1", App: "b", MilliCPU: 900000}, // a-1 is not b's
		},
		Traffic: []api.AppTraffic{
			{Namespace: "web", App: "a", RequestsPerSecond: 5},
			{Namespace: "web", App: "b", RequestsPerSecond: 1e6}, // b runs only on n2
		}}
	// The cache may not hold the instances yet: wait until the figures
	// are judged by what it holds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, msg := call(t, n1, http.MethodPut, r.url+"/api/v1/nodes/n1/status", &node); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, msg)
		}
		var got api.Node
		r.get(t, "/api/v1/nodes/n1", &got)
		u, tr := got.Status.Usage, got.Status.Traffic
		if len(u) == 1 && u[0].Instance == "a-1" && u[0].App == "a" && len(tr) == 1 && tr[0].App == "a" && got.Status.Used.MilliCPU == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1's figures for others were kept: usage %+v traffic %+v used %+v", u, tr, got.Status.Used)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Events: its own instance, under its own name whatever it says.
	ev := &api.Event{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindEvent}, Metadata: api.ObjectMeta{Namespace: "web", Name: "own"},
		Object: "Instance/a-1", Type: "Normal", Reason: "Started", Message: "m", Time: time.Now().UTC(), Source: "controller"}
	if code, msg := call(t, n1, http.MethodPost, r.url+"/api/v1/namespaces/web/events", ev); code != http.StatusCreated {
		t.Fatalf("an event about its own instance: %d %s", code, msg)
	}
	obj, err := r.st.Get(ctxT(t, 5*time.Second), api.MustKind(api.KindEvent), "web", "own")
	if err != nil {
		t.Fatal(err)
	}
	if src := obj.(*api.Event).Source; src != "agent/n1" {
		t.Errorf("event source %q, want agent/n1", src)
	}
	for _, object := range []string{"Instance/a-2", "Node/n2", "App/a", "Instance/nothere"} {
		ev.Metadata.Name, ev.Object = "x-"+strings.ToLower(strings.ReplaceAll(object, "/", "-")), object
		if code, msg := call(t, n1, http.MethodPost, r.url+"/api/v1/namespaces/web/events", ev); code != http.StatusForbidden || !strings.Contains(msg, `node "n1" may not record an event`) {
			t.Errorf("an event about %s: %d %s, want 403", object, code, msg)
		}
	}

	// Activation: only an App at zero that scales to zero and has a port.
	for _, tc := range []struct{ name, doc string }{
		{"running", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: up, namespace: web}\nspec: {image: nginx, replicas: 2, ports: [{name: http, containerPort: 80}]}\n"},
		{"no port", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: worker, namespace: web}\nspec: {image: nginx, replicas: 0, resources: {cpu: 100m, memory: 32Mi}, autoscale: {min: 0, max: 5, targetCPUPercent: 50}}\n"},
	} {
		if code, msg := call(t, r.admin, http.MethodPost, r.url+"/api/v1/apply", tc.doc); code != http.StatusOK {
			t.Fatalf("apply %s: %d %s", tc.name, code, msg)
		}
	}
	for _, name := range []string{"up", "worker", "b"} {
		code, msg := call(t, n1, http.MethodPost, r.url+"/api/v1/namespaces/web/apps/"+name+"/activate", nil)
		if code != http.StatusForbidden || !strings.Contains(msg, "may not activate") {
			t.Errorf("n1 activating %s: %d %s, want 403", name, code, msg)
		}
	}
	zero := "apiVersion: shoal/v1\nkind: App\nmetadata: {name: zero, namespace: web}\nspec: {image: nginx, replicas: 0, resources: {cpu: 100m, memory: 32Mi}, ports: [{name: http, containerPort: 80}], autoscale: {min: 0, max: 3, targetCPUPercent: 50}}\n"
	if code, msg := call(t, r.admin, http.MethodPost, r.url+"/api/v1/apply", zero); code != http.StatusOK {
		t.Fatalf("apply zero: %d %s", code, msg)
	}
	if code, msg := call(t, n1, http.MethodPost, r.url+"/api/v1/namespaces/web/apps/zero/activate", nil); code != http.StatusOK {
		t.Errorf("n1 activating an App at zero: %d %s", code, msg)
	}
}

// TestControllerWritesPassAdmission: the admission list the controllers
// call (Server.Admit) refuses a privileged template in a namespace that
// does not allow it, as an apply would, and admits a plain one.
func TestControllerWritesPassAdmission(t *testing.T) {
	r := newTrustRig(t)
	ctx := ctxT(t, 5*time.Second)
	err := r.srv.Admit(ctx, privilegedApp("a"))
	if err == nil || !strings.Contains(err.Error(), `spec.securityContext.privileged: namespace "web" does not allow privileged containers`) {
		t.Errorf("Admit(privileged) = %v", err)
	}
	plain := privilegedApp("a")
	plain.Spec.SecurityContext = nil
	if err := r.srv.Admit(ctx, plain); err != nil {
		t.Errorf("Admit(plain) = %v", err)
	}
}

// TestNodeSubnetsAndKeysOnEveryPath: the subnet and WireGuard key rules
// hold on the API's write paths, not only at join: an update may not give
// a node half of another's /24 or change a set subnet, and a status may
// not publish another node's key.
func TestNodeSubnetsAndKeysOnEveryPath(t *testing.T) {
	r := newTrustRig(t)
	setSubnet := func(node, subnet string) (int, string) {
		var n api.Node
		r.get(t, "/api/v1/nodes/"+node, &n)
		n.Spec.Subnet = subnet
		return call(t, r.admin, http.MethodPut, r.url+"/api/v1/nodes/"+node, &n)
	}
	if code, msg := setSubnet("n1", "10.244.1.0/24"); code != http.StatusOK {
		t.Fatalf("n1's subnet: %d %s", code, msg)
	}
	if code, msg := setSubnet("n2", "10.244.1.128/25"); code != http.StatusUnprocessableEntity || !strings.Contains(msg, "overlaps node n1's subnet 10.244.1.0/24") {
		t.Errorf("n2 taking half of n1's /24: %d %s, want 422 naming n1", code, msg)
	}
	if code, msg := setSubnet("n1", "10.244.2.0/24"); code != http.StatusUnprocessableEntity || !strings.Contains(msg, "spec.subnet") {
		t.Errorf("changing n1's subnet: %d %s, want 422", code, msg)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	beat := func(node string) (int, string) {
		var n api.Node
		r.get(t, "/api/v1/nodes/"+node, &n)
		n.Status = api.NodeStatus{Ready: true, LastHeartbeat: time.Now().UTC(), Overlay: &api.NodeOverlay{PublicKey: key, Endpoint: "192.0.2.1:51820"}}
		return call(t, r.as["node "+node], http.MethodPut, r.url+"/api/v1/nodes/"+node+"/status", &n)
	}
	if code, msg := beat("n1"); code != http.StatusOK {
		t.Fatalf("n1 publishing its key: %d %s", code, msg)
	}
	if code, msg := beat("n2"); code != http.StatusUnprocessableEntity || !strings.Contains(msg, "node n1 already publishes WireGuard key") {
		t.Errorf("n2 publishing n1's key: %d %s, want 422", code, msg)
	}
}

// TestNodeCannotGrowItsCapacity: what a node reports at its join is the
// most placement offers it; reporting a larger machine later changes
// nothing until a cluster-admin raises the cap (which the node may not).
func TestNodeCannotGrowItsCapacity(t *testing.T) {
	r := newTrustRig(t)
	n1 := r.as["node n1"]
	heartbeat := func(cpu int64) {
		t.Helper()
		var node api.Node
		r.get(t, "/api/v1/nodes/n1", &node)
		node.Status = api.NodeStatus{Ready: true, LastHeartbeat: time.Now().UTC(),
			Capacity: api.NodeResources{MilliCPU: cpu, MemoryBytes: 4 << 30}}
		if code, msg := call(t, n1, http.MethodPut, r.url+"/api/v1/nodes/n1/status", &node); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, msg)
		}
	}
	allocatable := func() api.NodeResources {
		var node api.Node
		r.get(t, "/api/v1/nodes/n1", &node)
		return node.Allocatable()
	}
	heartbeat(2000)
	if got := allocatable(); got.MilliCPU != 2000 || got.MemoryBytes != 4<<30 {
		t.Fatalf("after the first report: allocatable %+v, want 2 CPUs and 4 GiB", got)
	}
	heartbeat(1_000_000)
	if got := allocatable(); got.MilliCPU != 2000 {
		t.Fatalf("n1 reported 1000 CPUs and is offered %d millicpu, want the 2000 it joined with", got.MilliCPU)
	}
	heartbeat(1000) // a smaller machine is offered what it reports
	if got := allocatable(); got.MilliCPU != 1000 {
		t.Fatalf("n1 reported 1 CPU and is offered %d millicpu", got.MilliCPU)
	}

	raise := func(c *http.Client) (int, string) {
		var node api.Node
		r.get(t, "/api/v1/nodes/n1", &node)
		node.Spec.Capacity.MilliCPU = 8000
		return call(t, c, http.MethodPut, r.url+"/api/v1/nodes/n1", &node)
	}
	if code, _ := raise(n1); code != http.StatusForbidden {
		t.Fatalf("n1 raised its own cap: %d, want 403", code)
	}
	if code, msg := raise(r.admin); code != http.StatusOK {
		t.Fatalf("the cluster-admin could not raise n1's cap: %d %s", code, msg)
	}
	heartbeat(8000)
	if got := allocatable(); got.MilliCPU != 8000 {
		t.Fatalf("after the cluster-admin raised the cap: %d millicpu, want 8000", got.MilliCPU)
	}
	// A relabel that does not name the cap keeps it.
	relabel := "apiVersion: shoal/v1\nkind: Node\nmetadata: {name: n1, labels: {zone: b}}\n"
	if code, msg := call(t, r.admin, http.MethodPost, r.url+"/api/v1/apply", relabel); code != http.StatusOK {
		t.Fatalf("relabel n1: %d %s", code, msg)
	}
	heartbeat(1_000_000)
	if got := allocatable(); got.MilliCPU != 8000 {
		t.Fatalf("after a relabel and a report of 1000 CPUs: %d millicpu, want the 8000 cap kept", got.MilliCPU)
	}
}
