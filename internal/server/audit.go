package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

// AuditRecord is one line of the audit log: a write (anything but GET and
// HEAD), a read of secret values (verb "reveal"), or an exec session (verb
// "exec"), who asked, and how it ended. Bodies are not recorded: they may
// hold secret values.
type AuditRecord struct {
	Time time.Time `json:"time"`
	// Verb is what the request did: create, update, delete, scale, … for
	// writes, "reveal" for a read of secret values, "exec" for a session.
	Verb   string   `json:"verb"`
	Who    string   `json:"who"`
	Groups []string `json:"groups,omitempty"`
	// Token is the id of the bearer token the request carried, if any.
	Token  string `json:"token,omitempty"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	// Namespace and Name are the object the path names: the Secret
	// revealed (no name: every Secret of the namespace), the Instance
	// exec'd into.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Command is an exec session's argv.
	Command []string `json:"command,omitempty"`
	// Phase is "start" on the line an exec session writes when it begins
	// and "end" on the one it writes when it is over; Started, Duration
	// and ExitCode (when the command's exit was seen) or Error (what the
	// agent reported instead) are on the end line.
	Phase    string     `json:"phase,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Duration string     `json:"duration,omitempty"`
	ExitCode *int32     `json:"exitCode,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Code is the HTTP status: 101 for an exec session that began.
	Code int    `json:"code"`
	From string `json:"from"`
}

// auditLog appends JSON lines to a writer, one at a time.
type auditLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// auditKey carries the *AuditRecord the guard writes when a request ends,
// for handlers that add to it (exec).
type auditKey struct{}

// auditVerb is the verb an audit line names for r, or "" when r is not
// audited: reads are not, except reads of secret values.
func auditVerb(r *http.Request) string {
	t, err := parseTarget(r.URL.Path)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// A watch shows Secrets redacted whatever it asks (watch.go).
		if err == nil && t.kind.Kind == api.KindSecret && t.sub == "" && r.URL.Query().Get("reveal") != "" && r.URL.Query().Get("watch") == "" {
			return "reveal"
		}
		return ""
	}
	if err != nil {
		return strings.ToLower(r.Method) // join, apply, images, …: the path says which
	}
	return verbOf(r, t)
}

// auditRecord is the line r would write, without its result.
func auditRecord(r *http.Request, id pki.Identity, verb string) *AuditRecord {
	who := id.Name
	if who == "" {
		who = "anonymous"
	}
	rec := &AuditRecord{Verb: verb, Who: who, Groups: id.Groups, Token: id.Token, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, From: r.RemoteAddr}
	if t, err := parseTarget(r.URL.Path); err == nil {
		rec.Namespace, rec.Name = t.ns, t.name
	}
	if verb == "exec" {
		rec.Command = r.URL.Query()["cmd"]
	}
	return rec
}

// audit writes the line of r with result code.
func (s *Server) audit(r *http.Request, id pki.Identity, code int) {
	rec := auditRecord(r, id, auditVerb(r))
	rec.Code = code
	s.writeAudit(rec)
}

// writeAudit appends rec, stamped with the time now.
func (s *Server) writeAudit(rec *AuditRecord) {
	if s.auditLog == nil {
		return
	}
	out := *rec
	out.Time = time.Now().UTC()
	a := s.auditLog
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enc.Encode(out); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

// auditOf is the line the guard writes when ctx's request ends, for a
// handler to add to; nil without a guard.
func auditOf(ctx context.Context) *AuditRecord {
	rec, _ := ctx.Value(auditKey{}).(*AuditRecord)
	return rec
}
