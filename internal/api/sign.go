package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadSignature is a signature that does not verify against the spec it
// came with: the spec was changed after it was signed.
var ErrBadSignature = errors.New("signature does not match spec")

// VerifySignature checks a template's signature, if it has one, and, when
// keys are given, that it is by one of them ("ed25519:BASE64"). The error
// says which check failed. The server checks it against its namespace's
// policy; every agent checks it again, against its owner's keys too,
// before it starts anything.
func VerifySignature(t *Template, keys []string) error {
	sig := t.Signature
	if sig == nil {
		if len(keys) > 0 {
			return errors.New("not signed, and only specs signed by a required key may run (shoal apply --sign-key)")
		}
		return nil
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig.Key, "ed25519:"))
	if !strings.HasPrefix(sig.Key, "ed25519:") || err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("signature key %q is not ed25519:BASE64: %w", clipped(sig.Key), ErrBadSignature)
	}
	val, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil || len(val) != ed25519.SignatureSize || !ed25519.Verify(pub, SignedBytes(t), val) {
		return ErrBadSignature
	}
	if len(keys) > 0 && !slices.Contains(keys, sig.Key) {
		return fmt.Errorf("signed by %s, which is not a required key", clipped(sig.Key))
	}
	return nil
}
