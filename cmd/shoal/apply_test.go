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
