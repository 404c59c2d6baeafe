package pki

// FuzzParseToken and FuzzParseCertificateAndKey are in pki_test.go.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

// FuzzParsePublicKey: joins and certificate requests carry a PEM key from
// their sender; the parser never panics and accepts only P-256 and
// Ed25519 keys, which encode and parse back to themselves.
func FuzzParsePublicKey(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, pub := range []any{ec.Public(), p384.Public(), edPub} {
		b, err := EncodePublicKey(pub)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParsePublicKey(b)
		if err != nil {
			return
		}
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				t.Fatalf("accepted a %s key", k.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			t.Fatalf("accepted a %T", pub)
		}
		out, err := EncodePublicKey(pub)
		if err != nil {
			t.Fatalf("EncodePublicKey of an accepted key: %v", err)
		}
		again, err := ParsePublicKey(out)
		if err != nil || !publicKeysEqual(again, pub) {
			t.Fatalf("the key does not round-trip: %v", err)
		}
	})
}
