package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/image"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

const hardenedApps = `
apiVersion: shoal/v1
kind: App
metadata: {name: plain}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 50m, memory: 32Mi}
---
apiVersion: shoal/v1
kind: App
metadata: {name: locked}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 50m, memory: 32Mi}
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL]}
---
apiVersion: shoal/v1
kind: Namespace
metadata: {name: ops}
spec: {policy: {allowPrivileged: true}}
---
apiVersion: shoal/v1
kind: App
metadata: {name: tools, namespace: ops}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 50m, memory: 32Mi}
  securityContext: {privileged: true}
`

// statusField reads one field of /proc/1/status (the container's main
// process) through shoal exec; app is "NAME" or "NAMESPACE/NAME".
func statusField(c *cluster, app, field string) string {
	c.t.Helper()
	args := []string{"exec", "app/" + app}
	if ns, name, ok := strings.Cut(app, "/"); ok {
		args = []string{"exec", "-n", ns, "app/" + name}
	}
	out := c.mustShoal(append(args, "--", "/hello", "show", "/proc/1/status")...)
	m := regexp.MustCompile(`(?m)^` + field + `:\s*(\S+)`).FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("%s: no %s in /proc/1/status:\n%s", app, field, out)
	}
	return m[1]
}

// TestHardenedContainers checks from inside real containers what a
// default App gets (no new privileges, seccomp filtering, containerd's
// default capabilities without NET_RAW) and what securityContext changes.
func TestHardenedContainers(t *testing.T) {
	hostDir := shortTempDir(t)
	if err := os.WriteFile(filepath.Join(hostDir, "greeting"), []byte("from the node\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The node's owner allows privileged containers, host namespaces and
	// this one directory.
	c := upCluster(t, "--allow-privileged", "--allow-host-namespaces", "--allow-host-paths", hostDir)
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(hardenedApps, "--wait", "--timeout", "90s")

	// containerd's default set is a80425fb; without NET_RAW (bit 13) it is
	// a80405fb.
	for field, want := range map[string]string{"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "00000000a80405fb", "CapBnd": "00000000a80405fb"} {
		if got := statusField(c, "plain", field); got != want {
			t.Errorf("default App: %s %s, want %s", field, got, want)
		}
	}
	if out, err := c.shoal("exec", "app/plain", "--", "/hello", "touch", "/written"); err != nil {
		t.Errorf("default App: the root filesystem is not writable: %v\n%s", err, out)
	}

	for field, want := range map[string]string{"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"} {
		if got := statusField(c, "locked", field); got != want {
			t.Errorf("locked App: %s %s, want %s", field, got, want)
		}
	}
	if out := c.mustShoal("exec", "app/locked", "--", "/hello", "id"); !strings.Contains(out, "uid=1000 gid=1000") {
		t.Errorf("locked App runs as %q, want uid=1000 gid=1000", out)
	}
	out, err := c.shoal("exec", "app/locked", "--", "/hello", "touch", "/written")
	if err == nil || !strings.Contains(out, "read-only file system") {
		t.Errorf("locked App: writing to / gave %v\n%s; want a read-only file system", err, out)
	}

	// Privileged, in a namespace whose policy allows it: every capability
	// the host has, no seccomp filter, new privileges allowed.
	for field, want := range map[string]string{"NoNewPrivs": "0", "Seccomp": "0"} {
		if got := statusField(c, "ops/tools", field); got != want {
			t.Errorf("privileged App: %s %s, want %s", field, got, want)
		}
	}
	host, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	hostCaps := regexp.MustCompile(`(?m)^CapBnd:\s*(\S+)`).FindStringSubmatch(string(host))[1]
	if got := statusField(c, "ops/tools", "CapEff"); got != hostCaps {
		t.Errorf("privileged App: CapEff %s, want every capability the host has (%s)", got, hostCaps)
	}

	// Host access: refused where the namespace's policy does not allow it,
	// and in a namespace that does: the node's processes and a read-only
	// directory of the node.
	hostApp := func(ns string) string {
		return fmt.Sprintf(`apiVersion: shoal/v1
kind: App
metadata: {name: peek, namespace: %s}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 50m, memory: 32Mi}
  hostPID: true
  volumes: [{name: node, hostPath: %s, mountPath: /node, readOnly: true}]
`, ns, hostDir)
	}
	if out, err := c.shoal("apply", "-f", c.writeFile(hostApp("default"))); err == nil || !strings.Contains(out, `spec.hostPID: namespace "default" does not allow host namespaces`) {
		t.Fatalf("hostPID in the default namespace: %v\n%s", err, out)
	}
	c.applyYAML(fmt.Sprintf("apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: ops}\nspec: {policy: {allowPrivileged: true, allowHostNamespaces: true, allowHostPaths: [%s]}}\n---\n", hostDir)+hostApp("ops"), "--wait", "--timeout", "90s")
	if out := c.mustShoal("exec", "-n", "ops", "app/peek", "--", "/hello", "show", "/node/greeting"); !strings.Contains(out, "from the node") {
		t.Errorf("the host path's file reads %q", out)
	}
	if out, err := c.shoal("exec", "-n", "ops", "app/peek", "--", "/hello", "touch", "/node/written"); err == nil || !strings.Contains(out, "read-only file system") {
		t.Errorf("writing to a read-only host path: %v\n%s", err, out)
	}
	// In the node's PID namespace, PID 1 is the node's init, not /hello.
	if out := c.mustShoal("exec", "-n", "ops", "app/peek", "--", "/hello", "show", "/proc/1/cmdline"); strings.Contains(out, "/hello") {
		t.Errorf("hostPID: /proc/1 is the container's own process: %q", out)
	}
}

// TestJoinRotateAndRemove: a machine joins with a token (a bad token is
// refused with the reason), its certificate renews itself while it keeps
// running an app, and removing the node cuts it off.
func TestJoinRotateAndRemove(t *testing.T) {
	c := serverCluster(t, "--node-cert-ttl", "15s")
	c.mustShoal("image", "push", helloV1)

	// A token for another cluster: refused before anything is sent.
	bad := strings.TrimSpace(c.mustShoal("token", "create"))
	bad = "SHOAL1-" + strings.Repeat("0", 64) + bad[len("SHOAL1-")+64:]
	dir := shortTempDir(t)
	out, err := exec.Command(shoalBin, "agent", "--server", c.url, "--token", bad, "--data-dir", dir, "--node-name", "intruder", "--runtime", "fake").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not the cluster the token is for") {
		t.Fatalf("agent with another cluster's token: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "pki", "node.key")); err == nil {
		t.Error("a refused join left a key behind")
	}

	c.addAgent("n1")
	certPath := filepath.Join(c.dir, "agent-n1", "pki", "node.crt")
	first, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	c.applyYAML(hardenedApps[:strings.Index(hardenedApps, "---")], "--wait", "--timeout", "90s")
	// Renewed at two thirds of 15s; then once more, and the node keeps
	// heartbeating and serving exec through it all.
	c.eventually(40*time.Second, "the node certificate renewed twice", func() (bool, string) {
		b, _ := os.ReadFile(certPath)
		return !bytes.Equal(b, first) && strings.Count(c.agents[0].output(), "node certificate renewed") >= 2, "not yet"
	})
	time.Sleep(16 * time.Second) // past the first certificate's expiry
	if out := c.mustShoal("exec", "app/plain", "--", "/hello", "id"); !strings.Contains(out, "uid=0") {
		t.Fatalf("exec after the renewals: %q", out)
	}
	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", "n1")
	if err != nil || !obj.(*api.Node).Status.Ready || time.Since(obj.(*api.Node).Status.LastHeartbeat) > 10*time.Second {
		t.Fatalf("node n1 after the renewals: %+v, %v", obj, err)
	}

	c.mustShoal("delete", "app", "plain")
	c.eventually(30*time.Second, "plain's instance gone", func() (bool, string) { return len(c.instances("plain")) == 0, "" })
	c.mustShoal("node", "remove", "n1")
	c.eventually(20*time.Second, "the removed agent refused", func() (bool, string) {
		return strings.Contains(c.agents[0].output(), "was revoked"), "no refusal in its log yet"
	})
}

// TestSignedApps: a node whose owner requires a signing key runs an App
// signed with it, refuses an unsigned one, and refuses an instance whose
// template was changed after signing even though the control plane
// itself sent it.
func TestSignedApps(t *testing.T) {
	c := serverCluster(t)
	c.mustShoal("image", "push", helloV1)
	keyDir := shortTempDir(t)
	pub := strings.TrimSpace(c.mustShoal("key", "create", "owner", "--dir", keyDir))
	if !strings.HasPrefix(pub, "ed25519:") {
		t.Fatalf("key create printed %q", pub)
	}
	if st, err := os.Stat(filepath.Join(keyDir, "owner.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("owner.key: %v %v, want mode 0600", st, err)
	}
	c.addAgent("n1", "--require-signed-by", filepath.Join(keyDir, "owner.pub"))

	app := func(name string) string {
		return "apiVersion: shoal/v1\nkind: App\nmetadata: {name: " + name + "}\nspec:\n  image: shoal.local/hello:v1\n  resources: {cpu: 50m, memory: 32Mi}\n"
	}
	c.mustShoal("apply", "-f", c.writeFile(app("signed")), "--sign-key", filepath.Join(keyDir, "owner.key"), "--wait", "--timeout", "90s")
	signed := c.running("signed", 1)[0]
	if signed.Spec.Template.Signature == nil || signed.Spec.Template.Signature.Key != pub {
		t.Fatalf("the signed App's instance carries signature %+v", signed.Spec.Template.Signature)
	}
	// A Job is signed the same way, and runs on the owner's node.
	c.mustShoal("apply", "-f", c.writeFile("apiVersion: shoal/v1\nkind: Job\nmetadata: {name: signed-job}\nspec:\n  image: shoal.local/hello:v1\n  command: [/hello, work, 100ms]\n  resources: {cpu: 50m, memory: 32Mi}\n"),
		"--sign-key", filepath.Join(keyDir, "owner.key"))
	c.eventually(60*time.Second, "the signed Job complete", func() (bool, string) {
		j := c.getJob("signed-job")
		return j.Status.State == api.JobComplete, fmt.Sprintf("%+v", j.Status)
	})

	// The node declares its owner's rule, so the scheduler does not place
	// an unsigned App there (and the agent would refuse it if it did).
	c.applyYAML(app("unsigned"))
	c.eventually(30*time.Second, "unsigned not placed", func() (bool, string) {
		ins := c.instances("unsigned")
		if len(ins) == 0 {
			return false, "no instance"
		}
		st := ins[0].Status
		return ins[0].Spec.Node == "" && strings.Contains(st.Message, "refused by the node's owner"), ins[0].Spec.Node + " " + st.Message
	})

	// A compromised control plane: the App's template is changed straight
	// in etcd, past the server's checks, keeping the old signature. The
	// controllers roll it out; the agent checks the signature itself.
	c.mustShoal("apply", "-f", c.writeFile(app("tampered")), "--sign-key", filepath.Join(keyDir, "owner.key"), "--wait", "--timeout", "90s")
	c.etcdRewrite(store.Key(api.MustKind(api.KindApp), "default", "tampered"), func(a *api.App) {
		a.Spec.Template.Env = append(a.Spec.Template.Env, api.EnvVar{Name: "INJECTED", Value: "1"})
	})
	c.eventually(30*time.Second, "the tampered revision refused by the node", func() (bool, string) {
		for _, in := range c.instances("tampered") {
			if len(in.Spec.Template.Env) > 0 && in.Status.Phase == api.PhaseFailed && strings.Contains(in.Status.Message, "signature does not match spec") {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(c.instances("tampered")), " instances")
	})
	// Nothing of the refused ones runs on the node: the signed App and the
	// tampered one's first, signed revision only.
	if tasks := c.ctr(c.nodes[0].runtimeNS, "tasks", "ls"); strings.Count(tasks, "RUNNING") != 2 {
		t.Errorf("the node runs other than the signed revisions:\n%s", tasks)
	}

	// The signed App names the digest it was signed with, so a push of
	// its tag (here v2's binary as hello:v1; another namespace's deployer
	// may not push it at all) changes nothing that runs: a new replica
	// still runs v1.
	if img := signed.Spec.Template.Image; !strings.HasPrefix(img, "shoal.local/hello:v1@sha256:") {
		t.Fatalf("the signed App's instance runs %q, want hello:v1 by digest", img)
	}
	retagged := filepath.Join(c.dir, "hello-v2-as-v1.tar")
	if err := image.WriteTarball(retagged, image.BuildOptions{Ref: "shoal.local/hello:v1", Binary: filepath.Join(filepath.Dir(helloV2), "v2", "hello"), Entrypoint: []string{"/hello"}}); err != nil {
		t.Fatal(err)
	}
	c.mustShoal("image", "push", retagged)
	c.mustShoal("scale", "app", "signed", "--replicas", "2")
	for _, in := range c.running("signed", 2) {
		if body := getEventually(t, "http://"+in.Status.IP+":8080/"); !strings.Contains(body, "hello v1") {
			t.Errorf("instance %s of the signed App answered %q after hello:v1 was pushed again, want hello v1", in.Metadata.Name, body)
		}
	}

	// The signed template copied into another namespace (other Secrets,
	// another policy) does not verify there.
	c.applyYAML("apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: other}\n")
	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindApp), "default", "signed")
	if err != nil {
		t.Fatal(err)
	}
	replay := &api.App{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindApp}, Metadata: api.ObjectMeta{Namespace: "other", Name: "signed"}, Spec: obj.(*api.App).Spec}
	b, _ := json.Marshal(replay)
	if out, err := c.shoal("apply", "-f", c.writeFile(string(b))); err == nil || !strings.Contains(out, `signed for namespace "default", not "other"`) {
		t.Errorf("the signed template replayed in namespace other: %v\n%s", err, out)
	}
}

// etcdRewrite changes an object straight in the server's embedded etcd,
// as someone who took over the control plane's storage could.
func (c *cluster) etcdRewrite(key string, change func(*api.App)) {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "etcd", "ports.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var ports struct{ Client int }
	if err := json.Unmarshal(b, &ports); err != nil {
		c.t.Fatal(err)
	}
	// etcd speaks TLS only and admits the servers' client certificate.
	pkiDir := filepath.Join(c.dir, "pki")
	tlsCfg, err := (&store.EmbeddedTLS{ClientCertFile: filepath.Join(pkiDir, "etcd-client.crt"), ClientKeyFile: filepath.Join(pkiDir, "etcd-client.key"), CAFile: filepath.Join(pkiDir, "etcd-ca.crt")}).ClientConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := storetest.Connect([]string{fmt.Sprintf("https://127.0.0.1:%d", ports.Client)}, tlsCfg)
	if err != nil {
		c.t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	val, ok, err := raw.Get(ctx, key)
	if err != nil || !ok {
		c.t.Fatalf("etcd get %s: found %v, %v", key, ok, err)
	}
	var a api.App
	if err := json.Unmarshal(val, &a); err != nil {
		c.t.Fatal(err)
	}
	change(&a)
	out, _ := json.Marshal(&a)
	if err := raw.Put(ctx, key, string(out)); err != nil {
		c.t.Fatal(err)
	}
}

// TestSecrets: a Secret reaches the one node that runs an instance using
// it, as a 0400 file on tmpfs owned by the container's user and as an
// env value; it shows only redacted unless revealed; nothing logs it; and
// changing it rolls the App.
func TestSecrets(t *testing.T) {
	c := serverCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.addAgent("n1", "--labels", "role=db")
	c.addAgent("n2")
	const manifest = `
apiVersion: shoal/v1
kind: Secret
metadata: {name: db}
spec:
  data: {password: s3cret-%s}
---
apiVersion: shoal/v1
kind: App
metadata: {name: usesdb}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 50m, memory: 32Mi}
  placement: {nodeSelector: {role: db}}
  secrets: [db]
  env: [{name: DB_PASSWORD, secretKeyRef: {name: db, key: password}}]
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
`
	c.applyYAML(fmt.Sprintf(manifest, "v1"), "--wait", "--timeout", "90s")
	first := c.running("usesdb", 1)[0].Metadata.Name

	if out := c.mustShoal("exec", "app/usesdb", "--", "/hello", "stat", "/run/secrets/db/password"); !strings.Contains(out, "mode=0400 uid=1000 tmpfs=true") {
		t.Errorf("the secret file: %q, want mode 0400, owned by uid 1000, on tmpfs", out)
	}
	if out := c.mustShoal("exec", "app/usesdb", "--", "/hello", "show", "/run/secrets/db/password"); out != "s3cret-v1" {
		t.Errorf("the secret file holds %q", out)
	}
	if out := c.mustShoal("exec", "app/usesdb", "--", "/hello", "show", "/proc/1/environ"); !strings.Contains(out, "DB_PASSWORD=s3cret-v1") {
		t.Errorf("the env of the container does not carry the secret")
	}
	// Only n1 has it.
	for node, want := range map[string]bool{"n1": true, "n2": false} {
		entries, _ := os.ReadDir(filepath.Join(c.dir, "agent-"+node, "runtime", "secrets"))
		if has := len(entries) > 0; has != want {
			t.Errorf("node %s holds secrets: %v, want %v", node, has, want)
		}
	}
	if out := c.mustShoal("get", "secret", "db", "-o", "yaml"); strings.Contains(out, "s3cret") || !strings.Contains(out, "<redacted>") {
		t.Errorf("get -o yaml:\n%s", out)
	}
	if out := c.mustShoal("describe", "app", "usesdb"); strings.Contains(out, "s3cret") {
		t.Errorf("describe shows the value:\n%s", out)
	}
	if out := c.mustShoal("get", "secret", "db", "-o", "yaml", "--reveal"); !strings.Contains(out, "s3cret-v1") {
		t.Errorf("get --reveal as the admin:\n%s", out)
	}

	// A new value rolls the App: a new instance reads it.
	c.applyYAML(fmt.Sprintf(manifest, "v2"))
	c.eventually(60*time.Second, "usesdb rolled to the new secret", func() (bool, string) {
		ins := c.running("usesdb", 1)
		return ins[0].Metadata.Name != first, ins[0].Metadata.Name
	})
	if out := c.mustShoal("exec", "app/usesdb", "--", "/hello", "show", "/run/secrets/db/password"); out != "s3cret-v2" {
		t.Errorf("after the change the file holds %q", out)
	}
	for _, p := range append([]*proc{c.server}, c.agents...) {
		if strings.Contains(p.output(), "s3cret") {
			t.Errorf("shoal %v logged a secret value", p.args)
		}
	}
}

// TestUsersAndRoles: an admin makes a user with a credential file; the
// user's CLI works within its role and gets a clear 403 beyond it; the
// audit log has the writes.
func TestUsersAndRoles(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	conf := filepath.Join(shortTempDir(t), "vic.conf")
	c.mustShoal("user", "create", "vic", "--role", "viewer", "-o", conf)
	if st, err := os.Stat(conf); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("vic.conf: %v %v, want 0600", st, err)
	}
	c.applyYAML(hardenedApps[:strings.Index(hardenedApps, "---")], "--wait", "--timeout", "90s")
	as := func(args ...string) (string, error) {
		out, err := exec.Command(shoalBin, append([]string{"--config", conf}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := as("get", "apps"); err != nil || !strings.Contains(out, "plain") {
		t.Fatalf("viewer get apps: %v\n%s", err, out)
	}
	out, err := as("delete", "app", "plain")
	if err == nil || !strings.Contains(out, `user "vic" may not delete app "plain" in namespace "default" (roles: viewer in default)`) {
		t.Fatalf("viewer delete: %v\n%s", err, out)
	}
	c.mustShoal("role", "bind", "deployer", "vic")
	if out, err := as("scale", "app", "plain", "--replicas", "2"); err != nil {
		t.Fatalf("deployer scale: %v\n%s", err, out)
	}
	if out, err := as("exec", "app/plain", "--", "/hello", "id"); err == nil || !strings.Contains(out, "may not exec") {
		t.Fatalf("deployer exec: %v\n%q", err, out)
	}
	audit, err := os.ReadFile(filepath.Join(c.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"who":"user:vic","groups":["shoal:users"],"method":"DELETE","path":"/api/v1/namespaces/default/apps/plain"`, `"code":403`, `"path":"/api/v1/namespaces/default/apps/plain/scale"`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit.log lacks %s:\n%s", want, audit)
		}
	}
	c.mustShoal("user", "delete", "vic")
	if out, err := as("get", "apps"); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("a deleted user: %v\n%s", err, out)
	}

	// A service account: a bearer token instead of a certificate, for
	// every verb the CLI has (exec and watch included).
	conf = filepath.Join(shortTempDir(t), "ci.conf")
	c.mustShoal("user", "create", "ci", "--role", "admin", "--token", "--ttl", "1h", "-o", conf)
	if b, err := os.ReadFile(conf); err != nil || !strings.Contains(string(b), "token: SHOAL1-") || strings.Contains(string(b), "certificate:") {
		t.Fatalf("ci.conf holds no token, or a certificate: %v\n%s", err, b)
	}
	if out, err := as("exec", "app/plain", "--", "/hello", "id"); err != nil || !strings.Contains(out, "uid=") {
		t.Fatalf("exec with a bearer token: %v\n%s", err, out)
	}
	if out, err := as("scale", "app", "plain", "--replicas", "1"); err != nil {
		t.Fatalf("scale with a bearer token: %v\n%s", err, out)
	}
	list := c.mustShoal("token", "list")
	var id string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "user" && f[2] == "ci" {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("token list shows no token of user ci:\n%s", list)
	}
	c.mustShoal("token", "revoke", id)
	if out, err := as("get", "apps"); err == nil || !strings.Contains(out, "unknown or revoked") {
		t.Fatalf("a revoked bearer token: %v\n%s", err, out)
	}
}
