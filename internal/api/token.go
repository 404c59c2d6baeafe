package api

import "time"

// Token is a bearer secret: it lets a machine join the cluster (role
// agent or server), or a service account call the API as a User (role
// user). `shoal token create` makes the secret on the admin's side and
// stores only its hash here, under the token's id. Deleting the Token
// revokes it; so does deleting its User.
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
	// TokenRoleUser authenticates API requests as spec.user
	// (Authorization: Bearer TOKEN).
	TokenRoleUser TokenRole = "user"
)

// TokenSpec is what a token allows, and until when.
type TokenSpec struct {
	Role      TokenRole `json:"role"`
	ExpiresAt time.Time `json:"expiresAt"`
	// SecretHash is the hex SHA-256 of the token's secret.
	SecretHash  string `json:"secretHash"`
	Description string `json:"description,omitempty"`
	// User is the User a user token acts as. UserUID is set by the
	// server when the token is stored: a User deleted and created again
	// under the same name does not inherit the old one's tokens.
	User    string `json:"user,omitempty"`
	UserUID string `json:"userUID,omitempty"`
	// UsesLeft is how many more joins a join token (agent, server)
	// allows; the server counts it down at each join, in the transaction
	// that admits the machine. Unset is one: a join token is single-use
	// unless made with `shoal token create --uses N`.
	UsesLeft *int32 `json:"usesLeft,omitempty"`
}

// MaxTokenUses bounds a join token's uses.
const MaxTokenUses = 10000

// JoinsLeft is how many more joins the token allows (unset: one).
func (o *Token) JoinsLeft() int32 {
	if o.Spec.UsesLeft == nil {
		return 1
	}
	return *o.Spec.UsesLeft
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
