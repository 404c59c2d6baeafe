package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// storedToken reads a token's stored object.
func (e *tlsEnv) storedToken(t *testing.T, id string) *api.Token {
	t.Helper()
	code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/tokens/"+id, nil)
	if code != http.StatusOK {
		t.Fatalf("get token %s: %d %s", id, code, body)
	}
	var tok api.Token
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		t.Fatal(err)
	}
	return &tok
}

func (e *tlsEnv) nodeExists(t *testing.T, name string) bool {
	t.Helper()
	code, _ := call(t, e.admin, http.MethodGet, e.url+"/api/v1/nodes/"+name, nil)
	return code == http.StatusOK
}

// TestJoinTokensAreSingleUse: an agent token serves one join; a second is
// refused, saying what to do, and creates nothing; --uses 2 serves
// exactly two, also when more machines race for them.
func TestJoinTokensAreSingleUse(t *testing.T) {
	e := startTLS(t)
	once := e.token(t, api.TokenRoleAgent, time.Hour)
	if _, code, msg := e.join(t, "a1", once.String()); code != http.StatusOK {
		t.Fatalf("first join: %d %s", code, msg)
	}
	_, code, msg := e.join(t, "a2", once.String())
	if code != http.StatusUnauthorized || !strings.Contains(msg, "join token "+once.ID+" was used already") || !strings.Contains(msg, "`shoal token create`") || !strings.Contains(msg, "--uses N") {
		t.Errorf("a second join with a single-use token: %d %q, want 401 saying it was used, `shoal token create` and --uses N", code, msg)
	}
	if e.nodeExists(t, "a2") {
		t.Error("a join with a used token made its node")
	}
	if left := e.storedToken(t, once.ID).JoinsLeft(); left != 0 {
		t.Errorf("a used token has %d uses left, want 0", left)
	}

	// A refused join (a bad key, a taken name) spends nothing.
	twice := e.tokenUses(t, api.TokenRoleAgent, time.Hour, 2)
	if _, code, _ := e.join(t, "a1", twice.String()); code != http.StatusConflict {
		t.Fatalf("join as a taken name: %d, want 409", code)
	}
	if left := e.storedToken(t, twice.ID).JoinsLeft(); left != 2 {
		t.Fatalf("a refused join spent a use: %d left, want 2", left)
	}
	// Five machines race for two uses: exactly two join.
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, codes[i], _ = e.join(t, "b"+string(rune('0'+i)), twice.String())
		}()
	}
	wg.Wait()
	joined := 0
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			joined++
		case http.StatusUnauthorized:
			if e.nodeExists(t, "b"+string(rune('0'+i))) {
				t.Errorf("a refused join made node b%d", i)
			}
		default:
			t.Errorf("join b%d: %d, want 200 or 401", i, c)
		}
	}
	if joined != 2 {
		t.Errorf("%d machines joined with a token of 2 uses (codes %v), want exactly 2", joined, codes)
	}
}

// TestServerTokensAreSingleUseAndExpire: a server token admits one server;
// an expired one none; and a join that brings no etcd member to a cluster
// of embedded etcd gets no CA key and spends nothing.
func TestServerTokensAreSingleUseAndExpire(t *testing.T) {
	e := startTLS(t)
	join := func(tok, name, peer string) (int, string) {
		return call(t, e.anon, http.MethodPost, e.url+"/api/v1/servers/join", api.ServerJoinRequest{Token: tok, Name: name, PeerURL: peer})
	}
	expired := e.token(t, api.TokenRoleServer, -time.Second)
	if code, msg := join(expired.String(), "s2", "https://127.0.0.1:1"); code != http.StatusUnauthorized || !strings.Contains(msg, "expired at") {
		t.Errorf("an expired server token: %d %q, want 401 expired", code, msg)
	}
	tok := e.token(t, api.TokenRoleServer, time.Hour)
	code, msg := join(tok.String(), "s2", "")
	if code != http.StatusBadRequest || !strings.Contains(msg, "peerURL: required") || strings.Contains(msg, "PRIVATE KEY") {
		t.Errorf("a server join without an etcd member: %d %q, want 400 peerURL required", code, msg)
	}
	if left := e.storedToken(t, tok.ID).JoinsLeft(); left != 1 {
		t.Fatalf("a refused server join spent a use: %d left, want 1", left)
	}
	if code, msg := join(tok.String(), "s2", "https://127.0.0.1:1"); code != http.StatusOK {
		t.Fatalf("server join: %d %s", code, msg)
	}
	code, msg = join(tok.String(), "s3", "https://127.0.0.1:2")
	if code != http.StatusUnauthorized || !strings.Contains(msg, "was used already") || !strings.Contains(msg, "shoal token create --role server") || strings.Contains(msg, "PRIVATE KEY") {
		t.Errorf("a second server join with one token: %d %q, want 401 used already", code, msg)
	}
}

// TestManyJoinsOnOneToken: machines joining at once with one token of N
// uses all join (each spends one use, racing for it), and the N+1th is
// refused.
func TestManyJoinsOnOneToken(t *testing.T) {
	e := startTLS(t)
	const machines = 64
	tok := e.tokenUses(t, api.TokenRoleAgent, time.Hour, machines).String()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, code, msg := e.join(t, fmt.Sprintf("n%d", i), tok); code != http.StatusOK {
				t.Errorf("join n%d: %d %s", i, code, msg)
			}
		}()
	}
	close(start)
	wg.Wait()
	if _, code, msg := e.join(t, "one-too-many", tok); code == http.StatusOK {
		t.Errorf("a join past the token's %d uses: %d %s", machines, code, msg)
	}
}
