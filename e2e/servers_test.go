package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// member is one more server of a cluster, started with --join.
type member struct {
	name, dir, conf, url string
	p                    *proc
}

// joinServer starts a server that joins c's cluster through the server at
// via, and waits until it answers.
func (c *cluster) joinServer(name, via, token string) *member {
	c.t.Helper()
	m := &member{name: name, dir: shortTempDir(c.t)}
	m.conf = filepath.Join(m.dir, "admin.conf")
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(c.t))
	m.url = "https://" + listen
	m.p = startProc(c.t, "server", "--name", name, "--data-dir", m.dir, "--listen", listen, "--join", via, "--token", token, "--cluster-cidr", e2eClusterCIDR)
	c.eventually(60*time.Second, "server "+name+" joins and answers", func() (bool, string) {
		cfg, err := client.ReadConfig(m.conf)
		if err != nil {
			return false, err.Error()
		}
		api, err := client.FromConfig(cfg)
		if err != nil {
			return false, err.Error()
		}
		if err := api.Ping(context.Background()); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return m
}

// as runs the CLI with another admin.conf.
func (c *cluster) as(conf string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, shoalBin, append([]string{"--config", conf}, args...)...).CombinedOutput()
	return string(out), err
}

// serverStatuses is `get servers` as name -> "STATUS[*]" (* for the
// leader).
func (c *cluster) serverStatuses(conf string) (map[string]string, string) {
	out, err := c.as(conf, "get", "servers")
	if err != nil {
		return nil, out
	}
	m := map[string]string{}
	for _, line := range nonEmptyLines(out)[1:] {
		f := strings.Fields(line)
		if len(f) >= 3 {
			m[f[0]] = f[1]
			if f[2] == "*" {
				m[f[0]] += "*"
			}
		}
	}
	return m, out
}

const webApp = `apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v2
  replicas: 2
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, containerPort: 8080}]
`

// TestReplicatedControlPlane: three servers, one etcd cluster. Losing one
// (the leader, kill -9) changes nothing for users: the CLI and the agent
// fail over, another server's controllers take over. Losing two makes
// the last one answer 503 with the reason while the containers keep
// running; when they come back, everything converges.
func TestReplicatedControlPlane(t *testing.T) {
	c := serverCluster(t, "--name", "s1")
	c.mustShoal("image", "push", helloV1)
	// A server token serves one join unless made with --uses: s2 and s3
	// share this one.
	token := strings.TrimSpace(c.mustShoal("token", "create", "--role", "server", "--ttl", "10m", "--uses", "2"))

	// A join with an agent token is refused with the reason.
	agentToken := strings.TrimSpace(c.mustShoal("token", "create"))
	out, err := exec.Command(shoalBin, "server", "--name", "bad", "--data-dir", shortTempDir(t), "--listen", "127.0.0.1:0", "--join", c.url, "--token", agentToken).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "a server joins with a server token") {
		t.Fatalf("server join with an agent token: %v\n%s", err, out)
	}

	s2 := c.joinServer("s2", c.url, token)
	s3 := c.joinServer("s3", s2.url, token) // through s2: any server admits
	c.eventually(30*time.Second, "three servers Ready, s1 leading", func() (bool, string) {
		st, out := c.serverStatuses(s3.conf)
		return st["s1"] == "Ready*" && st["s2"] == "Ready" && st["s3"] == "Ready", out
	})
	// The joined servers share the CA and the secret keys: a Secret sealed
	// by s1 opens on s3.
	c.applyYAML("apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: db}\nspec: {data: {password: hunter2}}\n")
	if out, err := c.as(s3.conf, "get", "secret", "db", "-o", "yaml", "--reveal"); err != nil || !strings.Contains(out, "hunter2") {
		t.Fatalf("reveal on s3: %v\n%s", err, out)
	}

	// A key made by one server (rotate-key on s2) reaches the others
	// through the store: a Secret sealed with it opens on s3.
	if out, err := c.as(s2.conf, "secret", "rotate-key"); err != nil {
		t.Fatalf("rotate-key on s2: %v\n%s", err, out)
	}
	if out, err := c.as(s2.conf, "apply", "-f", c.writeFile("apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: db2}\nspec: {data: {password: swordfish}}\n")); err != nil {
		t.Fatalf("apply on s2: %v\n%s", err, out)
	}
	c.eventually(10*time.Second, "s3 opens a Secret sealed with s2's new key", func() (bool, string) {
		out, err := c.as(s3.conf, "get", "secret", "db2", "-o", "yaml", "--reveal")
		return err == nil && strings.Contains(out, "swordfish"), out
	})

	c.addAgent("n1")
	c.applyYAML(strings.Replace(webApp, "hello:v2", "hello:v1", 1), "--wait", "--timeout", "90s")
	c.eventually(40*time.Second, "the agent knows all three servers", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(c.dir, "agent-n1", "servers.json"))
		return err == nil && strings.Count(string(b), "https://") == 3, string(b)
	})

	// kill -9 the leader: the others go on; the CLI (s1's admin.conf
	// names s2 and s3 once they are known) and the agent fail over.
	c.server.kill9()
	if out, err := c.as(s2.conf, "scale", "app", "web", "--replicas", "3"); err != nil {
		t.Fatalf("scale through s2 with s1 down: %v\n%s", err, out)
	}
	c.eventually(60*time.Second, "a new leader places the third replica and the agent starts it", func() (bool, string) {
		out, err := c.as(s3.conf, "get", "app", "web")
		return err == nil && strings.Contains(out, "3/3"), out
	})
	// An image pushed to one server is served by every other: s3 copies
	// it from s2 when a node asks. The rollout to it works whichever server
	// the agent pulls from.
	if out, err := c.as(s2.conf, "image", "push", helloV2); err != nil {
		t.Fatalf("push to s2: %v\n%s", err, out)
	}
	s3cfg, err := client.ReadConfig(s3.conf)
	if err != nil {
		t.Fatal(err)
	}
	s3tls, err := s3cfg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := getTLS(s3.url+"/v2/hello/manifests/v2", s3tls); err != nil || !strings.Contains(out, "layers") {
		t.Fatalf("s3 serves the image pushed to s2: %v\n%s", err, out)
	}
	if out, err := c.as(s2.conf, "apply", "-f", c.writeFile(strings.Replace(webApp, "replicas: 2", "replicas: 3", 1)+"  # v2\n"), "--wait", "--timeout", "90s"); err != nil {
		t.Fatalf("roll out v2 with s1 down: %v\n%s", err, out)
	}
	st, sout := c.serverStatuses(s2.conf)
	if !strings.HasSuffix(st["s2"], "*") && !strings.HasSuffix(st["s3"], "*") {
		t.Errorf("no leader among s2 and s3 after s1's death:\n%s", sout)
	}

	// Two of three down: the last answers 503 with the reason; the
	// containers keep running.
	s2.p.kill9()
	c.eventually(20*time.Second, "s3 says it has no quorum", func() (bool, string) {
		out, err := c.as(s3.conf, "get", "apps")
		return err != nil && strings.Contains(out, "no quorum: 1 of 3 servers reachable (2 needed)"), out
	})
	before := c.ctr(c.nodes[0].runtimeNS, "tasks", "ls")
	time.Sleep(3 * time.Second)
	if after := c.ctr(c.nodes[0].runtimeNS, "tasks", "ls"); strings.Count(after, "RUNNING") != 3 || strings.Count(before, "RUNNING") != 3 {
		t.Errorf("containers while the control plane has no quorum: before\n%s\nafter\n%s", before, after)
	}

	// Back up: everything converges, nothing is lost or doubled.
	c.server.start()
	s2.p.start()
	c.eventually(60*time.Second, "three servers Ready again", func() (bool, string) {
		st, out := c.serverStatuses(s3.conf)
		return st["s1"] != "" && strings.HasPrefix(st["s1"], "Ready") && strings.HasPrefix(st["s2"], "Ready") && strings.HasPrefix(st["s3"], "Ready"), out
	})
	c.eventually(30*time.Second, "a write after the quorum came back", func() (bool, string) {
		out, err := c.as(s3.conf, "scale", "app", "web", "--replicas", "2")
		return err == nil, out
	})
	c.eventually(60*time.Second, "web back at exactly 2 running", func() (bool, string) {
		out := c.ctr(c.nodes[0].runtimeNS, "tasks", "ls")
		return strings.Count(out, "RUNNING") == 2, out
	})

	// A server leaves for good.
	s3.p.stop()
	if out, err := c.as(s2.conf, "server", "remove", "s3"); err != nil || !strings.Contains(out, "server s3 removed") {
		t.Fatalf("server remove: %v\n%s", err, out)
	}
	if st, out := c.serverStatuses(s2.conf); len(st) != 2 || st["s3"] != "" {
		t.Errorf("after removing s3:\n%s", out)
	}
}
