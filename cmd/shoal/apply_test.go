package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

// TestSignManifestsPinsAndBindsTheNamespace: --sign-key names shoal.local
// images by the digest the server reports before it signs, and signs for
// the namespace each template is in.
func TestSignManifestsPinsAndBindsTheNamespace(t *testing.T) {
	priv, err := pki.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := pki.EncodeSigningKey(priv)
	keyFile := filepath.Join(t.TempDir(), "owner.key")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	key := pki.VerifyKeyString(priv.Public().(ed25519.PublicKey))
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var asked []string
	digest := func(_ context.Context, repo, tag string) (string, error) {
		asked = append(asked, repo+":"+tag)
		if repo == "nope" {
			return "", errors.New("shoal.local/nope:v9 is not in the cluster's image store")
		}
		return d, nil
	}
	doc := `apiVersion: shoal/v1
kind: App
metadata: {name: web, namespace: payments}
spec: {image: shoal.local/payments/api:v3}
---
apiVersion: shoal/v1
kind: Job
metadata: {name: batch}
spec: {image: "nginx:1.27@` + d + `"}
`
	out, err := signManifests(context.Background(), []manifest{{"m.yaml", []byte(doc)}}, keyFile, digest)
	if err != nil {
		t.Fatalf("signManifests: %v", err)
	}
	objs, err := api.Decode(out[0].data)
	if err != nil {
		t.Fatal(err)
	}
	app, job := objs[0].(*api.App), objs[1].(*api.Job)
	if want := "shoal.local/payments/api:v3@" + d; app.Spec.Image != want {
		t.Errorf("signed App's image %q, want %q", app.Spec.Image, want)
	}
	if job.Spec.Image != "nginx:1.27@"+d || len(asked) != 1 {
		t.Errorf("signed Job's image %q (asked the server about %v), want it as written and only shoal.local asked about", job.Spec.Image, asked)
	}
	for _, c := range []struct {
		t  *api.Template
		ns string
	}{{&app.Spec.Template, "payments"}, {&job.Spec.Template, "default"}} {
		if err := api.VerifySignature(c.t, c.ns, []string{key}); err != nil {
			t.Errorf("%s in %s: %v", c.t.Image, c.ns, err)
		}
		if err := api.VerifySignature(c.t, "other", nil); !errors.Is(err, api.ErrBadSignature) {
			t.Errorf("%s replayed in another namespace: %v, want it refused", c.t.Image, err)
		}
	}

	_, err = signManifests(context.Background(), []manifest{{"m.yaml", []byte(strings.Replace(doc, "payments/api:v3", "nope:v9", 1))}}, keyFile, digest)
	if err == nil || !strings.Contains(err.Error(), `m.yaml: App "web": --sign-key pins the image to a digest before signing: shoal.local/nope:v9 is not in`) {
		t.Errorf("an image the server does not have: %v", err)
	}
}

// writeSigningKey writes a new owner key as `shoal key create` does and
// returns its file.
func writeSigningKey(t *testing.T) string {
	t.Helper()
	priv, err := pki.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := pki.EncodeSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "owner.key")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// TestSignManifestsErrors: every refusal names what was wrong and where:
// the key file, or the manifest, its document and its field.
func TestSignManifestsErrors(t *testing.T) {
	keyFile := writeSigningKey(t)
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const ns = "apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: a}\n"
	noDigest := func(context.Context, string, string) (string, error) { return "", errors.New("not asked") }
	for _, tc := range []struct {
		name, key, doc string
		want           []string // substrings of the error, in order
	}{
		{"a missing key file", filepath.Join(t.TempDir(), "none.key"), ns, []string{"--sign-key: ", "none.key", "no such file"}},
		{"a file that is not a key", garbage, ns, []string{"--sign-key " + garbage + ": "}},
		{"an unknown field in the second document", keyFile, ns + "---\napiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec: {image: x, replicaz: 2}\n",
			[]string{"m.yaml: ", "document 2", "spec.replicaz: unknown field"}},
		{"a bad quantity in the first document", keyFile, "apiVersion: shoal/v1\nkind: App\nmetadata: {name: web}\nspec: {image: x, resources: {cpu: lots}}\n",
			[]string{"m.yaml: ", "document 1", "spec.resources.cpu", "lots"}},
		{"YAML that does not parse", keyFile, ns + "---\nkind: [App\n", []string{"m.yaml: ", "document 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signManifests(context.Background(), []manifest{{"m.yaml", []byte(tc.doc)}}, tc.key, noDigest)
			if err == nil {
				t.Fatalf("signManifests succeeded, want an error with %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q: want %q in it (all of %q, in order)", msg, w, tc.want)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

// TestSignManifestsKeepsEveryDocument: a manifest of several documents
// comes back with all of them, in order, and only Apps and Jobs signed.
func TestSignManifestsKeepsEveryDocument(t *testing.T) {
	doc := `apiVersion: shoal/v1
kind: Namespace
metadata: {name: shop}
---
# a comment and an empty document are skipped
---
apiVersion: shoal/v1
kind: App
metadata: {name: web, namespace: shop}
spec: {image: "nginx:1.27"}
---
apiVersion: shoal/v1
kind: Secret
metadata: {name: db, namespace: shop}
spec: {data: {password: hunter2}}
`
	out, err := signManifests(context.Background(), []manifest{{"a.yaml", []byte(doc)}, {"b.yaml", []byte(doc)}}, writeSigningKey(t), nil)
	if err != nil {
		t.Fatalf("signManifests: %v", err)
	}
	if len(out) != 2 || out[0].name != "a.yaml" || out[1].name != "b.yaml" {
		t.Fatalf("signManifests returned %d manifests %v, want a.yaml and b.yaml", len(out), out)
	}
	objs, err := api.Decode(out[1].data)
	if err != nil {
		t.Fatalf("the signed manifest does not decode: %v\n%s", err, out[1].data)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, string(o.GetTypeMeta().Kind)+"/"+o.GetMeta().Name)
	}
	if got, want := strings.Join(kinds, " "), "Namespace/shop App/web Secret/db"; got != want {
		t.Fatalf("signed documents %q, want %q", got, want)
	}
	if app := objs[1].(*api.App); app.Spec.Signature == nil || app.Spec.Signature.Namespace != "shop" {
		t.Errorf("the App's signature %+v, want one for namespace shop", app.Spec.Signature)
	}
}

func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	single := write("one.yaml", "one")
	write("d/b.yml", "b")
	write("d/a.yaml", "a")
	write("d/c.json", "c")
	write("d/notes.txt", "not a manifest")
	write("d/sub.yaml/inner.yaml", "a directory named like a manifest is not read")

	names := func(ms []manifest) string {
		var s []string
		for _, m := range ms {
			s = append(s, strings.TrimPrefix(m.name, dir+"/")+"="+string(m.data))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name  string
		paths []string
		stdin string
		want  string
	}{
		{"a file", []string{single}, "", "one.yaml=one"},
		{"a directory: its manifests by name, nothing else", []string{filepath.Join(dir, "d")}, "", "d/a.yaml=a d/b.yml=b d/c.json=c"},
		{"stdin", []string{"-"}, "from stdin", "stdin=from stdin"},
		{"several, in the order given", []string{"-", single, filepath.Join(dir, "d")}, "s", "stdin=s one.yaml=one d/a.yaml=a d/b.yml=b d/c.json=c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := readManifests(tc.paths, strings.NewReader(tc.stdin))
			if err != nil {
				t.Fatalf("readManifests(%v): %v", tc.paths, err)
			}
			if got := names(ms); got != tc.want {
				t.Fatalf("readManifests(%v) = %q, want %q", tc.paths, got, tc.want)
			}
		})
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := readManifests([]string{single, missing}, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing file: %v, want an error naming %s", err, missing)
	}
}

func TestPrintApplied(t *testing.T) {
	r := api.ApplyResult{Kind: api.KindApp, Name: "web", Action: api.ApplyConfigured, Diff: []string{"spec.replicas: 2 → 3"}}
	for _, tc := range []struct {
		dryRun bool
		want   string
	}{
		{false, "app/web configured\n  spec.replicas: 2 → 3\n"},
		{true, "app/web configured (dry run)\n  spec.replicas: 2 → 3\n"},
	} {
		var b strings.Builder
		printApplied(&b, r, tc.dryRun)
		if b.String() != tc.want {
			t.Errorf("printApplied(dryRun=%v) = %q, want %q", tc.dryRun, b.String(), tc.want)
		}
	}
}
