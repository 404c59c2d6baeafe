package api

// User is a person or a service account. It authenticates with a client
// certificate issued for it (`shoal user create`), which names this object:
// deleting the User revokes every certificate issued for it.
type User struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     UserSpec   `json:"spec"`
}

// GetMeta returns the object's metadata.
func (o *User) GetMeta() *ObjectMeta { return &o.Metadata }

// UserSpec is what a user may do.
type UserSpec struct {
	Roles []RoleBinding `json:"roles,omitempty"`
}

// Role is a set of verbs.
type Role string

// Roles, from least to most.
const (
	// RoleViewer reads a namespace's objects (Secrets redacted) and logs.
	RoleViewer Role = "viewer"
	// RoleDeployer also applies, scales, rolls out and deletes Apps and
	// Secrets.
	RoleDeployer Role = "deployer"
	// RoleAdmin may do anything within its namespace: exec, reveal
	// Secrets, delete instances.
	RoleAdmin Role = "admin"
	// RoleClusterAdmin may do anything, anywhere: nodes, namespaces,
	// tokens, users. It has no namespace.
	RoleClusterAdmin Role = "cluster-admin"
)

// RoleBinding gives a role in one namespace (none for cluster-admin).
type RoleBinding struct {
	Role      Role   `json:"role"`
	Namespace string `json:"namespace,omitempty"`
}
