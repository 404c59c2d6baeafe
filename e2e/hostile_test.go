package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestHostileTenantAndNodeOwner plays a hostile tenant (a deployer of
// namespace "mallory") and a hostile node owner (holding node1's
// certificate, or joining a machine of its own) against a cluster that
// runs a victim App. Every attempt is refused with a clear error, nothing
// is stored or started, and the victim keeps answering.
func TestHostileTenantAndNodeOwner(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	victimPort := freeNodePort(t)
	c.applyYAML(`apiVersion: shoal/v1
kind: App
metadata: {name: bank}
spec:
  image: shoal.local/hello:v1
  replicas: 1
  ports: [{name: http, containerPort: 8080, publish: `+strconv.Itoa(victimPort)+`}]
  resources: {cpu: 50m, memory: 32Mi}
  health: {readiness: {http: {path: /healthz, port: http}, periodSeconds: 1}}
`, "--wait", "--timeout", "90s")
	victim := c.publishedURL("node1", victimPort)
	victimAnswers := func(when string) {
		t.Helper()
		if out := getEventually(t, victim); !strings.Contains(out, "hello") {
			t.Errorf("%s: the victim answers %q", when, out)
		}
	}
	victimAnswers("before")

	c.applyYAML("apiVersion: shoal/v1\nkind: Namespace\nmetadata: {name: mallory}\n")
	malConf := filepath.Join(shortTempDir(t), "mal.conf")
	c.mustShoal("user", "create", "mal", "--role", "deployer", "-n", "mallory", "-o", malConf)
	mal := func(args ...string) (string, error) {
		out, err := exec.Command(shoalBin, append([]string{"--config", malConf}, args...)...).CombinedOutput()
		return string(out), err
	}
	malHTTP := clientFromConf(t, malConf)

	// 1. A forged status: dropped. The App gets the service address the
	// controller gives, never the one the tenant wrote, and no node DNATs
	// the metadata address to the tenant's container.
	forged := c.writeFile(`{"apiVersion":"shoal/v1","kind":"App","metadata":{"name":"spy","namespace":"mallory"},
"spec":{"image":"shoal.local/hello:v1","ports":[{"name":"http","containerPort":8080}],"resources":{"cpu":"50m","memory":"32Mi"}},
"status":{"serviceIP":"169.254.169.254","lastGoodRevision":1,"revision":1,"history":[{"revision":1,"template":{"image":"shoal.local/hello:v1","securityContext":{"privileged":true}}}]}}`)
	if out, err := mal("apply", "-f", forged); err != nil {
		t.Fatalf("the tenant's apply: %v\n%s", err, out)
	}
	c.eventually(60*time.Second, "spy has a service address of the cluster's", func() (bool, string) {
		obj, err := c.api.Get(context.Background(), api.MustKind(api.KindApp), "mallory", "spy")
		if err != nil {
			return false, err.Error()
		}
		st := obj.(*api.App).Status
		return st.ServiceIP != "" && st.ServiceIP != "169.254.169.254" && len(st.History) == 1 && st.History[0].Template.SecurityContext == nil, st.ServiceIP
	})
	if out, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").CombinedOutput(); regexp.MustCompile(`-d 169\.254\.169\.254/32 .*DNAT`).Match(out) {
		t.Errorf("a node DNATs 169.254.169.254:\n%s", out)
	}

	// 2. A privileged Instance by hand, on a node the tenant chose: only
	// servers make Instances.
	evil := `{"apiVersion":"shoal/v1","kind":"Instance","metadata":{"name":"evil","namespace":"mallory"},
"spec":{"app":"spy","node":"node1","template":{"image":"shoal.local/hello:v1","securityContext":{"privileged":true},"hostPID":true,"volumes":[{"name":"root","hostPath":"/","mountPath":"/host"}]}}}`
	code, body := do(t, malHTTP, http.MethodPost, c.url+"/api/v1/namespaces/mallory/instances", evil)
	if code != http.StatusForbidden || !strings.Contains(body, "may not") {
		t.Errorf("a hand-made privileged Instance: %d %s, want 403", code, body)
	}
	if out, err := mal("apply", "-f", c.writeFile(evil)); err == nil || !strings.Contains(out, "managed by shoal") {
		t.Errorf("an applied Instance: %v\n%s", err, out)
	}
	if out := c.mustShoal("get", "instances", "-n", "mallory"); strings.Contains(out, "evil") {
		t.Errorf("the hand-made Instance was stored:\n%s", out)
	}

	// 3. etcd, dialled with a user's and a node's certificate of the
	// cluster CA: refused (its listeners trust only the servers' own CA).
	pb, err := os.ReadFile(filepath.Join(c.dir, "etcd", "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ports struct{ Client int }
	if err := json.Unmarshal(pb, &ports); err != nil {
		t.Fatal(err)
	}
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", ports.Client)
	nodePKI := filepath.Join(c.dir, "agent", "pki")
	for _, cred := range []struct{ who, cert, key string }{
		{"the tenant", "", ""},
		{"node1", filepath.Join(nodePKI, "node.crt"), filepath.Join(nodePKI, "node.key")},
	} {
		var kp tls.Certificate
		var err error
		if cred.cert == "" {
			cfg, rerr := client.ReadConfig(malConf)
			if rerr != nil {
				t.Fatal(rerr)
			}
			kp, err = tls.X509KeyPair([]byte(cfg.Certificate), []byte(cfg.Key))
		} else {
			kp, err = tls.LoadX509KeyPair(cred.cert, cred.key)
		}
		if err != nil {
			t.Fatalf("%s's certificate: %v", cred.who, err)
		}
		if err := etcdPut(etcdURL, kp, "/shoal/users/mallory"); err == nil {
			t.Errorf("%s wrote to etcd with its certificate", cred.who)
		}
	}
	// The servers' own etcd certificate is admitted there (the refusals
	// above are etcd's, not a wrong address's).
	own, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "pki", "etcd-client.crt"), filepath.Join(c.dir, "pki", "etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := etcdPut(etcdURL, own, "/e2e-probe"); err != nil {
		t.Errorf("the server's own etcd certificate: %v", err)
	}

	// 4. node1's owner uncordons and relabels its node, marks it a relay
	// (which would decrypt other nodes' traffic) and raises its capacity
	// cap: a node writes only its status.
	c.mustShoal("node", "cordon", "node1")
	nodeHTTP := nodeClient(t, nodePKI)
	var n api.Node
	_, body = do(t, nodeHTTP, http.MethodGet, c.url+"/api/v1/nodes/node1", "")
	if err := json.Unmarshal([]byte(body), &n); err != nil {
		t.Fatalf("node1 reading its Node: %v: %s", err, body)
	}
	n.Spec.Unschedulable = false
	n.Metadata.Labels = map[string]string{"tier": "trusted"}
	n.Spec.Relay = true
	n.Spec.Capacity.MilliCPU = 1_000_000
	b, _ := json.Marshal(&n)
	code, body = do(t, nodeHTTP, http.MethodPut, c.url+"/api/v1/nodes/node1", string(b))
	if code != http.StatusForbidden || !strings.Contains(body, "writes only its status") {
		t.Errorf("node1 uncordoning itself: %d %s, want 403", code, body)
	}
	if got := c.mustShoal("get", "node", "node1", "-o", "json"); !strings.Contains(got, `"unschedulable": true`) || strings.Contains(got, "trusted") ||
		strings.Contains(got, `"relay": true`) || strings.Contains(got, "1000000") {
		t.Errorf("node1 changed its own spec:\n%s", got)
	}
	c.mustShoal("node", "uncordon", "node1")

	// 5. Another machine joins with half of node1's subnet: refused, and
	// no Node is made.
	half := strings.Replace(c.nodes[0].subnet, ".0/24", ".128/25", 1)
	dir := filepath.Join(c.dir, "agent-thief")
	nd := newNode(t, "thief", c.ctd, dir)
	token := strings.TrimSpace(c.mustShoal("token", "create", "--ttl", "10m"))
	thief := startProc(t, append([]string{"agent", "--server", c.url, "--token", token, "--data-dir", dir, "--containerd-address", c.ctd},
		append(nd.agentFlags(), "--subnet", half)...)...)
	c.eventually(30*time.Second, "the thief's agent refused", func() (bool, string) {
		select {
		case <-thief.done:
			return true, ""
		default:
			return false, thief.output()
		}
	})
	if out := thief.output(); !strings.Contains(out, "overlaps node node1's subnet") {
		t.Errorf("the overlapping join did not say why:\n%s", out)
	}
	if out, _ := c.shoal("get", "node", "thief"); !strings.Contains(out, "not found") {
		t.Errorf("the refused join left a Node:\n%s", out)
	}

	// 6. The tenant publishes a port a program on the node listens on: the
	// program keeps it.
	taken := listenNodePort(t)
	defer taken.Close()
	go func() {
		_ = http.Serve(taken, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("mine\n")) }))
	}()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	grab := c.writeFile(`apiVersion: shoal/v1
kind: App
metadata: {name: grab, namespace: mallory}
spec:
  image: shoal.local/hello:v1
  ports: [{name: http, containerPort: 8080, publish: ` + strconv.Itoa(takenPort) + `}]
  resources: {cpu: 50m, memory: 32Mi}
`)
	if out, err := mal("apply", "-f", grab, "--wait", "--timeout", "90s"); err != nil {
		t.Fatalf("grab: %v\n%s", err, out)
	}
	c.eventually(30*time.Second, "the node says the port is in use", func() (bool, string) {
		out := c.mustShoal("events", "-A")
		return strings.Contains(out, "PortNotOpened") && strings.Contains(out, strconv.Itoa(takenPort)), out
	})
	for range 5 {
		if out, err := httpGet(c.publishedURL("node1", takenPort)); err != nil || !strings.Contains(out, "mine") {
			t.Errorf("the node's own listener on %d: %q, %v (the tenant took it over)", takenPort, out, err)
		}
	}

	// 7. The tenant re-pushes the default namespace's image tag: refused.
	if out, err := mal("image", "push", helloV2); err == nil || !strings.Contains(out, "default") {
		t.Errorf("the tenant pushing shoal.local/hello: %v\n%s", err, out)
	}
	if out := c.mustShoal("image", "list"); strings.Contains(out, "hello:v2") {
		t.Errorf("the refused push left a tag:\n%s", out)
	}

	// 8. A revoked token's open watch ends.
	watcherConf := filepath.Join(shortTempDir(t), "watcher.conf")
	c.mustShoal("user", "create", "watcher", "--role", "viewer", "--token", "--ttl", "1h", "-o", watcherConf)
	watch := exec.Command(shoalBin, "--config", watcherConf, "get", "instances", "-w")
	wout := &syncWriter{buf: &bytes.Buffer{}}
	watch.Stdout, watch.Stderr = wout, wout
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- watch.Wait() }()
	t.Cleanup(func() { _ = watch.Process.Kill() })
	c.eventually(30*time.Second, "the watch lists bank", func() (bool, string) { return strings.Contains(wout.String(), "bank"), wout.String() })
	var id string
	for _, line := range strings.Split(c.mustShoal("token", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "user" && f[2] == "watcher" {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatal("no token of user watcher")
	}
	c.mustShoal("token", "revoke", id)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Errorf("the revoked token's watch goes on:\n%s", wout.String())
	}

	victimAnswers("after")
}

// clientFromConf is an HTTP client holding a CLI config's certificate.
func clientFromConf(t *testing.T, conf string) *http.Client {
	t.Helper()
	cfg, err := client.ReadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// nodeClient is an HTTP client holding a node's certificate (the agent's
// pki directory).
func nodeClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}}}
}

func do(t *testing.T, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// etcdPut writes a key to etcd at endpoint presenting kp. The server's
// certificate is not checked: what is tested is whether etcd admits kp.
func etcdPut(endpoint string, kp tls.Certificate, key string) error {
	raw, err := storetest.Connect([]string{endpoint}, &tls.Config{Certificates: []tls.Certificate{kp}, InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return raw.Put(ctx, key, `{"spec":{"roles":[{"role":"cluster-admin"}]}}`)
}
