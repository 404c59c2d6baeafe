package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/server"
)

// auditLines are the records of the audit log so far.
func (e *tlsEnv) auditLines(t *testing.T) []server.AuditRecord {
	t.Helper()
	var out []server.AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(e.audit.String()), "\n") {
		if line == "" {
			continue
		}
		var rec server.AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// waitAudit waits for a line that match accepts.
func (e *tlsEnv) waitAudit(t *testing.T, what string, match func(server.AuditRecord) bool) server.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := e.auditLines(t)
		if i := slices.IndexFunc(lines, match); i >= 0 {
			return lines[i]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit line for %s in:\n%s", what, e.audit.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuditReveal: reading secret values is audited as "reveal" with who,
// which secret and the result, allowed or refused; redacted reads are not.
func TestAuditReveal(t *testing.T) {
	e := startTLS(t)
	doc := "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: db}\nspec: {data: {password: hunter2}}\n"
	if code, msg := call(t, e.admin, http.MethodPost, e.url+"/api/v1/apply", doc); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, msg)
	}
	ada := e.user(t, "ada", api.RoleBinding{Role: api.RoleAdmin, Namespace: "default"})
	vic := e.user(t, "vic", api.RoleBinding{Role: api.RoleViewer, Namespace: "default"})
	secret := e.url + "/api/v1/namespaces/default/secrets/db"
	if code, body := call(t, ada, http.MethodGet, secret+"?reveal=1", nil); code != http.StatusOK || !strings.Contains(body, "hunter2") {
		t.Fatalf("reveal: %d %s", code, body)
	}
	if code, _ := call(t, vic, http.MethodGet, secret+"?reveal=1", nil); code != http.StatusForbidden {
		t.Fatalf("a viewer's reveal: %d, want 403", code)
	}
	if code, _ := call(t, ada, http.MethodGet, e.url+"/api/v1/namespaces/default/secrets?reveal=1", nil); code != http.StatusOK {
		t.Fatalf("reveal all: %d", code)
	}
	if code, _ := call(t, ada, http.MethodGet, secret, nil); code != http.StatusOK {
		t.Fatalf("get redacted: %d", code)
	}
	want := []server.AuditRecord{
		{Verb: "reveal", Who: "user:ada", Namespace: "default", Name: "db", Code: http.StatusOK},
		{Verb: "reveal", Who: "user:vic", Namespace: "default", Name: "db", Code: http.StatusForbidden},
		{Verb: "reveal", Who: "user:ada", Namespace: "default", Code: http.StatusOK}, // the whole namespace's
	}
	var got []server.AuditRecord
	for _, rec := range e.auditLines(t) {
		if rec.Method == http.MethodGet {
			got = append(got, server.AuditRecord{Verb: rec.Verb, Who: rec.Who, Namespace: rec.Namespace, Name: rec.Name, Code: rec.Code})
		}
	}
	if !slices.EqualFunc(got, want, func(a, b server.AuditRecord) bool {
		return a.Verb == b.Verb && a.Who == b.Who && a.Namespace == b.Namespace && a.Name == b.Name && a.Code == b.Code
	}) {
		t.Errorf("reads in the audit log:\n got %+v\nwant %+v", got, want)
	}
	if strings.Contains(e.audit.String(), "hunter2") {
		t.Errorf("the audit log holds the value")
	}
}

// TestAuditExec: an exec session is audited as "exec" with who, which
// instance, the command, when it began, how long it lasted, the exit code
// and the result — a line when it starts, one when it ends — and a
// refused one with who and the command.
func TestAuditExec(t *testing.T) {
	e := startTLS(t)
	ctx := ctxT(t, 10*time.Second)
	agent := fakeExecAgent(t, e, "n1", 3)
	node := &api.Node{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode}, Metadata: api.ObjectMeta{Name: "n1"}, Status: api.NodeStatus{Address: agent}}
	in := &api.Instance{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindInstance}, Metadata: api.ObjectMeta{Name: "web-1", Namespace: "default"}, Spec: api.InstanceSpec{Node: "n1"}}
	for _, o := range []api.Object{node, in} {
		if err := e.st.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ada := e.user(t, "ada", api.RoleBinding{Role: api.RoleAdmin, Namespace: "default"})
	dee := e.user(t, "dee", api.RoleBinding{Role: api.RoleDeployer, Namespace: "default"})
	execAs := func(hc *http.Client) (int, string, error) {
		c := client.NewTLS(e.url, hc.Transport.(*http.Transport).TLSClientConfig)
		var out bytes.Buffer
		code, err := c.Exec(ctx, "default", "web-1", client.ExecOptions{Cmd: []string{"sh", "-c", "cat /etc/passwd; exit 3"}, Stdout: &out})
		return code, out.String(), err
	}
	if code, out, err := execAs(ada); err != nil || code != 3 || out != "hi\n" {
		t.Fatalf("exec: exit %d, output %q, %v", code, out, err)
	}
	if _, _, err := execAs(dee); err == nil {
		t.Fatalf("a deployer's exec was allowed")
	}
	cmd := []string{"sh", "-c", "cat /etc/passwd; exit 3"}
	isExec := func(who, phase string, code int) func(server.AuditRecord) bool {
		return func(r server.AuditRecord) bool {
			return r.Verb == "exec" && r.Who == who && r.Phase == phase && r.Code == code &&
				r.Namespace == "default" && r.Name == "web-1" && slices.Equal(r.Command, cmd)
		}
	}
	e.waitAudit(t, "the session's start", isExec("user:ada", "start", http.StatusSwitchingProtocols))
	end := e.waitAudit(t, "the session's end", isExec("user:ada", "end", http.StatusSwitchingProtocols))
	if end.ExitCode == nil || *end.ExitCode != 3 || end.Started == nil || end.Duration == "" || end.Started.After(end.Time) {
		t.Errorf("the end line: exit %v, started %v, duration %q, at %v", end.ExitCode, end.Started, end.Duration, end.Time)
	}
	e.waitAudit(t, "the refused session", isExec("user:dee", "", http.StatusForbidden))
}

// fakeExecAgent serves one exec session as node's agent: it writes "hi\n"
// and exits with code; it returns the address it serves on.
func fakeExecAgent(t *testing.T, e *tlsEnv, node string, code int32) string {
	t.Helper()
	kp := issue(t, e.ca, pki.NodeName(node), nil, nil, time.Hour)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", pki.ServerTLS(e.ca.Pool(), kp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+api.ExecUpgrade+"\r\nConnection: Upgrade\r\n\r\n")
		_ = api.WriteFrame(c, api.FrameStdout, []byte("hi\n"))
		_ = api.WriteFrame(c, api.FrameExit, api.ExitPayload(code))
	}()
	return ln.Addr().String()
}
