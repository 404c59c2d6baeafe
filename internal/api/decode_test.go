package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const exampleManifest = `apiVersion: shoal/v1
kind: App
metadata:
  name: hello
  labels: {tier: web}
spec:
  image: shoal.local/hello:v1
  replicas: 3
  env: [{name: GREETING, value: hi}]
  ports:
  - name: http
    containerPort: 8080
    hostPort: 18080
  resources: {cpu: 100m, memory: 64Mi}
---
apiVersion: shoal/v1
kind: Namespace
metadata: {name: team-a}
`

func TestDecodeExample(t *testing.T) {
	objs, err := Decode([]byte(exampleManifest))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	replicas, grace := int32(3), int64(10)
	wantApp := &App{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
		Metadata: ObjectMeta{Name: "hello", Namespace: DefaultNamespace, Labels: map[string]string{"tier": "web"}},
		Spec: AppSpec{
			Template: Template{
				Image:                         "shoal.local/hello:v1",
				Env:                           []EnvVar{{Name: "GREETING", Value: "hi"}},
				Ports:                         []Port{{Name: "http", ContainerPort: 8080, HostPort: 18080, Protocol: ProtocolTCP}},
				Resources:                     Resources{CPU: "100m", Memory: "64Mi"},
				RestartPolicy:                 RestartAlways,
				TerminationGracePeriodSeconds: &grace,
			},
			Replicas: &replicas,
		},
	}
	SetDefaults(wantApp)
	wantNS := &Namespace{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNamespace},
		Metadata: ObjectMeta{Name: "team-a"},
	}
	if want := []Object{wantApp, wantNS}; !reflect.DeepEqual(objs, want) {
		t.Fatalf("Decode example:\n got %#v\nwant %#v", objs, want)
	}
}

// manifest builds a small document: body is the rest after metadata.
func manifest(kind, name, body string) string {
	return "apiVersion: shoal/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\n" + body + "\n"
}

func billionLaughs() string {
	var b strings.Builder
	b.WriteString(`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		b.WriteString(name + ": &" + name + " [")
		for i := 0; i < 9; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = name
	}
	return b.String()
}

func TestDecodeErrors(t *testing.T) {
	web := func(spec string) string { return manifest("App", "web", "spec: "+spec) }
	deepMap := strings.Repeat("{a: ", 10000) + "1" + strings.Repeat("}", 10000)
	deepJSON := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	var blockMap strings.Builder
	for i := 0; i < 40; i++ {
		blockMap.WriteString(strings.Repeat(" ", i) + "a:\n")
	}

	tests := []struct {
		name, in, want string
	}{
		{"unknown field", web("{image: nginx, replicsa: 3}"),
			`document 1 (App "web"): spec.replicsa: unknown field`},
		{"unknown field names the full path", web("{image: nginx, ports: [{containerPort: 80}, {containerPrt: 81}]}"),
			`document 1 (App "web"): spec.ports[1].containerPrt: unknown field`},
		{"field names are case-sensitive", web("{Image: nginx}"),
			`document 1 (App "web"): spec.Image: unknown field`},
		{"unknown top-level field", manifest("App", "web", "spec: {image: nginx}\nspecs: {}"),
			`document 1 (App "web"): specs: unknown field`},
		{"every decoding error is reported", web("{image: nginx, replicas: three, bogus: 1}"),
			`document 1 (App "web"): spec.replicas: expected integer, got string "three"; spec.bogus: unknown field`},
		{"wrong type", web("{image: nginx, replicas: three}"),
			`document 1 (App "web"): spec.replicas: expected integer, got string "three"`},
		{"quoted number is a string", web(`{image: nginx, replicas: "3"}`),
			`document 1 (App "web"): spec.replicas: expected integer, got string "3"`},
		{"float is not an integer", web("{image: nginx, replicas: 3.0}"),
			`document 1 (App "web"): spec.replicas: expected integer, got number 3.0`},
		{"integer out of range", web("{image: nginx, replicas: 99999999999}"),
			`document 1 (App "web"): spec.replicas: 99999999999 is out of range`},
		{"boolean for a string field", web("{image: nginx, env: [{name: DEBUG, value: true}]}"),
			`document 1 (App "web"): spec.env[0].value: expected string, got boolean true`},
		{"map for a list", web("{image: nginx, command: {a: b}}"),
			`document 1 (App "web"): spec.command: expected list, got map`},
		{"string for a map", manifest("App", "web", "spec: nginx"),
			`document 1 (App "web"): spec: expected map, got string "nginx"`},
		{"bad timestamp", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web, createdAt: yesterday}\nspec: {image: nginx}\n",
			`document 1 (App "web"): metadata.createdAt: expected an RFC 3339 timestamp, got string "yesterday"`},
		{"missing image", web("{replicas: 2}"),
			`document 1 (App "web"): spec.image: required`},
		{"negative replicas", web("{image: nginx, replicas: -1}"),
			`document 1 (App "web"): spec.replicas: must not be negative`},
		{"too many replicas", web("{image: nginx, replicas: 10001}"),
			`document 1 (App "web"): spec.replicas: must be at most 10000`},
		{"memory in MB", web("{image: nginx, resources: {memory: 128MB}}"),
			`document 1 (App "web"): spec.resources.memory: "128MB": not a memory quantity (use Mi/Gi, e.g. 128Mi)`},
		{"bad cpu", web("{image: nginx, resources: {cpu: lots}}"),
			`document 1 (App "web"): spec.resources.cpu: "lots": not a CPU quantity (use cores like 0.5 or millicores like 500m)`},
		{"bad name", manifest("App", "Web_1", "spec: {image: nginx}"),
			`document 1 (App "Web_1"): metadata.name: "Web_1" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`},
		{"missing name", "apiVersion: shoal/v1\nkind: App\nspec: {image: nginx}\n",
			`document 1 (App): metadata.name: required`},
		{"bad namespace", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web, namespace: Team}\nspec: {image: nginx}\n",
			`document 1 (App "web"): metadata.namespace: "Team" is not a valid namespace: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`},
		{"duplicate hostPort", web("{image: nginx, ports: [{containerPort: 80, hostPort: 18080}, {containerPort: 81, hostPort: 18080}]}"),
			`document 1 (App "web"): spec.ports[1].hostPort: 18080/TCP is already used by spec.ports[0]`},
		{"duplicate containerPort", web("{image: nginx, ports: [{containerPort: 80}, {containerPort: 80, protocol: TCP}]}"),
			`document 1 (App "web"): spec.ports[1].containerPort: 80/TCP is already used by spec.ports[0]`},
		{"duplicate port name", web("{image: nginx, ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]}"),
			`document 1 (App "web"): spec.ports[1].name: "http" is already used by spec.ports[0]`},
		{"probe port name not declared", web("{image: nginx, ports: [{name: http, containerPort: 80}], health: {readiness: {http: {port: web}}}}"),
			`document 1 (App "web"): spec.health.readiness.http.port: "web" is not the name of a port this app declares in ports (use a port number or one of its port names)`},
		{"probe port number out of range", web("{image: nginx, health: {liveness: {tcp: {port: 65536}}, readiness: {tcp: {port: -1}}}}"),
			`document 1 (App "web"): spec.health.readiness.tcp.port: -1: a port number must be between 1 and 65535; spec.health.liveness.tcp.port: 65536: a port number must be between 1 and 65535`},
		{"probe port as a float", web("{image: nginx, health: {liveness: {tcp: {port: 80.5}}}}"),
			`document 1 (App "web"): spec.health.liveness.tcp.port: expected a port number or name, got number 80.5`},
		{"bad protocol", web("{image: nginx, ports: [{containerPort: 80, protocol: SCTP}]}"),
			`document 1 (App "web"): spec.ports[0].protocol: "SCTP" is not supported: use TCP or UDP`},
		{"port out of range", web("{image: nginx, ports: [{containerPort: 70000, hostPort: -1}]}"),
			`document 1 (App "web"): spec.ports[0].containerPort: must be between 1 and 65535; spec.ports[0].hostPort: must be between 0 and 65535`},
		{"env name with =", web("{image: nginx, env: [{name: A=B, value: c}]}"),
			`document 1 (App "web"): spec.env[0].name: "A=B" must not contain '='`},
		{"bad restartPolicy", web("{image: nginx, restartPolicy: Sometimes}"),
			`document 1 (App "web"): spec.restartPolicy: "Sometimes" is not supported: use Always, OnFailure or Never`},
		{"grace period too long", web("{image: nginx, terminationGracePeriodSeconds: 3601}"),
			`document 1 (App "web"): spec.terminationGracePeriodSeconds: must be between 0 and 3600`},
		{"image with whitespace", web(`{image: "nginx latest"}`),
			`document 1 (App "web"): spec.image: "nginx latest" must not contain whitespace`},
		{"bad nodeSelector key", web(`{image: nginx, placement: {nodeSelector: {"disk type": ssd}}}`),
			`document 1 (App "web"): spec.placement.nodeSelector["disk type"]: invalid label key: use at most 63 letters, digits, '.', '_', '-' or '/'`},
		{"bad label value", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web, labels: {tier: \"front end\"}}\nspec: {image: nginx}\n",
			`document 1 (App "web"): metadata.labels.tier: invalid label value "front end": use at most 63 characters, with no whitespace or control characters`},
		{"instance template", manifest("Instance", "web-1", "spec: {app: web, template: {image: nginx, replicas: 2}}"),
			`document 1 (Instance "web-1"): spec.template.replicas: unknown field`},
		{"instance template validation", manifest("Instance", "web-1", "spec: {app: web, template: {ports: [{containerPort: 0}]}}"),
			`document 1 (Instance "web-1"): spec.template.image: required; spec.template.ports[0].containerPort: required`},
		{"wrong apiVersion", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			`document 1 (Namespace "a"): apiVersion: "v1" is not supported: use shoal/v1`},
		{"missing kind", "apiVersion: shoal/v1\nmetadata: {name: a}\n",
			`document 1 ("a"): kind: required`},
		{"unknown kind", "apiVersion: shoal/v1\nkind: Deployment\nmetadata: {name: a}\n",
			`document 1 ("a"): kind: "Deployment" is not a known kind (use App, Instance, Node, Namespace, Event, Token, Secret, User, Job)`},
		{"kind in the wrong case", "apiVersion: shoal/v1\nkind: app\nmetadata: {name: a}\n",
			`document 1 ("a"): kind: "app" is not a known kind (did you mean App?)`},
		{"status on a kind without one", manifest("Namespace", "a", "status: {}"),
			`document 1 (Namespace "a"): status: unknown field`},
		{"namespace on a cluster-wide kind", "apiVersion: shoal/v1\nkind: Node\nmetadata: {name: n1, namespace: default}\n",
			`document 1 (Node "n1"): metadata.namespace: must be empty: this kind is not namespaced`},
		{"not a map", "just a string\n",
			`document 1: expected a map with apiVersion and kind, got string "just a string"`},
		{"duplicate key", "apiVersion: shoal/v1\nkind: App\nkind: Node\n",
			`document 1: kind: duplicate key`},
		{"non-string key", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web, labels: {1: a}}\n",
			`document 1: metadata.labels: map keys must be strings, got number 1`},
		{"binary tag", "apiVersion: shoal/v1\nkind: App\nmetadata: {name: !!binary d2Vi}\n",
			`document 1: metadata.name: YAML tag "!!binary" is not allowed`},
		{"custom tag", "apiVersion: shoal/v1\nkind: !thing App\n",
			`document 1: kind: YAML tag "!thing" is not allowed`},
		{"merge key", "apiVersion: shoal/v1\nkind: App\nmetadata: {<<: {name: web}}\n",
			`document 1: metadata: YAML merge keys (<<) are not allowed`},
		{"YAML syntax error counts lines from the file's start", manifest("Namespace", "a", "") + "---\napiVersion: shoal/v1\nkind: [Namespace\n",
			// The YAML library numbers this kind of error from the line before
			// the construct; the point is that it counts from the file's start.
			`document 2: line 6: did not find expected ',' or ']'`},
		{"content after a document end marker", "apiVersion: shoal/v1\n...\nkind: App\n",
			`document 1: line 2: did not find expected <document start>`},
		{"JSON unknown field", `{"apiVersion": "shoal/v1", "kind": "Namespace", "metadata": {"name": "a", "nmae": "b"}}`,
			`document 1 (Namespace "a"): metadata.nmae: unknown field`},
		{"JSON duplicate key", `{"apiVersion": "shoal/v1", "kind": "Namespace", "kind": "Node"}`,
			`document 1: kind: duplicate key`},
		{"document over 1 MiB", manifest("App", "web", "spec: {image: nginx}") + "# " + strings.Repeat("x", MaxDocumentBytes) + "\n",
			`document 1: larger than 1 MiB`},
		{"second document over 1 MiB", "---\n" + manifest("Namespace", "a", "") + "---\n" + strings.Repeat("#", MaxDocumentBytes+1),
			`document 2: larger than 1 MiB`},
		{"billion laughs", billionLaughs(),
			`document 1: YAML aliases are not allowed`},
		{"alias of a scalar", "apiVersion: &v shoal/v1\nkind: Namespace\nmetadata: {name: *v}\n",
			`document 1: YAML aliases are not allowed`},
		{"10,000 nested lists", strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
			`document 1: nested deeper than 32 levels`},
		{"10,000 nested maps", deepMap,
			`document 1: nested deeper than 32 levels`},
		{"10,000 nested block lists", strings.Repeat("- ", 10000) + "x\n",
			`document 1: nested deeper than 32 levels`},
		{"10,001 nested lists", strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
			`document 1: nested deeper than 32 levels`},
		{"10,000 nested JSON objects", deepJSON,
			`document 1: nested deeper than 32 levels`},
		{"40 nested block maps", blockMap.String(),
			`document 1: nested deeper than 32 levels`},
		{"second document bad", exampleManifest + "---\n" + manifest("App", "api", "spec: {replicas: 1}"),
			`document 3 (App "api"): spec.image: required`},
		{"empty documents are not counted", "---\n# nothing here\n---\n---\n" + manifest("Namespace", "a", "") + "---\n\n---\n" + manifest("Namespace", "B", ""),
			`document 2 (Namespace "B"): metadata.name: "B" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			objs, err := Decode([]byte(tc.in))
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Decode took %v; want it to give up quickly", elapsed)
			}
			if err == nil {
				t.Fatalf("Decode succeeded with %d objects; want error %q", len(objs), tc.want)
			}
			if objs != nil {
				t.Errorf("Decode returned %d objects with its error; want none", len(objs))
			}
			if err.Error() != tc.want {
				t.Errorf("Decode error\n got: %s\nwant: %s", err, tc.want)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode error %T is not an *InvalidError matching ErrInvalid", err)
			}
		})
	}
}

func TestDecodeYAMLErrorLine(t *testing.T) {
	in := manifest("Namespace", "a", "") + "---\n" + manifest("Namespace", "b", "") + "---\nkind: Namespace\n  bad: indent\n"
	_, err := Decode([]byte(in))
	want := "document 3: line 12: mapping values are not allowed in this context"
	if err == nil || err.Error() != want {
		t.Fatalf("Decode error = %v; want %q", err, want)
	}
}

func TestDecodeDepthLimitIsInclusive(t *testing.T) {
	// 32 levels is fine for the parser; the document then fails for being a
	// list, which shows the depth check let it through.
	in := strings.Repeat("[", 32) + strings.Repeat("]", 32)
	_, err := Decode([]byte(in))
	want := "document 1: expected a map with apiVersion and kind, got list"
	if err == nil || err.Error() != want {
		t.Fatalf("Decode(32 levels) error = %v; want %q", err, want)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# just a comment\n", "---\n", "---\n---\n", "--- ~\n", "null\n", "  \n\t\n"} {
		objs, err := Decode([]byte(in))
		if err != nil || len(objs) != 0 {
			t.Errorf("Decode(%q) = %d objects, %v; want none and no error", in, len(objs), err)
		}
	}
}

func TestDecodeDropsStatusKeepsMetadata(t *testing.T) {
	in := `apiVersion: shoal/v1
kind: App
metadata:
  name: web
  namespace: team-a
  uid: 3f1c
  revision: 42
  createdAt: "2024-05-01T10:00:00+02:00"
spec:
  image: nginx
status:
  replicas: 3
  running: 2
  whatever: "status is not checked, it is dropped"
`
	objs, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	app := objs[0].(*App)
	if !reflect.DeepEqual(app.Status, AppStatus{}) {
		t.Errorf("status = %+v; want it dropped", app.Status)
	}
	// What the store assigns (uid, createdAt, deletedAt) is dropped too;
	// the revision stays, as an update's compare-and-swap guard.
	wantMeta := ObjectMeta{Name: "web", Namespace: "team-a", Revision: 42}
	if !reflect.DeepEqual(app.Metadata, wantMeta) {
		t.Errorf("metadata = %+v; want %+v", app.Metadata, wantMeta)
	}
}

func TestDecodeJSON(t *testing.T) {
	// An escaped surrogate pair is valid JSON but not valid YAML; JSON input
	// must go through the JSON parser.
	in := `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web","labels":{"mood":"\ud83d\ude00"}},"spec":{"image":"nginx"}}`
	objs, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := objs[0].GetMeta().Labels["mood"]; got != "😀" {
		t.Errorf("label = %q; want 😀", got)
	}
	// A YAML flow mapping is not JSON, but is still a manifest.
	objs, err = Decode([]byte(`{apiVersion: shoal/v1, kind: Namespace, metadata: {name: a}}`))
	if err != nil || len(objs) != 1 {
		t.Fatalf("Decode(flow mapping) = %d objects, %v; want 1", len(objs), err)
	}
}

func TestDecodeYAMLScalars(t *testing.T) {
	in := `apiVersion: shoal/v1
kind: App
metadata:
  name: web
  labels: {version: "1.0", date: 2024-01-01, answer: "yes"}
spec:
  image: nginx
  replicas: 0x1F
  terminationGracePeriodSeconds: !!int "30"
  command: [sh, -c, !!str 42]
  ports: []
  env:
  args: ~
`
	objs, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	app := objs[0].(*App)
	if *app.Spec.Replicas != 31 || *app.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("replicas, grace = %d, %d; want 31, 30", *app.Spec.Replicas, *app.Spec.TerminationGracePeriodSeconds)
	}
	if want := []string{"sh", "-c", "42"}; !reflect.DeepEqual(app.Spec.Command, want) {
		t.Errorf("command = %q; want %q", app.Spec.Command, want)
	}
	if want := map[string]string{"version": "1.0", "date": "2024-01-01", "answer": "yes"}; !reflect.DeepEqual(app.Metadata.Labels, want) {
		t.Errorf("labels = %q; want %q", app.Metadata.Labels, want)
	}
	if app.Spec.Ports != nil || app.Spec.Env != nil || app.Spec.Args != nil {
		t.Errorf("empty and null lists = %#v, %#v, %#v; want nil", app.Spec.Ports, app.Spec.Env, app.Spec.Args)
	}
}

func TestDecodeObject(t *testing.T) {
	body := `{"apiVersion":"shoal/v1","kind":"Node","metadata":{"name":"n1","revision":7},
		"spec":{"unschedulable":true},
		"status":{"ready":true,"capacity":{"milliCPU":4000,"memoryBytes":8589934592},"lastHeartbeat":"2024-05-01T10:00:00Z"}}`
	obj, err := DecodeStatus(KindNode, []byte(body))
	if err != nil {
		t.Fatalf("DecodeStatus: %v", err)
	}
	node := obj.(*Node)
	if !node.Spec.Unschedulable || !node.Status.Ready || node.Status.Capacity.MilliCPU != 4000 || node.Metadata.Revision != 7 {
		t.Errorf("node = %+v; want spec, status and revision kept", node)
	}
	// A create or update drops the status a client sends, whatever it
	// says, and the store's own metadata.
	forged := `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web","uid":"x","createdAt":"2020-01-01T00:00:00Z","deletedAt":"2020-01-01T00:00:00Z"},
		"spec":{"image":"nginx"},"status":{"serviceIP":"169.254.169.254","lastGoodRevision":1,"history":[{"revision":1}]}}`
	obj, err = DecodeObject(KindApp, []byte(forged))
	if err != nil {
		t.Fatalf("DecodeObject(forged status): %v", err)
	}
	if app := obj.(*App); !reflect.DeepEqual(app.Status, AppStatus{}) || app.Metadata.UID != "" || !app.Metadata.CreatedAt.IsZero() || !app.Metadata.DeletedAt.IsZero() {
		t.Errorf("DecodeObject kept what a client may not set: %+v", app)
	}

	tests := []struct {
		name string
		kind Kind
		body string
		want string
	}{
		{"kind mismatch", KindApp, body,
			`App "n1": kind: must be App, got "Node"`},
		{"unknown field in status", KindNode, `{"apiVersion":"shoal/v1","kind":"Node","metadata":{"name":"n1"},"status":{"redy":true}}`,
			`Node "n1": status.redy: unknown field`},
		{"wrong type", KindApp, `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web"},"spec":{"image":"nginx","replicas":"3"}}`,
			`App "web": spec.replicas: expected integer, got string "3"`},
		{"validation", KindApp, `{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web"},"spec":{}}`,
			`App "web": spec.image: required`},
		{"syntax error", KindApp, "{\n\"apiVersion\": \"shoal/v1\",\n}",
			`App: line 3: invalid character '}' looking for beginning of object key string`},
		{"truncated", KindApp, `{"apiVersion": "shoal/v1"`,
			`App: unexpected end of JSON input`},
		{"trailing data", KindNamespace, `{"apiVersion":"shoal/v1","kind":"Namespace","metadata":{"name":"a"}} {}`,
			`Namespace: unexpected data after the JSON value`},
		{"YAML is not accepted", KindNamespace, "apiVersion: shoal/v1\n",
			`Namespace: line 1: invalid character 'a' looking for beginning of value`},
		{"too large", KindNamespace, `{"x":"` + strings.Repeat("x", MaxDocumentBytes) + `"}`,
			`Namespace: larger than 1 MiB`},
		{"too deep", KindNamespace, strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
			`Namespace: nested deeper than 32 levels`},
		{"unknown kind", "Widget", `{}`,
			`kind: "Widget" is not a known kind`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := DecodeStatus(tc.kind, []byte(tc.body))
			if err == nil {
				t.Fatalf("DecodeObject = %+v; want error %q", obj, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("DecodeObject error\n got: %s\nwant: %s", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("DecodeObject error %T does not match ErrInvalid", err)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	objs, err := Decode([]byte(exampleManifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		for _, format := range []string{"json", "yaml"} {
			out, err := Encode(obj, format)
			if err != nil {
				t.Fatalf("Encode(%s): %v", format, err)
			}
			again, err := Decode(out)
			if err != nil {
				t.Fatalf("Decode(Encode(%s)): %v\n%s", format, err, out)
			}
			if len(again) != 1 || !reflect.DeepEqual(again[0], obj) {
				t.Errorf("Decode(Encode(%s)) = %#v; want %#v", format, again, obj)
			}
		}
	}
	if _, err := Encode(objs[0], "xml"); err == nil || err.Error() != `unknown output format "xml": use json or yaml` {
		t.Errorf("Encode(xml) error = %v", err)
	}
}

func TestEncodeYAML(t *testing.T) {
	replicas := int32(2)
	app := &App{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
		Metadata: ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"on": "yes"}},
		Spec: AppSpec{
			Template: Template{Image: "nginx", Args: []string{"1.0", "a\nb"}},
			Replicas: &replicas,
		},
	}
	out, err := Encode(app, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: shoal/v1
kind: App
metadata:
  name: web
  namespace: default
  labels:
    "on": "yes"
spec:
  image: nginx
  args:
  - "1.0"
  - |-
    a
    b
  replicas: 2
`
	if string(out) != want {
		t.Errorf("Encode(yaml):\n%s\nwant:\n%s", out, want)
	}
}

func TestEncodeRoundTripAwkwardStrings(t *testing.T) {
	awkward := []string{
		"", " ", "~", "null", "yes", "on", "0x10", "0o7", "1e3", ".inf", "1:20", "2024-01-01",
		" leading", "trailing ", "\t", "#x", "a #b", ": x", "- x", "? x", "'", `"`, `\`, "<<", "=",
		"!tag", "&a", "*a", "%x", "@x", "`x", "|", ">", "---", "...", "--- x",
		"\n", "\n\n", " \n", "a \n", "a\n", "a\n\n", "a\n---\nb", "a\n...\nb", "a\r\nb", "\r", "a\n b",
		"\u2028", "\u2029", "\u0085", "\ufeff", "\u00a0", "\x7f", "\x1b[31m", "\U0001F600", "\ud7ff",
		strings.Repeat("word ", 40), strings.Repeat("long-", 40) + "\n--- \n" + strings.Repeat("x ", 50),
	}
	for _, s := range awkward {
		replicas, grace := int32(1), int64(10)
		app := &App{
			TypeMeta: TypeMeta{APIVersion: Version, Kind: KindApp},
			Metadata: ObjectMeta{Name: "web", Namespace: "default"},
			Spec: AppSpec{
				Template: Template{Image: "nginx", Args: []string{s}, Env: []EnvVar{{Name: s + "x", Value: s}}, RestartPolicy: RestartAlways, TerminationGracePeriodSeconds: &grace},
				Replicas: &replicas,
			},
		}
		SetDefaults(app)
		if strings.ContainsRune(s, '=') {
			app.Spec.Env[0].Name = "x"
		}
		event := &Event{
			TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent},
			Metadata: ObjectMeta{Name: "e", Namespace: "default"},
			// Events refuse what steers a terminal (text.go).
			Object: EscapeTerminal(s), Reason: EscapeTerminal(s), Message: EscapeTerminalText(s), Source: EscapeTerminal(s),
		}
		for _, obj := range []Object{app, event} {
			for _, format := range []string{"json", "yaml"} {
				out, err := Encode(obj, format)
				if err != nil {
					t.Fatalf("Encode(%s) with %q: %v", format, s, err)
				}
				again, err := Decode(out)
				if err != nil {
					t.Errorf("Decode(Encode(%s)) with %q: %v\n%s", format, s, err, out)
					continue
				}
				if len(again) != 1 || !reflect.DeepEqual(again[0], obj) {
					t.Errorf("Decode(Encode(%s)) with %q changed it:\n%s", format, s, out)
				}
			}
		}
	}
}

// A probe's port may be a number or a port name, in YAML and in JSON, and a
// number stays a number through encoding.
func TestDecodeProbePortNumberOrName(t *testing.T) {
	in := manifest("App", "web", `spec:
  image: nginx
  ports: [{name: http, containerPort: 8080}]
  health:
    readiness: {http: {path: /healthz, port: 8080}}
    liveness: {tcp: {port: http}}
`)
	objs, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	app := objs[0].(*App)
	if got := app.Spec.Health.Readiness.HTTP.Port; got != "8080" {
		t.Errorf("readiness port = %q; want 8080", got)
	}
	if got := app.Spec.Health.Liveness.TCP.Port; got != "http" {
		t.Errorf("liveness port = %q; want http", got)
	}
	for ref, want := range map[PortRef]int32{"8080": 8080, "http": 8080, "9100": 9100} {
		if n, ok := ResolvePort(ref, app.Spec.Ports); !ok || n != want {
			t.Errorf("ResolvePort(%q) = %d, %v; want %d", ref, n, ok, want)
		}
	}
	out, err := Encode(app, "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"port": 8080`) || !strings.Contains(string(out), `"port": "http"`) {
		t.Errorf("encoded ports are not a number and a name:\n%s", out)
	}
	var back App
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Spec.Health, app.Spec.Health) {
		t.Errorf("json round trip: %+v; want %+v", back.Spec.Health, app.Spec.Health)
	}
	again, err := Decode(out)
	if err != nil || !reflect.DeepEqual(again[0], objs[0]) {
		t.Errorf("Decode(Encode) = %v, %v", again, err)
	}
}

func TestDecodeFloats(t *testing.T) {
	obj, err := DecodeStatus(KindNode, []byte(`{"apiVersion":"shoal/v1","kind":"Node","metadata":{"name":"n1"},"status":{"traffic":[{"namespace":"default","app":"web","requestsPerSecond":12.5},{"namespace":"default","app":"db","requestsPerSecond":3}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	tr := obj.(*Node).Status.Traffic
	if len(tr) != 2 || tr[0].RequestsPerSecond != 12.5 || tr[1].RequestsPerSecond != 3 {
		t.Fatalf("traffic %+v", tr)
	}
	if _, err := DecodeStatus(KindNode, []byte(`{"apiVersion":"shoal/v1","kind":"Node","metadata":{"name":"n1"},"status":{"traffic":[{"namespace":"default","app":"web","requestsPerSecond":"fast"}]}}`)); err == nil || !strings.Contains(err.Error(), "status.traffic[0].requestsPerSecond") {
		t.Fatalf("a string for a number: %v", err)
	}
}
