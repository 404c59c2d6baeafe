package api

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the only apiVersion this server speaks.
const Version = "shoal/v1"

// DefaultNamespace always exists and is used when a manifest names none.
const DefaultNamespace = "default"

// Kind names an object type as it appears in manifests.
type Kind string

// The kinds shoal stores.
const (
	KindApp       Kind = "App"
	KindInstance  Kind = "Instance"
	KindNode      Kind = "Node"
	KindNamespace Kind = "Namespace"
	KindEvent     Kind = "Event"
	KindToken     Kind = "Token"
	KindSecret    Kind = "Secret"
	KindUser      Kind = "User"
	KindJob       Kind = "Job"
)

// TypeMeta is the apiVersion/kind pair at the top of every object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       Kind   `json:"kind"`
}

// ObjectMeta is the metadata every object carries. UID, Revision and
// CreatedAt are set by the server; a client's values for them are ignored on
// create and, for Revision, used as the compare-and-swap guard on update.
type ObjectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	UID       string            `json:"uid,omitempty"`
	Revision  int64             `json:"revision,omitempty"`
	CreatedAt time.Time         `json:"createdAt,omitzero"`
	// DeletedAt is set when the object is being torn down gracefully (an
	// Instance whose container is stopping); the owner removes the object
	// once the teardown is done.
	DeletedAt time.Time `json:"deletedAt,omitzero"`
}

// Object is implemented by every stored kind.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetMeta() *ObjectMeta
}

// GetTypeMeta returns the object's apiVersion and kind.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// KindInfo describes how a kind is addressed.
type KindInfo struct {
	Kind       Kind
	Plural     string // URL and store path segment: "apps"
	Namespaced bool
	New        func() Object
}

var kinds = []KindInfo{
	{KindApp, "apps", true, func() Object { return &App{} }},
	{KindInstance, "instances", true, func() Object { return &Instance{} }},
	{KindNode, "nodes", false, func() Object { return &Node{} }},
	{KindNamespace, "namespaces", false, func() Object { return &Namespace{} }},
	{KindEvent, "events", true, func() Object { return &Event{} }},
	{KindToken, "tokens", false, func() Object { return &Token{} }},
	{KindSecret, "secrets", true, func() Object { return &Secret{} }},
	{KindUser, "users", false, func() Object { return &User{} }},
	{KindJob, "jobs", true, func() Object { return &Job{} }},
}

// Kinds lists every kind the API serves.
func Kinds() []KindInfo { return kinds }

// LookupKind finds a kind by its Kind name, plural, singular or short form,
// case-insensitively ("App", "apps", "app").
func LookupKind(name string) (KindInfo, bool) {
	for _, k := range kinds {
		if equalFold(name, string(k.Kind)) || equalFold(name, k.Plural) {
			return k, true
		}
	}
	return KindInfo{}, false
}

// MustKind returns the KindInfo of a known kind and panics otherwise; it is
// for package-level wiring with constant kinds.
func MustKind(k Kind) KindInfo {
	ki, ok := LookupKind(string(k))
	if !ok {
		panic("api: unknown kind " + string(k))
	}
	return ki
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Namespace is a tenant boundary for names, and for what its Apps may do.
type Namespace struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     NamespaceSpec `json:"spec,omitzero"`
}

// NamespaceSpec holds a namespace's policy and quota.
type NamespaceSpec struct {
	Policy NamespacePolicy `json:"policy,omitzero"`
	Quota  Quota           `json:"quota,omitzero"`
}

// NamespacePolicy loosens the defaults for the namespace's Apps; the zero
// policy allows nothing beyond them.
type NamespacePolicy struct {
	// AllowPrivileged lets Apps run privileged containers and add
	// capabilities beyond DefaultCapabilities.
	AllowPrivileged bool `json:"allowPrivileged,omitempty"`
	// RequireSignedBy, when set, admits only Apps signed by one of these
	// keys ("ed25519:BASE64"): the server refuses others, and every agent
	// checks the signature again before it starts an instance.
	RequireSignedBy []string `json:"requireSignedBy,omitempty"`
	// AllowHostNamespaces lets Apps set hostPID and hostIPC.
	AllowHostNamespaces bool `json:"allowHostNamespaces,omitempty"`
	// AllowHostPaths are the node paths (and what is below them) Apps may
	// mount as volumes; "/" allows any. None by default.
	AllowHostPaths []string `json:"allowHostPaths,omitempty"`
	// Isolation is IsolationNamespace to cut the namespace's containers
	// off from every other namespace's, on every node (both ways, services
	// included); "" (the default) lets containers of all namespaces reach
	// each other.
	Isolation string `json:"isolation,omitempty"`
}

// IsolationNamespace is the NamespacePolicy.Isolation that separates a
// namespace's containers from other namespaces'.
const IsolationNamespace = "namespace"

// GetMeta returns the object's metadata.
func (o *Namespace) GetMeta() *ObjectMeta { return &o.Metadata }

// Event records something that happened to an object, for `shoal describe`.
// Events expire from the store after an hour.
type Event struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	// Object is "Kind/name" of the object the event is about.
	Object  string    `json:"object"`
	Type    string    `json:"type"` // Normal or Warning
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	Source  string    `json:"source,omitempty"` // component that reported it
}

// GetMeta returns the object's metadata.
func (o *Event) GetMeta() *ObjectMeta { return &o.Metadata }

// EventTTL is how long the store keeps an Event.
const EventTTL = time.Hour

// NewEvent builds an Event about obj, named after it and the time.
func NewEvent(obj Object, typ, reason, msg, source string) *Event {
	m := obj.GetMeta()
	now := time.Now().UTC()
	ns := m.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return &Event{
		TypeMeta: TypeMeta{APIVersion: Version, Kind: KindEvent},
		Metadata: ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", strings.ToLower(m.Name), now.UnixNano()),
			Namespace: ns,
		},
		Object: string(obj.GetTypeMeta().Kind) + "/" + m.Name,
		Type:   typ,
		// What a container or a program said may hold terminal
		// controls; validation refuses them (text.go).
		Reason:  EscapeTerminal(reason),
		Message: clipMessage(EscapeTerminalText(msg)),
		Time:    now,
		Source:  source,
	}
}

// CopyStatus copies from's status into to, both of the same kind; kinds
// without a status are left alone, and so are Secrets, whose version the
// server sets as it seals them. Users declare specs, the system owns
// status: writes of a spec keep the stored status with this.
func CopyStatus(from, to Object) {
	switch o := to.(type) {
	case *App:
		o.Status = from.(*App).Status
	case *Instance:
		o.Status = from.(*Instance).Status
	case *Node:
		o.Status = from.(*Node).Status
	case *Job:
		o.Status = from.(*Job).Status
	}
}

// clipMessage cuts an event's message to MaxEventMessageBytes (on a rune
// boundary), so a long error still makes an Event that validates.
func clipMessage(msg string) string {
	if len(msg) <= MaxEventMessageBytes {
		return msg
	}
	const more = " …"
	cut := MaxEventMessageBytes - len(more)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + more
}
