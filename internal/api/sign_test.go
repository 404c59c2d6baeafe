package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const pinned = "shoal.local/hello:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func signed(t *testing.T, tmpl Template, ns string) (Template, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := "ed25519:" + base64.StdEncoding.EncodeToString(pub)
	tmpl.Signature = &Signature{Key: key, Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, SignedBytes(&tmpl, ns))), Namespace: ns}
	return tmpl, key
}

func TestVerifySignature(t *testing.T) {
	base := Template{Image: pinned, Env: []EnvVar{{Name: "A", Value: "1"}}}
	good, key := signed(t, base, "web")
	_, other := signed(t, base, "web")

	restarted := good
	restarted.RestartedAt = "2026-12-03T00:00:00Z"
	in := &Instance{Spec: InstanceSpec{Template: good}}
	SetDefaults(in)
	defaulted := in.Spec.Template
	if defaulted.RestartPolicy == "" {
		t.Fatal("SetDefaults filled nothing")
	}

	tampered := good
	tampered.Image = "evil.example/miner:latest"
	tamperedEnv := good
	tamperedEnv.Env = []EnvVar{{Name: "A", Value: "2"}}
	badValue := good
	badValue.Signature = &Signature{Key: key, Value: "bm90IGEgc2lnbmF0dXJl", Namespace: "web"}
	// Replayed elsewhere with the namespace field rewritten to match: the
	// signed bytes still name "web".
	relabelled := good
	relabelled.Signature = &Signature{Key: good.Signature.Key, Value: good.Signature.Value, Namespace: "batch"}
	unnamed := good
	unnamed.Signature = &Signature{Key: good.Signature.Key, Value: good.Signature.Value}
	byTag, tagKey := signed(t, Template{Image: "shoal.local/hello:v1"}, "web")

	for _, tc := range []struct {
		name string
		t    Template
		ns   string
		keys []string
		want string // "" means it verifies
		is   error
	}{
		{"signed", good, "web", nil, "", nil},
		{"signed by a required key", good, "web", []string{other, key}, "", nil},
		{"restarted: restartedAt is not signed", restarted, "web", []string{key}, "", nil},
		{"defaults filled by the server", defaulted, "web", []string{key}, "", nil},
		{"unsigned, nothing required", base, "web", nil, "", nil},
		{"unsigned, a key required", base, "web", []string{key}, "not signed", nil},
		{"another image after signing", tampered, "web", nil, "signature does not match spec", ErrBadSignature},
		{"another env after signing", tamperedEnv, "web", []string{key}, "signature does not match spec", ErrBadSignature},
		{"a signature that is not one", badValue, "web", nil, "signature does not match spec", ErrBadSignature},
		{"signed by a key not required", good, "web", []string{other}, "not a required key", nil},
		{"replayed in another namespace", good, "batch", nil, `signed for namespace "web", not "batch"`, ErrBadSignature},
		{"replayed with the namespace field rewritten", relabelled, "batch", nil, "signature does not match spec", ErrBadSignature},
		{"a signature naming no namespace", unnamed, "web", nil, "signed for no namespace", ErrBadSignature},
		{"signed tag, nothing required", byTag, "web", nil, "", nil},
		{"signed tag, a key required", byTag, "web", []string{tagKey}, `"shoal.local/hello:v1" names a tag`, ErrUnpinnedImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(&tc.t, tc.ns, tc.keys)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("VerifySignature: %v, want it to verify", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("VerifySignature: %v, want %q", err, tc.want)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("VerifySignature: %v, want it to wrap %v", err, tc.is)
			}
		})
	}
	// SignedBytes leaves the template alone, and names the namespace.
	before := string(SignedBytes(&good, "web"))
	if good.Signature == nil || before != string(SignedBytes(&good, "web")) {
		t.Error("SignedBytes changed its template")
	}
	if before == string(SignedBytes(&good, "batch")) {
		t.Error("SignedBytes is the same for two namespaces")
	}
}
