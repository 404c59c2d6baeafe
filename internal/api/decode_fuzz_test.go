package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	exampleManifest,
	`{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"web","labels":{"mood":"\ud83d\ude00"}},"spec":{"image":"nginx","replicas":2}}`,
	`{apiVersion: shoal/v1, kind: Namespace, metadata: {name: a}}`,
	manifest("App", "web", "spec: {image: nginx, replicsa: 3}"),
	manifest("App", "web", "spec: {image: nginx, replicas: three}"),
	manifest("App", "Web_1", "spec: {image: nginx, resources: {memory: 128MB, cpu: 0.5}}"),
	manifest("App", "web", "spec: {image: nginx, ports: [{name: http, containerPort: 80, hostPort: 18080}, {containerPort: 53, hostPort: 53, protocol: UDP}]}"),
	manifest("Instance", "web-1", "spec: {app: web, revision: 2, node: node-1, template: {image: nginx, env: [{name: A, value: b}]}}"),
	manifest("Node", "node-1", "spec: {unschedulable: true}\nstatus: {ready: true}"),
	"apiVersion: shoal/v1\nkind: Event\nmetadata: {name: web.1, namespace: default}\nobject: App/web\ntype: Normal\nreason: Scaled\nmessage: \"scaled to 3\"\ntime: 2024-05-01T10:00:00+02:00\n",
	"apiVersion: shoal/v1\nkind: App\nmetadata:\n  name: web\n  createdAt: 2024-05-01T10:00:00.123456789Z\n  revision: 9\n  labels:\n    version: \"1.0\"\n    shoal.dev/role: front\nspec:\n  image: nginx\n  command: [sh, -c, 'echo \"hi\"']\n  args:\n  - |\n    multi\n    line\n  workingDir: /srv\n  restartPolicy: OnFailure\n  terminationGracePeriodSeconds: 0x1e\n  placement: {nodeSelector: {disk: ssd}}\n",
	"---\n# empty\n---\n" + manifest("Namespace", "a", "") + "...\n---\n" + manifest("Namespace", "b", ""),
	billionLaughs(),
	strings.Repeat("[", 40) + strings.Repeat("]", 40),
	strings.Repeat("- ", 40) + "x",
	"a: !!binary aGk=\n",
	"metadata: {<<: {name: x}}\n",
	"kind: App\nkind: App\n",
	"apiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec: {image: \"a\\u2028b\", env: [{name: X, value: \"\\0\\t\\x7f\\ufeff yes\"}]}\n",
	"apiVersion: shoal/v1\nkind: Event\nmetadata: {name: e}\nmessage: \"<<\"\nreason: \"a\\n---\\nb\"\nsource: \"\\u2028 \\0 ~\"\n",
	"\t\n",
	"",
}

// FuzzDecode checks that Decode never panics, that its errors have one
// shape, and that whatever it accepts survives Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode error %T %q is not an *InvalidError", err, err)
			}
			if objs != nil {
				t.Fatalf("Decode returned %d objects with an error", len(objs))
			}
			return
		}
		for i, obj := range objs {
			for _, format := range []string{"json", "yaml"} {
				out, err := Encode(obj, format)
				if err != nil {
					t.Fatalf("object %d: Encode(%s): %v", i, format, err)
				}
				if len(out) > MaxDocumentBytes {
					continue // re-encoding may grow a document past the limit
				}
				again, err := Decode(out)
				if err != nil {
					t.Fatalf("object %d: Decode(Encode(%s)): %v\n%s", i, format, err, out)
				}
				if len(again) != 1 || !reflect.DeepEqual(again[0], obj) {
					t.Fatalf("object %d: Decode(Encode(%s)) changed it:\n got %#v\nwant %#v\n%s", i, format, again, obj, out)
				}
				if format != "json" {
					continue
				}
				// The API server's path must agree with the manifest path.
				viaServer, err := DecodeObject(obj.GetTypeMeta().Kind, out)
				if err != nil || !reflect.DeepEqual(viaServer, obj) {
					t.Fatalf("object %d: DecodeObject(Encode(json)) = %#v, %v; want %#v", i, viaServer, err, obj)
				}
			}
		}
	})
}
