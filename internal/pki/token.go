package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// tokenPrefix starts every join token; the 1 is the format's version.
const tokenPrefix = "SHOAL1-"

// Token is a parsed join token.
type Token struct {
	// CAFingerprint is the SHA-256 of the cluster CA certificate, hex.
	CAFingerprint string
	// ID names the token (the stored Token object); Secret proves it.
	ID, Secret string
}

// String is the token as users copy it.
func (t Token) String() string {
	return tokenPrefix + t.CAFingerprint + "-" + t.ID + "." + t.Secret
}

// NewToken makes a token for the CA with the given fingerprint: an 8-byte
// id and a 16-byte secret, random, in hex.
func NewToken(caFingerprint string) Token {
	return Token{CAFingerprint: caFingerprint, ID: randomHex(8), Secret: randomHex(16)}
}

// SecretHash is what the server keeps of a token's secret.
func (t Token) SecretHash() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// Matches says, in constant time, whether the token's secret hashes to
// hash.
func (t Token) Matches(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.SecretHash()), []byte(hash)) == 1
}

// ParseToken reads a join token, saying which part is wrong.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("join token: does not start with %s (copy it whole from `shoal token create`)", tokenPrefix)
	}
	fp, rest, ok := strings.Cut(rest, "-")
	if !ok {
		return Token{}, fmt.Errorf("join token: no '-' after the CA fingerprint")
	}
	if !isHex(fp, 64) {
		return Token{}, fmt.Errorf("join token: the CA fingerprint is not 64 hex digits")
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok {
		return Token{}, fmt.Errorf("join token: no '.' between id and secret")
	}
	if !isHex(id, 16) {
		return Token{}, fmt.Errorf("join token: the id is not 16 hex digits")
	}
	if !isHex(secret, 32) {
		return Token{}, fmt.Errorf("join token: the secret is not 32 hex digits")
	}
	return Token{CAFingerprint: fp, ID: id, Secret: secret}, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return hex.EncodeToString(b)
}
