package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func signed(t *testing.T, tmpl Template) (Template, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := "ed25519:" + base64.StdEncoding.EncodeToString(pub)
	tmpl.Signature = &Signature{Key: key, Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, SignedBytes(&tmpl)))}
	return tmpl, key
}

func TestVerifySignature(t *testing.T) {
	base := Template{Image: "shoal.local/hello:v1", Env: []EnvVar{{Name: "A", Value: "1"}}}
	good, key := signed(t, base)
	_, other := signed(t, base)

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
	badValue.Signature = &Signature{Key: key, Value: "bm90IGEgc2lnbmF0dXJl"}

	for _, tc := range []struct {
		name string
		t    Template
		keys []string
		want string // "" means it verifies
	}{
		{"signed", good, nil, ""},
		{"signed by a required key", good, []string{other, key}, ""},
		{"restarted: restartedAt is not signed", restarted, []string{key}, ""},
		{"defaults filled by the server", defaulted, []string{key}, ""},
		{"unsigned, nothing required", base, nil, ""},
		{"unsigned, a key required", base, []string{key}, "not signed"},
		{"another image after signing", tampered, nil, "signature does not match spec"},
		{"another env after signing", tamperedEnv, []string{key}, "signature does not match spec"},
		{"a signature that is not one", badValue, nil, "signature does not match spec"},
		{"signed by a key not required", good, []string{other}, "not a required key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(&tc.t, tc.keys)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("VerifySignature: %v, want it to verify", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("VerifySignature: %v, want %q", err, tc.want)
			}
		})
	}
	// SignedBytes leaves the template alone.
	before := string(SignedBytes(&good))
	if good.Signature == nil || before != string(SignedBytes(&good)) {
		t.Error("SignedBytes changed its template")
	}
}
