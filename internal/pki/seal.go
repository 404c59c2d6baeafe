package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
)

// A CA key may be sealed by a passphrase: the PEM block "SHOAL SEALED
// PRIVATE KEY" holds a random salt and nonce (headers) and the PKCS #8 key
// encrypted with AES-256-GCM under PBKDF2-SHA256 of the passphrase.

const (
	sealedKeyType = "SHOAL SEALED PRIVATE KEY"
	sealRounds    = 600_000
)

// ErrSealed is a sealed key read without a passphrase.
var ErrSealed = errors.New("the key is sealed by a passphrase")

func sealKey(keyPEM, passphrase []byte) ([]byte, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := passphraseAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{
		Type:    sealedKeyType,
		Headers: map[string]string{"Salt": fmt.Sprintf("%x", salt), "Nonce": fmt.Sprintf("%x", nonce)},
		Bytes:   aead.Seal(nil, nonce, block.Bytes, []byte(sealedKeyType)),
	}), nil
}

// openKey returns keyPEM as a plain PEM key, opening it with passphrase
// when it is sealed.
func openKey(keyPEM, passphrase []byte) ([]byte, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != sealedKeyType {
		return keyPEM, nil
	}
	if len(passphrase) == 0 {
		return nil, ErrSealed
	}
	var salt, nonce []byte
	if _, err := fmt.Sscanf(block.Headers["Salt"], "%x", &salt); err != nil {
		return nil, errors.New("sealed key: no salt")
	}
	if _, err := fmt.Sscanf(block.Headers["Nonce"], "%x", &nonce); err != nil {
		return nil, errors.New("sealed key: no nonce")
	}
	aead, err := passphraseAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	if len(nonce) != aead.NonceSize() {
		return nil, errors.New("sealed key: bad nonce")
	}
	der, err := aead.Open(nil, nonce, block.Bytes, []byte(sealedKeyType))
	if err != nil {
		return nil, errors.New("the passphrase does not open the sealed key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func passphraseAEAD(passphrase, salt []byte) (cipher.AEAD, error) {
	key, err := pbkdf2.Key(sha256.New, string(passphrase), salt, sealRounds, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
