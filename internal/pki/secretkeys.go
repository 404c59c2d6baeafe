package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"
)

// SecretKeys are the AES-256 keys that encrypt Secrets at rest, kept on
// the servers only (a file, 0600). New data is sealed with the current
// key; every key in the file still opens what it sealed, so a rotation can
// re-encrypt at its own pace.
type SecretKeys struct {
	mu   sync.Mutex
	path string
	f    secretKeyFile
}

type secretKeyFile struct {
	Current string            `json:"current"`
	Keys    map[string]string `json:"keys"` // id -> base64 of 32 bytes
}

// LoadOrCreateSecretKeys reads the key file at path, or creates it with
// one new key.
func LoadOrCreateSecretKeys(path string) (*SecretKeys, error) {
	k := &SecretKeys{path: path}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &k.f); err != nil {
			return nil, fmt.Errorf("secret keys %s: %w", path, err)
		}
		if _, err := k.keyLocked(k.f.Current); err != nil {
			return nil, fmt.Errorf("secret keys %s: %w", path, err)
		}
		return k, nil
	case errors.Is(err, os.ErrNotExist):
		k.f.Keys = map[string]string{}
		if _, err := k.Rotate(); err != nil {
			return nil, err
		}
		return k, nil
	default:
		return nil, fmt.Errorf("secret keys: %w", err)
	}
}

// Current is the id of the key new data is sealed with.
func (k *SecretKeys) Current() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Current
}

// Rotate adds a new key, makes it current and saves the file; the old keys
// stay, to open what they sealed.
func (k *SecretKeys) Rotate() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	id := time.Now().UTC().Format("20060102T150405") + "-" + randomHex(4)
	k.f.Keys[id] = base64.StdEncoding.EncodeToString(key)
	prev := k.f.Current
	k.f.Current = id
	b, _ := json.MarshalIndent(k.f, "", "  ")
	if err := writeFile(k.path, b, 0o600); err != nil {
		delete(k.f.Keys, id)
		k.f.Current = prev
		return "", err
	}
	return id, nil
}

func (k *SecretKeys) keyLocked(id string) (cipher.AEAD, error) {
	enc, ok := k.f.Keys[id]
	if !ok {
		return nil, fmt.Errorf("no secret key %q", id)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("secret key %q is not 32 bytes of base64", id)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plain with the current key (AES-256-GCM, a random nonce),
// bound to aad (what it belongs to: a ciphertext moved to another object
// does not open). It returns the key id and base64(nonce | ciphertext).
func (k *SecretKeys) Seal(plain, aad []byte) (string, string, error) {
	k.mu.Lock()
	id := k.f.Current
	aead, err := k.keyLocked(id)
	k.mu.Unlock()
	if err != nil {
		return "", "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", err
	}
	return id, base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, aad)), nil
}

// Open decrypts what Seal returned.
func (k *SecretKeys) Open(id, blob string, aad []byte) ([]byte, error) {
	k.mu.Lock()
	aead, err := k.keyLocked(id)
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(blob)
	if err != nil || len(b) < aead.NonceSize() {
		return nil, errors.New("sealed data is not nonce and ciphertext in base64")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("sealed data does not open with its key (corrupt, or moved from another object)")
	}
	return plain, nil
}

// Export is the whole key set, to hand to another server of the cluster
// (over TLS, at its join; or sealed, through the store).
func (k *SecretKeys) Export() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, _ := json.Marshal(k.f)
	return b
}

// Merge adds the keys of an exported set that this one lacks and takes
// its current key, when it has one this set did not know or it is newer,
// and saves the file. It says whether anything changed.
func (k *SecretKeys) Merge(exported []byte) (bool, error) {
	var in secretKeyFile
	if err := json.Unmarshal(exported, &in); err != nil {
		return false, fmt.Errorf("secret keys: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	prev := secretKeyFile{Current: k.f.Current, Keys: maps.Clone(k.f.Keys)}
	changed := false
	for id, v := range in.Keys {
		if _, ok := k.f.Keys[id]; !ok {
			k.f.Keys[id] = v
			changed = true
		}
	}
	// Key ids begin with their creation time, so the newest sorts last.
	if _, ok := k.f.Keys[in.Current]; ok && in.Current > k.f.Current {
		k.f.Current = in.Current
		changed = true
	}
	if _, err := k.keyLocked(k.f.Current); err != nil {
		k.f = prev
		return false, fmt.Errorf("secret keys: %w", err)
	}
	if !changed {
		return false, nil
	}
	b, _ := json.MarshalIndent(k.f, "", "  ")
	if err := writeFile(k.path, b, 0o600); err != nil {
		k.f = prev
		return false, err
	}
	return true, nil
}

// InstallSecretKeys writes an exported key set, received from the cluster,
// to path (0600) and loads it.
func InstallSecretKeys(path string, exported []byte) (*SecretKeys, error) {
	k := &SecretKeys{path: path}
	if err := json.Unmarshal(exported, &k.f); err != nil {
		return nil, fmt.Errorf("secret keys: %w", err)
	}
	if _, err := k.keyLocked(k.f.Current); err != nil {
		return nil, fmt.Errorf("secret keys: %w", err)
	}
	b, _ := json.MarshalIndent(k.f, "", "  ")
	if err := writeFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// Covers says whether an exported set holds every key of this one.
func (k *SecretKeys) Covers(exported []byte) bool {
	var in secretKeyFile
	if json.Unmarshal(exported, &in) != nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id := range k.f.Keys {
		if _, ok := in.Keys[id]; !ok {
			return false
		}
	}
	return true
}
