package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// App owners sign what they run with an Ed25519 key of their own, which no
// server holds. A public key is written "ed25519:BASE64", so it fits on a
// flag and in YAML; a signature is base64.

// verifyKeyPrefix starts every public key in text.
const verifyKeyPrefix = "ed25519:"

// NewSigningKey makes an Ed25519 key pair.
func NewSigningKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// EncodeSigningKey PEM-encodes a signing key (PKCS #8).
func EncodeSigningKey(k ed25519.PrivateKey) ([]byte, error) { return EncodeKey(k) }

// ParseSigningKey reads a PEM Ed25519 private key.
func ParseSigningKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key (make one with `shoal key create NAME`)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 signing key", k)
	}
	return priv, nil
}

// VerifyKeyString writes a public key as "ed25519:BASE64".
func VerifyKeyString(pub ed25519.PublicKey) string {
	return verifyKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParseVerifyKey reads "ed25519:BASE64".
func ParseVerifyKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), verifyKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q: want ed25519:BASE64 (as `shoal key create` prints)", clip(s))
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: not %d bytes of base64", clip(s), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Sign signs msg and returns the signature in base64 (api.VerifySignature
// checks it).
func Sign(priv ed25519.PrivateKey, msg []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
