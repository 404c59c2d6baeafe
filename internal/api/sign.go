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
// came with: the spec was changed after it was signed, or it was signed
// for another namespace.
var ErrBadSignature = errors.New("signature does not match spec")

// ErrUnpinnedImage is a template that must be signed but names its image
// by tag: a signature over a tag says nothing about what the tag points
// at when a node pulls it.
var ErrUnpinnedImage = errors.New("image not named by digest")

// VerifySignature checks a template's signature, if it has one, for the
// namespace it is in, and, when keys are given, that it is by one of them
// ("ed25519:BASE64") and that the image it signs is named by digest. The
// error says which check failed. The server checks it against its
// namespace's policy; every agent checks it again, against its owner's
// keys too, before it starts anything.
func VerifySignature(t *Template, namespace string, keys []string) error {
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
	if sig.Namespace != namespace {
		if sig.Namespace == "" {
			return fmt.Errorf("signed for no namespace (a signature made before signatures named their namespace); sign it again with shoal apply --sign-key: %w", ErrBadSignature)
		}
		return fmt.Errorf("signed for namespace %q, not %q: a signed template holds only in the namespace it was signed for; sign it again for this one: %w", sig.Namespace, namespace, ErrBadSignature)
	}
	val, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil || len(val) != ed25519.SignatureSize || !ed25519.Verify(pub, SignedBytes(t, namespace), val) {
		return ErrBadSignature
	}
	if len(keys) > 0 && !slices.Contains(keys, sig.Key) {
		return fmt.Errorf("signed by %s, which is not a required key", clipped(sig.Key))
	}
	if len(keys) > 0 && ImageDigest(t.Image) == "" {
		return fmt.Errorf("%q names a tag, which whoever may push to it can move: a signed template must name its image by digest (IMAGE@sha256:…; shoal apply --sign-key pins shoal.local images itself): %w", t.Image, ErrUnpinnedImage)
	}
	return nil
}
