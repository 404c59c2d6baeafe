package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestApplyPinsImagesToDigests: apply, create and update store the digest
// a shoal.local tag points at, so a later push of the tag changes nothing
// that is stored (and so nothing that runs) until the next apply; a
// re-apply while the tag is unchanged is no change at all.
func TestApplyPinsImagesToDigests(t *testing.T) {
	e := startTLS(t)
	if code, msg := e.pushAs(t, e.admin, "shoal.local/hello:v1", "one"); code != http.StatusOK {
		t.Fatalf("push: %d %s", code, msg)
	}
	one := e.digestOf(t, "hello", "v1")
	doc := appDoc("", "web")
	doc = strings.Replace(doc, "image: nginx:1.27", "image: shoal.local/hello:v1", 1)
	if !strings.Contains(doc, "shoal.local/hello:v1") {
		t.Fatalf("appDoc changed: %s", doc)
	}
	code, body, res := e.applyAs(t, e.admin, doc)
	if code != http.StatusOK || res[0].Action != api.ApplyCreated {
		t.Fatalf("apply: %d %s", code, body)
	}
	stored := e.app(t, "default", "web")
	if want := "shoal.local/hello:v1@" + one; stored.Spec.Image != want {
		t.Fatalf("stored image %q, want %q", stored.Spec.Image, want)
	}
	code, body, res = e.applyAs(t, e.admin, doc)
	if code != http.StatusOK || res[0].Action != api.ApplyUnchanged || res[0].Revision != stored.Metadata.Revision {
		t.Errorf("the same manifest again, tag unchanged: %d %s, want unchanged at revision %d", code, body, stored.Metadata.Revision)
	}

	// The tag moves: what is stored does not.
	if code, msg := e.pushAs(t, e.admin, "shoal.local/hello:v1", "two"); code != http.StatusOK {
		t.Fatalf("push again: %d %s", code, msg)
	}
	two := e.digestOf(t, "hello", "v1")
	if two == one {
		t.Fatal("two images, one digest")
	}
	if got := e.app(t, "default", "web"); got.Spec.Image != stored.Spec.Image || got.Metadata.Revision != stored.Metadata.Revision {
		t.Errorf("after the tag moved the stored App runs %q (revision %d), want %q (revision %d)", got.Spec.Image, got.Metadata.Revision, stored.Spec.Image, stored.Metadata.Revision)
	}
	// Applying again is deploying what the tag names now.
	if code, body, res = e.applyAs(t, e.admin, doc); code != http.StatusOK || res[0].Action != api.ApplyConfigured {
		t.Errorf("apply after the tag moved: %d %s, want configured", code, body)
	}
	if got := e.app(t, "default", "web").Spec.Image; got != "shoal.local/hello:v1@"+two {
		t.Errorf("after re-applying: %q, want the new digest", got)
	}

	// Create and update pin too.
	job := `{"apiVersion":"shoal/v1","kind":"Job","metadata":{"name":"j","namespace":"default"},"spec":{"image":"shoal.local/hello:v1"}}`
	if code, body := call(t, e.admin, http.MethodPost, e.url+"/api/v1/namespaces/default/jobs", job); code != http.StatusCreated || !strings.Contains(body, `"image": "shoal.local/hello:v1@`+two+`"`) {
		t.Errorf("create job: %d %s, want its image pinned", code, body)
	}
	a := e.app(t, "default", "web")
	a.Spec.Image = "shoal.local/hello:v1"
	if code, body := call(t, e.admin, http.MethodPut, e.url+"/api/v1/namespaces/default/apps/web", a); code != http.StatusOK || !strings.Contains(body, `"image": "shoal.local/hello:v1@`+two+`"`) {
		t.Errorf("update app: %d %s, want its image pinned", code, body)
	}

	// What cannot be pinned is refused, and says why.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signedByTag := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "default", Name: "s"},
		Spec: api.AppSpec{Template: api.Template{Image: "shoal.local/hello:v1"}}}
	signedByTag.Spec.Template.Signature = &api.Signature{Key: "ed25519:" + base64.StdEncoding.EncodeToString(pub), Namespace: "default",
		Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, api.SignedBytes(&signedByTag.Spec.Template, "default")))}
	signedJSON, _ := json.Marshal(signedByTag)
	for _, tc := range []struct{ name, doc, want string }{
		{"a tag never pushed", strings.Replace(doc, "hello:v1", "nope:v9", 1),
			`document 1 (App "web"): spec.image: "shoal.local/nope:v9": not in the cluster's image store: push it first`},
		{"a digest that is not one", strings.Replace(doc, "hello:v1", "hello:v1@sha256:abc", 1),
			`spec.image: "shoal.local/hello:v1@sha256:abc": "sha256:abc" is not a digest`},
		{"a signed template naming a tag", string(signedJSON),
			`document 1 (App "s"): spec.image: "shoal.local/hello:v1": a signed template must name its image by digest`},
	} {
		code, body, _ := e.applyAs(t, e.admin, tc.doc)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 422 %q", tc.name, code, body, tc.want)
		}
	}
	// A digest its author chose is kept as written.
	pinned := strings.Replace(doc, "hello:v1", "hello:v1@"+one, 1)
	if code, body, _ := e.applyAs(t, e.admin, pinned); code != http.StatusOK {
		t.Fatalf("apply pinned: %d %s", code, body)
	}
	if got := e.app(t, "default", "web").Spec.Image; got != "shoal.local/hello:v1@"+one {
		t.Errorf("a pinned image stored as %q", got)
	}
}
