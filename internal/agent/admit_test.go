package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	// No namespace has a policy: the owner's rules and the signature
	// itself decide.
	a := New(Config{NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), Client: namespaceServer(t, nil),
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
		return New(Config{NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), Client: namespaceServer(t, nil), Owner: p})
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

// namespaceServer answers GET /api/v1/namespaces/NAME with the policy of
// that name in policies, or 404.
func namespaceServer(t *testing.T, policies map[string]api.NamespacePolicy) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/namespaces/")
		pol, found := policies[name]
		switch {
		case r.Method != http.MethodGet || !ok:
			http.Error(w, `{"code":501,"message":"unexpected `+r.Method+" "+r.URL.Path+`"}`, http.StatusNotImplemented)
		case !found:
			http.Error(w, `{"code":404,"message":"namespace not found"}`, http.StatusNotFound)
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace},
				Metadata: api.ObjectMeta{Name: name}, Spec: api.NamespaceSpec{Policy: pol}})
		}
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL)
}

// TestAdmitPrivileges: privileged containers and capabilities beyond the
// default set only where the owner allows them (--allow-privileged,
// --allow-capabilities), whatever the namespace's policy said.
func TestAdmitPrivileges(t *testing.T) {
	inst := func(sc api.SecurityContext) *api.Instance {
		return &api.Instance{Metadata: api.ObjectMeta{Namespace: "ops", Name: "x"},
			Spec: api.InstanceSpec{Template: api.Template{Image: "shoal.local/hello:v1", SecurityContext: &sc}}}
	}
	add := func(caps ...string) api.SecurityContext {
		return api.SecurityContext{Capabilities: api.Capabilities{Add: caps}}
	}
	agent := func(p OwnerPolicy) *Agent {
		return New(Config{NodeName: "n1", Log: slog.New(slog.DiscardHandler), DataDir: t.TempDir(), Client: namespaceServer(t, nil), Owner: p})
	}
	closed := agent(OwnerPolicy{})
	privileged := agent(OwnerPolicy{AllowPrivileged: true})
	netAdmin := agent(OwnerPolicy{AllowCapabilities: []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}})
	anyCap := agent(OwnerPolicy{AllowCapabilities: []string{"ALL"}})
	for _, tc := range []struct {
		name string
		a    *Agent
		in   *api.Instance
		want string
	}{
		{"the default set, nothing allowed", closed, inst(api.SecurityContext{}), ""},
		{"dropping, nothing allowed", closed, inst(api.SecurityContext{Capabilities: api.Capabilities{Drop: []string{"ALL"}, Add: []string{"chown"}}}), ""},
		{"privileged, nothing allowed", closed, inst(api.SecurityContext{Privileged: true}),
			"node n1 does not run privileged containers (securityContext.privileged; its owner allows that with --allow-privileged)"},
		{"a capability, nothing allowed", closed, inst(add("KILL", "net_admin")),
			"node n1 does not grant CAP_NET_ADMIN to containers (securityContext.capabilities.add[1]; its owner allows none beyond the default set; that takes --allow-capabilities NET_ADMIN)"},
		{"privileged, privileged allowed", privileged, inst(api.SecurityContext{Privileged: true}), ""},
		{"capabilities, privileged allowed", privileged, inst(add("NET_ADMIN", "ALL")), ""},
		{"privileged, capabilities allowed", netAdmin, inst(api.SecurityContext{Privileged: true}), "does not run privileged containers"},
		{"privileged, every capability allowed", anyCap, inst(api.SecurityContext{Privileged: true}), "does not run privileged containers"},
		{"allowed capabilities", netAdmin, inst(add("CAP_NET_ADMIN", "sys_time")), ""},
		{"another capability", netAdmin, inst(add("NET_ADMIN", "BPF")),
			"does not grant CAP_BPF to containers (securityContext.capabilities.add[1]; its owner allows CAP_NET_ADMIN, CAP_SYS_TIME; that takes --allow-capabilities BPF)"},
		{"add ALL, some allowed", netAdmin, inst(add("ALL")), "does not grant ALL to containers (securityContext.capabilities.add[0]; its owner allows CAP_NET_ADMIN, CAP_SYS_TIME; that takes --allow-capabilities ALL or --allow-privileged)"},
		{"add ALL, ALL allowed", anyCap, inst(add("ALL")), ""},
		{"any capability, ALL allowed", anyCap, inst(add("BPF", "SYS_ADMIN")), ""},
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

// TestAdmitFailsClosedWithoutTheNamespace: when no server says what the
// namespace requires, nothing of it runs; a namespace that does not exist
// requires nothing (as the servers' admission has it).
func TestAdmitFailsClosedWithoutTheNamespace(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key := "ed25519:" + base64.StdEncoding.EncodeToString(pub)
	unsigned := api.Template{Image: "shoal.local/hello:v1@sha256:" + strings.Repeat("ab", 32)}
	signed := unsigned
	signed.Signature = &api.Signature{Key: key, Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, api.SignedBytes(&signed, "signed"))), Namespace: "signed"}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"code":500,"message":"etcd is away"}`, http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	policies := namespaceServer(t, map[string]api.NamespacePolicy{"signed": {RequireSignedBy: []string{key}}, "open": {}})
	for _, tc := range []struct {
		name string
		c    *client.Client
		ns   string
		tmpl api.Template
		want string
	}{
		{"no server answers", client.New("http://127.0.0.1:1"), "web", unsigned,
			`refused by node n1 for now: cannot read the policy of namespace "web" from the servers`},
		{"no server answers, signed", client.New("http://127.0.0.1:1"), "signed", signed, `cannot read the policy of namespace "signed"`},
		{"the server fails", client.New(broken.URL), "web", unsigned, `cannot read the policy of namespace "web" from the servers (it says which signatures and host paths the namespace requires; retried): etcd is away`},
		{"no such namespace", policies, "web", unsigned, ""},
		{"a namespace without keys", policies, "open", unsigned, ""},
		{"a namespace with keys, unsigned", policies, "signed", unsigned, `not signed`},
		{"a namespace with keys, signed", policies, "signed", signed, ""},
	} {
		a := New(Config{NodeName: "n1", Log: slog.New(slog.DiscardHandler), DataDir: t.TempDir(), Client: tc.c})
		in := &api.Instance{Metadata: api.ObjectMeta{Namespace: tc.ns, Name: "x"}, Spec: api.InstanceSpec{Template: tc.tmpl}}
		err := a.admit(context.Background(), in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it admitted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestAdmitHostPortsInTheOwnersRange: a node binds no hostPort outside its
// owner's range (--port-range), whatever the control plane admitted.
func TestAdmitHostPortsInTheOwnersRange(t *testing.T) {
	inst := func(ports ...api.Port) *api.Instance {
		return &api.Instance{Metadata: api.ObjectMeta{Namespace: "web", Name: "x"}, Spec: api.InstanceSpec{Template: api.Template{Image: "shoal.local/hello:v1", Ports: ports}}}
	}
	a := New(Config{NodeName: "n1", Log: slog.New(slog.DiscardHandler), DataDir: t.TempDir(), Client: namespaceServer(t, nil),
		Owner: OwnerPolicy{PortRange: api.PortRange{Min: 30000, Max: 30099}}})
	for _, tc := range []struct {
		name string
		in   *api.Instance
		want string
	}{
		{"no hostPort", inst(api.Port{ContainerPort: 22}), ""},
		{"inside", inst(api.Port{ContainerPort: 80, HostPort: 30099}), ""},
		{"ssh", inst(api.Port{ContainerPort: 80}, api.Port{ContainerPort: 22, HostPort: 22}),
			"node n1 does not open the port: spec.template.ports[1].hostPort: 22 is outside node n1's publish range 30000-30099 (set by its owner with --port-range); choose a port in the range"},
		{"in the cluster's range, not the owner's", inst(api.Port{ContainerPort: 80, HostPort: 30100}), "30100 is outside node n1's publish range 30000-30099"},
	} {
		err := a.admit(context.Background(), tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it admitted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
