package api

import "time"

// Token lets a machine join the cluster: `shoal token create` makes the
// secret on the admin's side and stores only its hash here, under the
// token's id. Deleting the Token revokes it.
type Token struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     TokenSpec  `json:"spec"`
}

// GetMeta returns the object's metadata.
func (o *Token) GetMeta() *ObjectMeta { return &o.Metadata }

// TokenRole is what a token lets its holder join as.
type TokenRole string

// Token roles.
const (
	TokenRoleAgent  TokenRole = "agent"
	TokenRoleServer TokenRole = "server"
)

// TokenSpec is what a token allows, and until when.
type TokenSpec struct {
	Role      TokenRole `json:"role"`
	ExpiresAt time.Time `json:"expiresAt"`
	// SecretHash is the hex SHA-256 of the token's secret.
	SecretHash  string `json:"secretHash"`
	Description string `json:"description,omitempty"`
}

// NewToken is the stored form of a join token: its id, the hash of its
// secret, its role and when it expires.
func NewToken(id, secretHash string, role TokenRole, expires time.Time, description string) *Token {
	return &Token{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindToken},
		Metadata: ObjectMeta{Name: id},
		Spec:     TokenSpec{Role: role, ExpiresAt: expires.UTC().Truncate(time.Second), SecretHash: secretHash, Description: description},
	}
}
