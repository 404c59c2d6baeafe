package server

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

// The bodies anyone (join) or any deployer (scale) sends are read by
// these; the objects they lead to pass api.Validate.

func joinSeeds(f *testing.F) {
	key, err := pki.NewKey()
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := pki.EncodePublicKey(key.Public())
	tok := pki.Token{CAFingerprint: strings.Repeat("ab", 32), ID: "0123456789abcdef", Secret: "0123456789abcdef0123456789abcdef"}
	for _, req := range []api.JoinRequest{
		{Token: tok.String(), Node: "node-1", PublicKey: string(pub)},
		{Token: tok.String(), Node: "node-2", Labels: map[string]string{"disk": "ssd"}, Subnet: "10.88.3.0/24", PublicKey: string(pub),
			Accepts: api.NodeAccepts{Namespaces: []string{"web"}}},
		{Node: "Bad_Name", PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
	} {
		b, _ := json.Marshal(req)
		f.Add(b)
	}
	f.Add([]byte(`{"token": 1}`))
	f.Add([]byte(`{"labels": {"a": null}, "accepts": {"namespaces": [null]}}`))
	f.Add([]byte(``))
}

// FuzzJoinRequest: a join body never panics the server; what it refuses
// is a 400 or a validation error, and a Node it accepts is valid.
func FuzzJoinRequest(f *testing.F) {
	joinSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeJoinRequest(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("decodeJoinRequest: %v is not a bad request", err)
			}
			return
		}
		_, _ = pki.ParseToken(req.Token) // checkToken's first step
		node, pub, err := joinNode(req)
		if err != nil {
			if !errors.Is(err, errBadRequest) && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("joinNode: %v is neither a bad request nor invalid", err)
			}
			return
		}
		if pub == nil {
			t.Fatal("joinNode accepted a request without a key")
		}
		if err := api.Validate(node); err != nil {
			t.Fatalf("joinNode returned an invalid node: %v", err)
		}
	})
}

// FuzzScale: a scale body never panics; the App it leads to is valid or
// refused as invalid.
func FuzzScale(f *testing.F) {
	for _, s := range []string{`{"replicas": 3}`, `{"replicas": 0}`, `{"replicas": -1}`, `{"replicas": 2147483648}`, `{"replicas": 1e3}`, `{"replicas": "3"}`, `[]`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sc, err := decodeScale(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("decodeScale: %v is not a bad request", err)
			}
			return
		}
		app := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: api.AppSpec{Template: api.Template{Image: "nginx"}}}
		api.SetDefaults(app)
		n := sc.Replicas
		app.Spec.Replicas = &n
		if err := api.Validate(app); err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Validate after scale %d: %v is not invalid", n, err)
		}
		if err := api.Validate(app); err == nil && n < 0 {
			t.Fatalf("scale to %d accepted", n)
		}
	})
}
