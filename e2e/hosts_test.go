package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	hosts "github.com/shoal-dev/shoal/test/cluster"
)

// machine is one simulated host running a shoal server and agent.
type machine struct {
	name          string
	host          *hosts.Host
	serverDir     string
	server, agent *hosts.Proc
	node          node
}

// conf is the machine's server's admin.conf.
func (m *machine) conf() string { return filepath.Join(m.serverDir, "admin.conf") }

// url is the machine's API.
func (m *machine) url() string { return "https://" + m.host.IP + ":7070" }

// shoalOn runs the CLI on host h with conf.
func shoalOn(h *hosts.Host, conf string, args ...string) (string, error) {
	cmd := h.Command(shoalBin, append([]string{"--config", conf}, args...)...)
	timer := time.AfterFunc(2*time.Minute, func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMachinesSurviveTheLeadersDeath: three machines on a switch, each
// running a server and an agent. kill -9 the controllers' leader during a
// rolling update: a new leader finishes it, the app ends at exactly its
// replicas, and every write the dead server acknowledged is still there.
// Then one machine is cut off for 30 s: its instances are replaced, and
// fenced when it is back.
func TestMachinesSurviveTheLeadersDeath(t *testing.T) {
	ctd, ms, must := threeMachines(t)
	first := ms[0]
	app := func(version string) string {
		return `apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:` + version + `
  replicas: 3
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, containerPort: 8080}]
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1, initialDelaySeconds: 2}
`
	}
	manifest := func(y string) string {
		f := filepath.Join(shortTempDir(t), "manifest.yaml")
		if err := os.WriteFile(f, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	must(first, "apply", "-f", manifest(app("v1")), "--wait", "--timeout", "120s")

	leader := leaderOf(ms, first)
	if leader == nil {
		t.Fatal("no leader")
	}
	// Writes the leader acknowledges, then the rolling update, then kill -9.
	var acked []string
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("note-%d", i)
		y := "apiVersion: shoal/v1\nkind: Secret\nmetadata: {name: " + name + "}\nspec: {data: {n: \"" + name + "\"}}\n"
		if _, err := shoalOn(leader.host, leader.conf(), "apply", "-f", manifest(y)); err == nil {
			acked = append(acked, name)
		}
	}
	must(leader, "apply", "-f", manifest(app("v2")))
	time.Sleep(1500 * time.Millisecond) // the rollout is under way
	leader.server.Kill9()
	t.Logf("killed the leader, %s, during the rollout", leader.name)

	var other *machine
	for _, m := range ms {
		if m != leader {
			other = m
			break
		}
	}
	eventually(t, 120*time.Second, "a new leader finishes the rollout: 3 instances, all v2 and ready", func() (bool, string) {
		out, err := shoalOn(other.host, other.conf(), "get", "instances", "-o", "json")
		if err != nil {
			return false, out
		}
		var list struct{ Items []*api.Instance }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, in := range list.Items {
			if in.Status.Phase == api.PhaseRunning && in.Status.Ready && strings.HasPrefix(in.Spec.Template.Image, "shoal.local/hello:v2@") {
				ready++
			}
		}
		return len(list.Items) == 3 && ready == 3, summarize(list.Items)
	})
	for _, name := range acked {
		if out, err := shoalOn(other.host, other.conf(), "get", "secret", name); err != nil {
			t.Errorf("secret %s, acknowledged before the kill, is gone: %v\n%s", name, err, out)
		}
	}
	if len(acked) == 0 {
		t.Error("the leader acknowledged no write before the kill")
	}
	// Exactly three containers run across the machines.
	tasks := 0
	for _, m := range ms {
		tasks += runningOn(t, ctd, m)
	}
	if tasks != 3 {
		t.Errorf("%d containers run across the machines, want 3", tasks)
	}

	// The killed server comes back as the member it was.
	leader.server.Start()
	eventually(t, 60*time.Second, "three servers Ready again", func() (bool, string) {
		out, err := shoalOn(other.host, other.conf(), "get", "servers")
		return err == nil && strings.Count(out, "Ready") == 3, out
	})

	// Cut a machine off for 30 s: its instances are replaced on the others
	// within the grace period and a few seconds; healed, it stops its old
	// copies, and the app settles at exactly 3.
	var cut *machine
	for _, m := range ms {
		if m != leader && m != other {
			cut = m
		}
	}
	if n := runningOn(t, ctd, cut); n == 0 {
		t.Fatalf("nothing runs on %s to be replaced", cut.name)
	}
	cut.host.Cut()
	cutAt := time.Now()
	eventually(t, 60*time.Second, "the cut-off machine's instances replaced on the others", func() (bool, string) {
		out, err := shoalOn(other.host, other.conf(), "get", "instances", "-o", "json")
		if err != nil {
			return false, out
		}
		var list struct{ Items []*api.Instance }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err.Error()
		}
		elsewhere := 0
		for _, in := range list.Items {
			if in.Spec.Node != cut.node.name && in.Status.Phase == api.PhaseRunning && in.Status.Ready {
				elsewhere++
			}
		}
		return elsewhere == 3, summarize(list.Items)
	})
	t.Logf("replaced %v after the cut", time.Since(cutAt).Round(100*time.Millisecond))
	if n := runningOn(t, ctd, cut); n == 0 {
		t.Errorf("the cut-off machine stopped its containers while cut off; they run on until it hears otherwise")
	}
	time.Sleep(time.Until(cutAt.Add(30 * time.Second)))
	cut.host.Heal()
	eventually(t, 60*time.Second, "healed: the old copies stopped, exactly 3 running", func() (bool, string) {
		on := map[string]int{}
		total := 0
		for _, m := range ms {
			on[m.name] = runningOn(t, ctd, m)
			total += on[m.name]
		}
		return on[cut.name] == 0 && total == 3, fmt.Sprint(on)
	})
	time.Sleep(3 * time.Second)
	total := 0
	for _, m := range ms {
		total += runningOn(t, ctd, m)
	}
	if total != 3 {
		t.Errorf("after the heal settled %d containers run, want 3", total)
	}
}

// runningOn counts the running containers of a machine's agent.
func runningOn(t *testing.T, ctd string, m *machine) int {
	t.Helper()
	return runningIn(t, ctd, m.node.runtimeNS)
}

// threeMachines starts three simulated machines, each running a server
// (one cluster: the second and third join the first) and an agent, with
// both hello images pushed; must runs the CLI on a machine and fails the
// test on an error.
func threeMachines(t *testing.T) (ctd string, ms []*machine, must func(m *machine, args ...string) string) {
	ctd = requireRoot(t)
	net := hosts.New(t)
	for i := 1; i <= 3; i++ {
		m := &machine{name: fmt.Sprintf("m%d", i), host: net.AddHost(fmt.Sprintf("m%d", i)), serverDir: shortTempDir(t)}
		ms = append(ms, m)
	}
	first := ms[0]
	startServer(t, first)
	must = func(m *machine, args ...string) string {
		t.Helper()
		out, err := shoalOn(m.host, m.conf(), args...)
		if err != nil {
			t.Fatalf("shoal %s on %s: %v\n%s", strings.Join(args, " "), m.name, err, out)
		}
		return out
	}
	for _, m := range ms[1:] {
		// One single-use server token per joining server.
		token := strings.TrimSpace(must(first, "token", "create", "--role", "server", "--ttl", "10m"))
		startServer(t, m, "--join", first.url(), "--token", token)
	}
	must(first, "image", "push", helloV1)
	must(first, "image", "push", helloV2)
	for _, m := range ms {
		startAgent(t, ctd, m, m, "--agent-listen", m.host.IP+":0")
	}
	eventually(t, 60*time.Second, "three nodes Ready", func() (bool, string) {
		out, _ := shoalOn(first.host, first.conf(), "get", "nodes")
		return strings.Count(out, "Ready") == 3 && !strings.Contains(out, "NotReady"), out
	})
	return ctd, ms, must
}

// startServer starts a server on m (extra: --join and --token) and waits
// until it answers.
func startServer(t *testing.T, m *machine, extra ...string) {
	t.Helper()
	args := append([]string{"server", "--name", "s" + m.name[1:], "--data-dir", m.serverDir,
		"--listen", m.host.IP + ":7070", "--advertise-address", m.host.IP, "--cluster-cidr", e2eClusterCIDR}, extra...)
	m.server = m.host.Start(shoalBin, args...)
	eventually(t, 60*time.Second, "server on "+m.name+" answers", func() (bool, string) {
		out, err := shoalOn(m.host, m.conf(), "version")
		return err == nil && strings.Contains(out, "server:") && !strings.Contains(out, "unreachable"), out
	})
}

// startAgent joins m to the cluster of server machine s with an agent of
// its own; `shoal node reset` cleans up after it on m when the test ends.
func startAgent(t *testing.T, ctd string, m, s *machine, extra ...string) {
	t.Helper()
	m.node = nodeFor("n" + m.name[1:])
	dataDir := filepath.Join(m.serverDir, "agent")
	nd := m.node
	m.host.AfterStop(func() {
		out, err := m.host.Command(shoalBin, "node", "reset", "--data-dir", dataDir, "--containerd-address", ctd,
			"--runtime-namespace", nd.runtimeNS, "--bridge", nd.bridge, "--routes=false").CombinedOutput()
		if err != nil {
			t.Errorf("node reset on %s: %v\n%s", m.name, err, out)
		}
	})
	out, err := shoalOn(s.host, s.conf(), "token", "create", "--ttl", "10m")
	if err != nil {
		t.Fatalf("token for %s: %v\n%s", m.name, err, out)
	}
	args := append([]string{"agent", "--server", s.url(), "--token", strings.TrimSpace(out), "--data-dir", dataDir,
		"--containerd-address", ctd, "--node-ip", m.host.IP}, nd.agentFlags()...)
	m.agent = m.host.Start(shoalBin, append(args, extra...)...)
}

// leaderOf is the machine whose server leads the controllers, as m's
// server says (nil when none does).
func leaderOf(ms []*machine, m *machine) *machine {
	out, err := shoalOn(m.host, m.conf(), "get", "servers")
	if err != nil {
		return nil
	}
	for _, l := range nonEmptyLines(out)[1:] {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "*" {
			for _, x := range ms {
				if "s"+x.name[1:] == f[0] {
					return x
				}
			}
		}
	}
	return nil
}

// readyElsewhere counts the instances Running and ready on nodes other
// than not's, as m's server says.
func readyElsewhere(m *machine, not string) (int, string) {
	out, err := shoalOn(m.host, m.conf(), "get", "instances", "-o", "json")
	if err != nil {
		return 0, out
	}
	var list struct{ Items []*api.Instance }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return 0, err.Error()
	}
	n := 0
	for _, in := range list.Items {
		if in.Spec.Node != not && in.Status.Phase == api.PhaseRunning && in.Status.Ready {
			n++
		}
	}
	return n, summarize(list.Items)
}

// TestFailoverFigures prints, for make bench, how long a new leader takes
// to take over after kill -9 and how long a cut-off node's instances take
// to be Ready elsewhere, with the defaults. It runs only with
// SHOAL_BENCH_FAILOVER=1.
func TestFailoverFigures(t *testing.T) {
	if os.Getenv("SHOAL_BENCH_FAILOVER") == "" {
		t.Skip("a benchmark: make bench runs it (SHOAL_BENCH_FAILOVER=1)")
	}
	_, ms, must := threeMachines(t)
	f, err := os.CreateTemp(shortTempDir(t), "app-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v1
  replicas: 2
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, containerPort: 8080}]
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1}
`)
	f.Close()
	must(ms[0], "apply", "-f", f.Name(), "--wait", "--timeout", "120s")

	leader := leaderOf(ms, ms[0])
	if leader == nil {
		t.Fatal("no leader")
	}
	var other *machine
	for _, m := range ms {
		if m != leader {
			other = m
			break
		}
	}
	killed := time.Now()
	leader.server.Kill9()
	for l := leaderOf(ms, other); l == nil || l == leader; l = leaderOf(ms, other) {
		if time.Since(killed) > time.Minute {
			t.Fatal("no new leader within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	takeover := time.Since(killed)
	leader.server.Start()
	eventually(t, 60*time.Second, "three servers Ready again", func() (bool, string) {
		out, err := shoalOn(other.host, other.conf(), "get", "servers")
		return err == nil && strings.Count(out, "Ready") == 3, out
	})

	// Two replicas on three machines: cut one that runs an instance (not
	// the one the CLI talks to).
	var cut *machine
	out, _ := shoalOn(other.host, other.conf(), "get", "instances", "-o", "json")
	for _, m := range ms {
		if m != other && strings.Contains(out, `"node": "`+m.node.name+`"`) {
			cut = m
		}
	}
	if cut == nil {
		t.Fatalf("no instance on a machine but %s:\n%s", other.name, out)
	}
	cut.host.Cut()
	cutAt := time.Now()
	for {
		if n, _ := readyElsewhere(other, cut.node.name); n == 2 {
			break
		}
		if time.Since(cutAt) > 2*time.Minute {
			t.Fatal("the cut-off node's instance was not Ready elsewhere within two minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	replaced := time.Since(cutAt)
	cut.host.Heal()
	fmt.Printf("failover: new leader %.1f s after kill -9 of the old (target < 5 s); a cut-off node's instances Ready elsewhere after %.1f s (grace 10 s; target < 15 s)\n",
		takeover.Seconds(), replaced.Seconds())
}
