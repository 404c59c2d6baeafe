package e2e

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// runningTasks counts the RUNNING tasks of a node's runtime namespace.
func (c *cluster) runningTasks(n node) int { return runningIn(c.t, c.ctd, n.runtimeNS) }

// runningIn counts the RUNNING tasks of a containerd namespace.
func runningIn(t *testing.T, ctd, runtimeNS string) int {
	t.Helper()
	out, err := exec.Command("ctr", "--address", ctd, "-n", runtimeNS, "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	return strings.Count(string(out), "RUNNING")
}

// TestPartitionedNodeIsReplacedAndFenced: a node cut off from the control
// plane (its agent frozen: no heartbeat, its containers still running)
// has its instances replaced on another node after the grace period; when
// it comes back, its agent stops the copies it no longer owns, so the app
// settles at exactly its replicas. Then a drain moves everything off the
// other node, new instances ready first.
func TestPartitionedNodeIsReplacedAndFenced(t *testing.T) {
	c := serverCluster(t)
	a1 := c.addAgent("n1")
	c.addAgent("n2")
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v1
  replicas: 2
  placement: {maxPerNode: 2}
  resources: {cpu: 50m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	perNode := map[string]int{}
	for _, in := range c.running("web", 2) {
		perNode[in.Spec.Node]++
	}
	if perNode["n1"] != 1 || perNode["n2"] != 1 {
		t.Fatalf("web per node = %v, want one on each", perNode)
	}

	// Cut n1 off for longer than the grace period (10 s).
	if err := a1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	c.eventually(30*time.Second, "n1's instance replaced on n2", func() (bool, string) {
		ins := c.instances("web")
		on2 := 0
		for _, in := range ins {
			if in.Spec.Node == "n2" && in.Status.Phase == api.PhaseRunning {
				on2++
			}
		}
		return on2 == 2 && len(ins) == 2, summarize(ins)
	})
	took := time.Since(cut)
	t.Logf("replaced %v after the node went silent", took.Round(100*time.Millisecond))
	if took < 9*time.Second {
		t.Errorf("n1's instance was replaced %v after it went silent, before the 10 s grace period", took)
	}
	// Its old copy still runs on the frozen node: it is fenced when the
	// node comes back.
	if n := c.runningTasks(c.nodes[0]); n != 1 {
		t.Errorf("the frozen node runs %d tasks, want its 1 (nothing stops it while cut off)", n)
	}
	if err := a1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "n1 back: its old copy stopped, web at exactly 2", func() (bool, string) {
		n1, n2 := c.runningTasks(c.nodes[0]), c.runningTasks(c.nodes[1])
		return n1 == 0 && n2 == 2, "n1 " + itoa(n1) + " n2 " + itoa(n2)
	})
	c.eventually(20*time.Second, "n1 Ready again", func() (bool, string) {
		out := c.mustShoal("get", "nodes")
		for _, l := range nonEmptyLines(out) {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "n1" {
				return f[1] == "Ready", out
			}
		}
		return false, out
	})
	// Settled: stays at 2.
	time.Sleep(2 * time.Second)
	if n1, n2 := c.runningTasks(c.nodes[0]), c.runningTasks(c.nodes[1]); n1+n2 != 2 {
		t.Errorf("after the heal settled: %d + %d tasks, want 2", n1, n2)
	}

	// Drain n2: both instances move to n1, new ones ready first.
	out := c.mustShoal("node", "drain", "n2", "--timeout", "90s")
	if !strings.Contains(out, "node n2 drained") {
		t.Fatalf("drain:\n%s", out)
	}
	for _, in := range c.running("web", 2) {
		if in.Spec.Node != "n1" {
			t.Errorf("after draining n2, %s runs on %s", in.Metadata.Name, in.Spec.Node)
		}
	}
	c.mustShoal("node", "uncordon", "n2")
}

// TestAgentKilledWhileStarting: kill -9 the agent 20 times in a row while
// its instances start; afterwards there is no orphaned container, no
// duplicate and no leaked IP.
func TestAgentKilledWhileStarting(t *testing.T) {
	c := serverCluster(t)
	agent := c.addAgent("n1")
	n := c.nodes[0]
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v1
  replicas: 5
  resources: {cpu: 10m, memory: 16Mi}
`)
	for i := 0; i < 20; i++ {
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		agent.kill9()
		if i == 10 {
			// Half-way, the app changes too: instances start and stop.
			c.mustShoal("scale", "app", "web", "--replicas", "3")
		}
		agent.start()
	}
	c.eventually(90*time.Second, "web at 3 running, one task each", func() (bool, string) {
		ins := c.instances("web")
		running := 0
		for _, in := range ins {
			if in.Status.Phase == api.PhaseRunning {
				running++
			}
		}
		tasks := c.runningTasks(n)
		return running == 3 && len(ins) == 3 && tasks == 3, summarize(ins) + " tasks " + itoa(tasks)
	})
	if got := len(nonEmptyLines(c.ctr(n.runtimeNS, "containers", "ls", "-q"))); got != 3 {
		t.Errorf("%d containers, want 3 (no orphans)", got)
	}
	// host-local keeps one file per allocated IP (plus its own
	// bookkeeping files, which are not addresses).
	ipam := filepath.Join(c.dir, "agent-n1", "runtime", "cni", "ipam")
	var ips []string
	_ = filepath.Walk(ipam, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Count(fi.Name(), ".") == 3 {
			ips = append(ips, fi.Name())
		}
		return nil
	})
	if len(ips) != 3 {
		t.Errorf("%d IPs allocated, want 3 (no leaks): %v", len(ips), ips)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// summarize is instances as "name@node:phase" for failure messages.
func summarize(ins []*api.Instance) string {
	var parts []string
	for _, in := range ins {
		parts = append(parts, in.Metadata.Name+"@"+in.Spec.Node+":"+string(in.Status.Phase))
	}
	return strings.Join(parts, " ")
}
