package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store/storetest"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

const secretDoc = "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: db}\nspec:\n  data: {password: hunter2-the-value, user: admin-the-value}\n"

// dump returns every value under the store's prefix, as an etcd dump has
// them.
func (e *testEnv) dump(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, err := storetest.Dial(t, e.etcd).Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key)
		b.WriteByte(' ')
		b.WriteString(kv.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

func getSecret(t *testing.T, e *testEnv, reveal bool) *api.Secret {
	t.Helper()
	get := e.cli.Get
	if reveal {
		get = e.cli.Reveal
	}
	obj, err := get(ctxT(t, 10*time.Second), api.MustKind(api.KindSecret), "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*api.Secret)
}

func TestSecretsAreSealedAtRestAndRedacted(t *testing.T) {
	e := start(t)
	ctx := ctxT(t, 30*time.Second)
	res, err := e.cli.Apply(ctx, []byte(secretDoc), client.ApplyOptions{})
	if err != nil || res[0].Action != api.ApplyCreated {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if d := e.dump(t); strings.Contains(d, "-the-value") || !strings.Contains(d, "/shoal/secrets/default/db") {
		t.Fatalf("the etcd dump holds a secret value (or no secret):\n%s", d)
	}
	s := getSecret(t, e, false)
	if s.Spec.Data["password"] != api.Redacted || s.Spec.Data["user"] != api.Redacted || s.Spec.Sealed != nil || s.Status.Version != 1 {
		t.Errorf("get: %+v, want both keys redacted, version 1", s)
	}
	if s := getSecret(t, e, true); s.Spec.Data["password"] != "hunter2-the-value" {
		t.Errorf("reveal: %+v", s.Spec.Data)
	}
	objs, _, err := e.cli.List(ctx, api.MustKind(api.KindSecret), "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(objs); strings.Contains(string(b), "-the-value") || strings.Contains(string(b), "sealed") {
		t.Errorf("list shows values or ciphertext: %s", b)
	}

	// The same data again changes nothing; other data is a new version.
	if res, err := e.cli.Apply(ctx, []byte(secretDoc), client.ApplyOptions{}); err != nil || res[0].Action != api.ApplyUnchanged {
		t.Errorf("re-apply: %+v %v, want unchanged", res, err)
	}
	dry, err := e.cli.Apply(ctx, []byte(strings.Replace(secretDoc, "hunter2", "hunter3", 1)), client.ApplyOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(dry); strings.Contains(string(b), "-the-value") {
		t.Errorf("a dry run shows values: %s", b)
	}
	if _, err := e.cli.Apply(ctx, []byte(strings.Replace(secretDoc, "hunter2", "hunter3", 1)), client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := getSecret(t, e, true); s.Status.Version != 2 || s.Spec.Data["password"] != "hunter3-the-value" {
		t.Errorf("after a change: version %d, %v", s.Status.Version, s.Spec.Data)
	}

	// Rotation re-seals under a new key; values and version stay.
	var rot struct {
		Key      string
		Resealed int
	}
	if err := e.cli.Do(ctx, http.MethodPost, "/api/v1/secret-keys/rotate", nil, &rot); err != nil || rot.Resealed != 1 {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if d := e.dump(t); !strings.Contains(d, rot.Key) || strings.Contains(d, "-the-value") {
		t.Errorf("after rotation the dump does not use key %s, or holds a value", rot.Key)
	}
	if s := getSecret(t, e, true); s.Status.Version != 2 || s.Spec.Data["password"] != "hunter3-the-value" {
		t.Errorf("after rotation: version %d, %v", s.Status.Version, s.Spec.Data)
	}
}

func TestBadSecretsAreRefusedWithoutTheirValues(t *testing.T) {
	e := start(t)
	big := strings.Repeat("x", api.MaxSecretBytes)
	for _, tc := range []struct{ name, doc, want string }{
		{"too large", "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: big}\nspec: {data: {k: " + big + "}}\n", "a Secret holds at most 65536"},
		{"a key that is no file name", "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: k}\nspec: {data: {../etc: v-the-value}}\n", "it becomes a file name"},
		{"empty", "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: e}\nspec: {}\n", "spec.data: required"},
		{"sealed by the client", "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: s}\nspec: {data: {a: b}, sealed: {keyID: x, value: y, keys: [a]}}\n", "spec.sealed: is written by the server"},
		{"a value of the wrong type", "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: n}\nspec: {data: {pin: 987654321}}\n", "spec.data.pin"},
	} {
		code, body := e.do(t, http.MethodPost, "/api/v1/apply", []byte(tc.doc))
		if code < 400 || code >= 500 || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want a 4xx with %q", tc.name, code, body, tc.want)
		}
		if strings.Contains(string(body), "-the-value") || strings.Contains(string(body), "987654321") || strings.Contains(string(body), big[:100]) {
			t.Errorf("%s: the error shows the value: %s", tc.name, body)
		}
	}
}
