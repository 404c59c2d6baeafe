package api

import (
	"slices"
)

// Secret holds key/values an App's containers get as files or env. The
// server encrypts Data before it reaches the store (Sealed) and shows
// values only to whom may reveal them.
type Secret struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata"`
	Spec     SecretSpec   `json:"spec"`
	Status   SecretStatus `json:"status,omitzero"`
}

// GetMeta returns the object's metadata.
func (o *Secret) GetMeta() *ObjectMeta { return &o.Metadata }

// SecretSpec is the Secret's data, in clear as clients send and reveal it,
// or sealed as the store keeps it.
type SecretSpec struct {
	Data   map[string]string `json:"data,omitempty"`
	Sealed *SealedData       `json:"sealed,omitempty"`
}

// SealedData is Data encrypted by the server (AES-256-GCM under one of the
// servers' keys). Keys are the names in Data, which are not secret.
type SealedData struct {
	KeyID string   `json:"keyID"`
	Value string   `json:"value"`
	Keys  []string `json:"keys"`
}

// SecretStatus counts changes of the data: Apps using the Secret roll when
// it changes.
type SecretStatus struct {
	Version int64 `json:"version,omitempty"`
}

// Redacted is what a secret value shows as to whom may not reveal it.
const Redacted = "<redacted>"

// MaxSecretBytes bounds a Secret's data, keys and values together.
const MaxSecretBytes = 64 << 10

// SecretKeys returns the names in a Secret, sorted, whether it is sealed
// or not.
func (o *Secret) SecretKeys() []string {
	if o.Spec.Sealed != nil {
		return slices.Clone(o.Spec.Sealed.Keys)
	}
	var out []string
	for k := range o.Spec.Data {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// isSecretKey says whether k can be a file name under /run/secrets/NAME.
func isSecretKey(k string) bool {
	if k == "" || k == "." || k == ".." || len(k) > 253 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
