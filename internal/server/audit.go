package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/pki"
)

// AuditRecord is one line of the audit log: a write (anything but GET and
// HEAD), who asked, and how it ended. Bodies are not recorded: they may
// hold secret values.
type AuditRecord struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Groups []string  `json:"groups,omitempty"`
	// Token is the id of the bearer token the request carried, if any.
	Token  string `json:"token,omitempty"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Code   int    `json:"code"`
	From   string `json:"from"`
}

// auditLog appends JSON lines to a writer, one at a time.
type auditLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (s *Server) audit(r *http.Request, id pki.Identity, code int) {
	if s.auditLog == nil {
		return
	}
	who := id.Name
	if who == "" {
		who = "anonymous"
	}
	rec := AuditRecord{Time: time.Now().UTC(), Who: who, Groups: id.Groups, Token: id.Token, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Code: code, From: r.RemoteAddr}
	a := s.auditLog
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enc.Encode(rec); err != nil {
		s.log.Error("audit log", "err", err)
	}
}
