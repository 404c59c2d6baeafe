package api

import (
	"encoding/json"
	"fmt"
)

// The HTTP API's envelopes, shared by the server that writes them and the
// client that reads them. Objects travel as their own JSON; these wrap them.

// Status is the body of every error response, and the error of a watch's
// ERROR line.
type Status struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// List is the body of a list response: the objects and the store revision
// to watch from.
type List struct {
	Items    []Object `json:"items"`
	Revision int64    `json:"revision"`
}

// DecodeList reads a list of kind k.
func DecodeList(k KindInfo, data []byte) (*List, error) {
	var raw struct {
		Items    []json.RawMessage `json:"items"`
		Revision int64             `json:"revision"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("list of %s: %w", k.Plural, err)
	}
	out := &List{Items: make([]Object, len(raw.Items)), Revision: raw.Revision}
	for i, b := range raw.Items {
		out.Items[i] = k.New()
		if err := json.Unmarshal(b, out.Items[i]); err != nil {
			return nil, fmt.Errorf("list of %s, item %d: %w", k.Plural, i, err)
		}
	}
	return out, nil
}

// WatchEventType says what a watch line reports.
type WatchEventType string

// Watch event types.
const (
	WatchAdded    WatchEventType = "ADDED"
	WatchModified WatchEventType = "MODIFIED"
	WatchDeleted  WatchEventType = "DELETED"
	// WatchBookmark carries only the latest revision, so an idle watcher
	// can resume from it.
	WatchBookmark WatchEventType = "BOOKMARK"
	// WatchError ends a watch; Error.Code 410 means: list again.
	WatchError WatchEventType = "ERROR"
)

// WatchEvent is one line of a watch stream. For WatchDeleted, Object is
// the last stored state and Revision the deletion's.
type WatchEvent struct {
	Type     WatchEventType `json:"type"`
	Object   Object         `json:"object,omitempty"`
	Revision int64          `json:"revision"`
	Error    *Status        `json:"error,omitempty"`
}

// DecodeWatchEvent reads one watch line of kind k.
func DecodeWatchEvent(k KindInfo, line []byte) (WatchEvent, error) {
	var raw struct {
		Type     WatchEventType  `json:"type"`
		Object   json.RawMessage `json:"object"`
		Revision int64           `json:"revision"`
		Error    *Status         `json:"error"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return WatchEvent{}, fmt.Errorf("watch line: %w", err)
	}
	ev := WatchEvent{Type: raw.Type, Revision: raw.Revision, Error: raw.Error}
	if len(raw.Object) > 0 && string(raw.Object) != "null" {
		ev.Object = k.New()
		if err := json.Unmarshal(raw.Object, ev.Object); err != nil {
			return WatchEvent{}, fmt.Errorf("watch line: %w", err)
		}
	}
	return ev, nil
}

// Apply actions: what apply did, or with dry run would do, to an object.
const (
	ApplyCreated    = "created"
	ApplyConfigured = "configured"
	ApplyUnchanged  = "unchanged"
)

// ApplyResult reports what apply did with one document.
type ApplyResult struct {
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Action is ApplyCreated, ApplyConfigured or ApplyUnchanged.
	Action   string `json:"action"`
	Revision int64  `json:"revision"`
	// Diff lists, on a dry run, the fields that would change
	// ("spec.replicas: 3 -> 5").
	Diff []string `json:"diff,omitempty"`
}

// ApplyResponse is the body of a successful apply.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
	// DryRun: nothing was stored.
	DryRun bool `json:"dryRun,omitempty"`
}

// Scale is the body of a scale request.
type Scale struct {
	Replicas int32 `json:"replicas"`
}

// JoinRequest is what a machine sends to POST /api/v1/join: a join token,
// the name it wants, and the public key its certificate is for (its
// private key never leaves it).
type JoinRequest struct {
	Token  string            `json:"token"`
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	// Subnet is the container subnet the node declares (--subnet); empty
	// lets the server assign one.
	Subnet string `json:"subnet,omitempty"`
	// Accepts is what the node's owner lets run on it.
	Accepts   NodeAccepts `json:"accepts,omitzero"`
	PublicKey string      `json:"publicKey"` // PEM
}

// CertificateRequest asks for a new certificate for the caller's identity
// and a (new) public key: POST /api/v1/nodes/NAME/certificate.
type CertificateRequest struct {
	PublicKey string `json:"publicKey"` // PEM
}

// Credentials answer a join or a renewal: the certificate and the CA it
// chains to, both PEM.
type Credentials struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// ServerJoinRequest is what a new server sends to POST
// /api/v1/servers/join: a server token, its name (its etcd member's), and
// where the cluster's other members reach its etcd (none for a cluster on
// an external etcd).
type ServerJoinRequest struct {
	Token   string `json:"token"`
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
}

// ServerJoinResponse is what a new server needs to become one of the
// cluster's: the CA (certificate and key: every server signs), the keys
// that seal Secrets, and the etcd cluster it joins as a learner.
type ServerJoinResponse struct {
	CA         string `json:"ca"`
	CAKey      string `json:"caKey"`
	SecretKeys string `json:"secretKeys"`
	// InitialCluster is etcd's "name=peerURL,…", the new member included.
	InitialCluster string `json:"initialCluster"`
	// MemberID is the new member's id (hex) and ClientURLs are the other
	// members', where it promotes itself once it has caught up.
	MemberID   string   `json:"memberID"`
	ClientURLs []string `json:"clientURLs"`
}

// ServerInfo is one server of the cluster, as GET /api/v1/servers shows
// it: its etcd member, where its API is, and whether it is alive and
// leads the controllers.
type ServerInfo struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
	// PeerURL is where the member's etcd peers reach it: shown to
	// servers only.
	PeerURL string `json:"peerURL,omitempty"`
	// Status is Ready (registered and a voting member), Learner (joining),
	// Unreachable (a member whose server has not checked in lately) or
	// Unstarted (added, never started).
	Status  string `json:"status"`
	Leader  bool   `json:"leader,omitempty"`
	Version string `json:"version,omitempty"`
}

// ServerList is GET /api/v1/servers: every member, and whether the
// answering server sees a quorum.
type ServerList struct {
	Items []ServerInfo `json:"items"`
}
