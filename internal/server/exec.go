package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// instanceExec connects a client's exec session to the agent of the node
// that runs the instance: both sides are upgraded connections carrying
// api frames, and the server copies bytes between them. Clients never
// reach an agent themselves.
func (s *Server) instanceExec(w http.ResponseWriter, r *http.Request, t target) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.ExecUpgrade) {
		writeError(w, fmt.Errorf("exec needs the header Upgrade: %s: %w", api.ExecUpgrade, errBadRequest))
		return
	}
	if cmd := r.URL.Query()["cmd"]; len(cmd) == 0 || cmd[0] == "" {
		writeError(w, fmt.Errorf("exec needs a command: ?cmd=: %w", errBadRequest))
		return
	}
	node, err := s.nodeOf(r, t)
	if err != nil {
		writeError(w, err)
		return
	}
	var agent net.Conn
	d := &net.Dialer{Timeout: 5 * time.Second}
	if cfg := s.agentTLS(node.Metadata.Name); cfg != nil {
		agent, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(r.Context(), "tcp", node.Status.Address)
	} else {
		agent, err = d.DialContext(r.Context(), "tcp", node.Status.Address)
	}
	if err != nil {
		writeError(w, fmt.Errorf("reach node %q for exec: %w", node.Metadata.Name, err))
		return
	}
	defer agent.Close()
	u := url.URL{Path: "/exec/" + t.ns + "/" + t.name, RawQuery: r.URL.RawQuery}
	fmt.Fprintf(agent, "POST %s HTTP/1.1\r\nHost: %s\r\nUpgrade: %s\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
		u.RequestURI(), node.Status.Address, api.ExecUpgrade)
	agentR := bufio.NewReader(agent)
	resp, err := http.ReadResponse(agentR, nil)
	if err != nil {
		writeError(w, fmt.Errorf("exec on node %q: %w", node.Metadata.Name, err))
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		code := resp.StatusCode
		writeJSON(w, code, api.Status{Code: code, Reason: http.StatusText(code), Message: strings.TrimSpace(string(b))})
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, err)
		return
	}
	defer client.Close()
	// A hijacked connection outlives the request's context: close both
	// sides when it ends (the caller's identity revoked or expired).
	stop := context.AfterFunc(r.Context(), func() { client.Close(); agent.Close() })
	defer stop()
	_ = client.SetDeadline(time.Time{}) // a session lasts as long as it needs
	_, _ = io.WriteString(client, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+api.ExecUpgrade+"\r\nConnection: Upgrade\r\n\r\n")
	s.log.Info("exec", "instance", t.ns+"/"+t.name, "node", node.Metadata.Name)
	started := time.Now().UTC()
	audit := auditOf(r.Context())
	if audit != nil {
		audit.Code = http.StatusSwitchingProtocols
		audit.Phase = "start"
		s.writeAudit(audit) // a session is on record while it lasts
	}
	// The client's side ending (its stdin, or the client itself) is passed
	// on; the session is over when the agent's side ends.
	go func() { _, _ = io.Copy(agent, buf.Reader); closeWrite(agent) }()
	exit, why := relayFrames(client, agentR)
	if audit != nil {
		// The guard writes the end line when this returns.
		audit.Phase, audit.Started, audit.Duration = "end", &started, time.Since(started).Round(time.Millisecond).String()
		audit.ExitCode, audit.Error = exit, why
	}
}

// relayFrames copies the agent's frames to the client until the session
// ends, and returns the command's exit code when an exit frame said it,
// or the message of an error frame (or of a broken stream) instead.
func relayFrames(client io.Writer, agent io.Reader) (*int32, string) {
	for {
		typ, payload, err := api.ReadFrame(agent)
		if errors.Is(err, io.EOF) {
			return nil, "the session ended without an exit code"
		}
		if err != nil {
			return nil, err.Error()
		}
		if err := api.WriteFrame(client, typ, payload); err != nil {
			return nil, "the client went away: " + err.Error()
		}
		switch typ {
		case api.FrameExit:
			if code, err := api.ParseExit(payload); err == nil {
				return &code, ""
			}
			return nil, "a malformed exit frame"
		case api.FrameError:
			if len(payload) > 512 {
				payload = append(payload[:512:512], "…"...) // the agent's words, bounded
			}
			return nil, string(payload)
		}
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
}

// nodeOf finds the node running the instance t names, with the address
// its agent serves on.
func (s *Server) nodeOf(r *http.Request, t target) (*api.Node, error) {
	obj, err := s.store.Get(r.Context(), t.kind, t.ns, t.name)
	if err != nil {
		return nil, err
	}
	in := obj.(*api.Instance)
	if in.Spec.Node == "" {
		return nil, fmt.Errorf("instance %q is not placed on a node yet: %w", t.name, errBadRequest)
	}
	nobj, err := s.store.Get(r.Context(), api.MustKind(api.KindNode), "", in.Spec.Node)
	if err != nil {
		return nil, err
	}
	node := nobj.(*api.Node)
	if node.Status.Address == "" {
		return nil, fmt.Errorf("node %q has not said where its agent serves: %w", node.Metadata.Name, store.ErrNotFound)
	}
	return node, nil
}
