package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// TestAdmitEnforcesTheOwnersRules: the agent's own checks, whatever the
// control plane sent.
func TestAdmitEnforcesTheOwnersRules(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key := "ed25519:" + base64.StdEncoding.EncodeToString(pub)
	sign := func(tmpl api.Template) api.Template {
		tmpl.Signature = &api.Signature{Key: key, Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, api.SignedBytes(&tmpl, "web"))), Namespace: "web"}
		return tmpl
	}
	const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	inst := func(ns string, tmpl api.Template) *api.Instance {
		return &api.Instance{Metadata: api.ObjectMeta{Namespace: ns, Name: "x"}, Spec: api.InstanceSpec{Template: tmpl}}
	}
	signed := sign(api.Template{Image: "shoal.local/hello:v1" + digest})
	byTag := sign(api.Template{Image: "shoal.local/hello:v1"})
	tampered := signed
	tampered.Image = "docker.io/evil/miner"
	// The server is unreachable: namespace policies are unknown, and the
	// owner's rules and the signature itself still decide.
	a := New(Config{NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), Client: client.New("http://127.0.0.1:1"),
		Owner: OwnerPolicy{RequireSignedBy: []string{key}, AllowNamespaces: []string{"web"}, AllowRegistries: []string{"shoal.local"}}})
	for _, tc := range []struct {
		name string
		in   *api.Instance
		want string
	}{
		{"signed, allowed", inst("web", signed), ""},
		{"another namespace", inst("batch", signed), `does not run namespace "batch"`},
		{"signed by tag", inst("web", byTag), `names a tag`},
		{"unsigned", inst("web", api.Template{Image: "shoal.local/hello:v1"}), "not signed"},
		{"changed after signing", inst("web", tampered), "does not pull from docker.io"},
		{"changed after signing, same registry", inst("web", func() api.Template { x := signed; x.Args = []string{"--mine"}; return x }()), "signature does not match spec"},
	} {
		err := a.admit(context.Background(), tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it admitted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A node that runs both namespaces still refuses web's signed
	// template copied into batch, whose Secrets it would get.
	both := New(Config{NodeName: "n2", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), Client: client.New("http://127.0.0.1:1"),
		Owner: OwnerPolicy{RequireSignedBy: []string{key}}})
	if err := both.admit(context.Background(), inst("batch", signed)); err == nil || !strings.Contains(err.Error(), `signed for namespace "web", not "batch"`) {
		t.Errorf("web's template replayed in batch: %v, want it refused as signed for web", err)
	}
}

// TestAdmitHostAccess: host namespaces and host paths only where the
// owner allows them, whatever the namespace's policy said.
func TestAdmitHostAccess(t *testing.T) {
	inst := func(tmpl api.Template) *api.Instance {
		tmpl.Image = "shoal.local/hello:v1"
		return &api.Instance{Metadata: api.ObjectMeta{Namespace: "ops", Name: "x"}, Spec: api.InstanceSpec{Template: tmpl}}
	}
	vol := func(p string) api.Template {
		return api.Template{Volumes: []api.Volume{{Name: "v", HostPath: p, MountPath: "/host"}}}
	}
	agent := func(p OwnerPolicy) *Agent {
		return New(Config{NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), Client: client.New("http://127.0.0.1:1"), Owner: p})
	}
	closed, open := agent(OwnerPolicy{}), agent(OwnerPolicy{AllowHostNamespaces: true, AllowHostPaths: []string{"/var/log"}})
	for _, tc := range []struct {
		name string
		a    *Agent
		in   *api.Instance
		want string
	}{
		{"hostPID by default", closed, inst(api.Template{HostPID: true}), "node n1 does not share its namespaces (hostPID; its owner allows that with --allow-host-namespaces)"},
		{"a host path by default", closed, inst(vol("/var/log")), "node n1 does not mount /var/log into containers (its owner allows none; --allow-host-paths)"},
		{"nothing of the host", closed, inst(api.Template{}), ""},
		{"hostPID and hostIPC, allowed", open, inst(api.Template{HostPID: true, HostIPC: true}), ""},
		{"a path below an allowed one", open, inst(vol("/var/log/nginx")), ""},
		{"another path", open, inst(vol("/etc")), "does not mount /etc into containers (its owner allows /var/log)"},
	} {
		err := tc.a.admit(context.Background(), tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it admitted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
