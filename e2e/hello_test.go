package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const helloApp = `
apiVersion: shoal/v1
kind: App
metadata: {name: hello}
spec:
  image: shoal.local/hello:v1
  replicas: 3
  ports: [{name: http, containerPort: 8080}]
  resources: {cpu: 100m, memory: 32Mi}
  terminationGracePeriodSeconds: 5
---
apiVersion: shoal/v1
kind: App
metadata: {name: hello-public}
spec:
  image: shoal.local/hello:v1
  ports: [{name: http, containerPort: 8080, hostPort: %d}]
  resources: {cpu: 100m, memory: 32Mi}
`

// TestHelloWalkthrough follows the README: push, apply, curl every
// replica on its own IP and the published one on its hostPort, crash one,
// read logs, scale up and down, delete, and check nothing is left behind.
func TestHelloWalkthrough(t *testing.T) {
	c := upCluster(t)
	rtNS := c.nodes[0].runtimeNS
	out := c.mustShoal("image", "push", helloV1)
	if !strings.Contains(out, "hello:v1") {
		t.Fatalf("image push printed %q", out)
	}
	hostPort := freeNodePort(t)
	out = c.applyYAML(fmt.Sprintf(helloApp, hostPort), "--wait", "--timeout", "90s")
	if !strings.Contains(out, "app/hello rolled out: revision 1, 3/3 ready") {
		t.Fatalf("apply --wait printed:\n%s", out)
	}

	// Each replica answers on its own IP, with its own name.
	ins := c.running("hello", 3)
	for _, in := range ins {
		if in.Status.IP == "" {
			t.Fatalf("instance %s has no IP", in.Metadata.Name)
		}
		body := getEventually(t, "http://"+in.Status.IP+":8080/")
		if !strings.Contains(body, "hello v1 from "+in.Metadata.Name) {
			t.Fatalf("instance %s answered %q", in.Metadata.Name, body)
		}
	}
	// Inside a container, loopback works (the runtime brings lo up itself).
	if body := getEventually(t, "http://"+ins[0].Status.IP+":8080/fetch?url=http://127.0.0.1:8080/"); !strings.Contains(body, "hello v1 from "+ins[0].Metadata.Name) {
		t.Fatalf("GET 127.0.0.1 inside %s answered %q", ins[0].Metadata.Name, body)
	}
	// The published replica answers on the node's hostPort.
	if body := getEventually(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); !strings.Contains(body, "hello v1 from hello-public") {
		t.Fatalf("GET localhost:%d: %q", hostPort, body)
	}
	get := c.mustShoal("get", "instances")
	for _, in := range ins {
		if !strings.Contains(get, in.Metadata.Name) || !strings.Contains(get, in.Status.IP) {
			t.Fatalf("get instances does not show %s (%s):\n%s", in.Metadata.Name, in.Status.IP, get)
		}
	}

	// Crash one: it is restarted in place and the restart is counted.
	victim := ins[0]
	_, _ = httpGet("http://" + victim.Status.IP + ":8080/crash")
	c.eventually(30*time.Second, victim.Metadata.Name+" restarted", func() (bool, string) {
		for _, in := range c.instances("hello") {
			if in.Metadata.Name == victim.Metadata.Name {
				return in.Status.Restarts == 1 && in.Status.Phase == "Running", fmt.Sprintf("restarts=%d phase=%s msg=%q", in.Status.Restarts, in.Status.Phase, in.Status.Message)
			}
		}
		return false, "gone"
	})
	if body := getEventually(t, "http://"+victim.Status.IP+":8080/"); !strings.Contains(body, victim.Metadata.Name) {
		t.Fatalf("restarted instance answers %q on its IP", body)
	}
	c.eventually(10*time.Second, "describe shows the crash among the events", func() (bool, string) {
		d := c.mustShoal("describe", "app", "hello")
		return strings.Contains(d, "Exited") && strings.Contains(d, "exited with code 3"), d
	})
	// The agent counts it on its own /metrics.
	c.eventually(10*time.Second, "the agent's metrics count the restart", func() (bool, string) {
		m, err := c.agentGet(victim.Spec.Node, "/metrics")
		return err == nil && strings.Contains(m, "shoal_agent_container_restarts_total 1"), fmt.Sprint(err, m)
	})
	logs := c.mustShoal("logs", victim.Metadata.Name)
	if !strings.Contains(logs, "listening") {
		t.Fatalf("logs of %s: %q", victim.Metadata.Name, logs)
	}
	prev := c.mustShoal("logs", victim.Metadata.Name, "--previous")
	if !strings.Contains(prev, "exiting with code 3") {
		t.Fatalf("logs --previous of %s: %q", victim.Metadata.Name, prev)
	}
	if tail := c.mustShoal("logs", victim.Metadata.Name, "--tail", "1"); len(nonEmptyLines(tail)) != 1 {
		t.Fatalf("logs --tail 1 printed %q", tail)
	}
	if all := c.mustShoal("logs", "app/hello"); strings.Count(all, "listening") < 3 {
		t.Fatalf("logs app/hello: %q", all)
	}

	// Scale up and down.
	c.mustShoal("scale", "app", "hello", "--replicas", "5")
	c.running("hello", 5)
	c.mustShoal("scale", "app", "hello", "--replicas", "1")
	c.running("hello", 1)
	if n := len(nonEmptyLines(c.ctr(rtNS, "tasks", "ls", "-q"))); n != 2 {
		t.Fatalf("after scaling hello to 1: %d tasks in containerd, want 2 (hello + hello-public)", n)
	}

	// Delete: nothing is left behind.
	manifest := filepath.Join(c.dir, "hello.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(helloApp, hostPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustShoal("delete", "-f", manifest)
	c.eventually(30*time.Second, "no instances", func() (bool, string) {
		n := len(c.instances("hello")) + len(c.instances("hello-public"))
		return n == 0, fmt.Sprint(n, " left")
	})
	c.assertNothingLeft(rtNS)
	if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); err == nil {
		t.Fatalf("hostPort %d still answers after delete", hostPort)
	}
}

// assertNothingLeft checks containerd, the network namespaces, the IP
// allocations and the port-mapping rules of one runtime namespace.
func (c *cluster) assertNothingLeft(rtNS string) {
	c.t.Helper()
	c.eventually(20*time.Second, "containerd empty", func() (bool, string) {
		cs := nonEmptyLines(c.ctr(rtNS, "containers", "ls", "-q"))
		return len(cs) == 0, fmt.Sprint("containers: ", cs)
	})
	if s := nonEmptyLines(c.ctr(rtNS, "snapshots", "ls")); len(s) > 1+countImageLayers(c, rtNS) {
		c.t.Errorf("snapshots left in %s: %v", rtNS, s)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), rtNS+"-") {
			c.t.Errorf("network namespace left: /run/netns/%s", e.Name())
		}
	}
	if rules, err := exec.Command("iptables-save").Output(); err == nil && strings.Contains(string(rules), rtNS+"-") {
		c.t.Errorf("iptables rules left for %s", rtNS)
	}
	ipam, _ := filepath.Glob(filepath.Join(c.dir, "*", "runtime", "cni", "ipam", "*", "10.*"))
	if len(ipam) > 0 {
		c.t.Errorf("IP allocations left: %v", ipam)
	}
}

// countImageLayers is how many committed snapshots the images in ns hold
// (kept on purpose, like any image cache).
func countImageLayers(c *cluster, ns string) int {
	n := 0
	for _, l := range nonEmptyLines(c.ctr(ns, "snapshots", "ls")) {
		if strings.Contains(l, "Committed") {
			n++
		}
	}
	return n
}
