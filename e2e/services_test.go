package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

const servedHello = `
apiVersion: shoal/v1
kind: App
metadata: {name: hello}
spec:
  image: shoal.local/hello:%s
  replicas: 3
  env: [{name: HELLO_READY_DELAY, value: "%s"}]
  ports: [{name: http, containerPort: 8080, publish: %d}]
  resources: {cpu: 100m, memory: 32Mi}
  terminationGracePeriodSeconds: 5
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 1}
  update: {progressDeadlineSeconds: %d}
`

func servedHelloYAML(version, readyDelay string, publish, deadline int) string {
	return fmt.Sprintf(servedHello, version, readyDelay, publish, deadline)
}

// servedHelloCluster starts a cluster running hello v1 (three replicas,
// with readiness) published on a free port in the given mode, and returns
// that port's URL on the node's address once it answers.
func servedHelloCluster(t *testing.T, mode api.PublishMode) (*cluster, string) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	pub := freeNodePort(t)
	y := servedHelloYAML("v1", "0s", pub, 60)
	if mode != "" {
		y = strings.Replace(y, "publish: ", "publishMode: "+string(mode)+", publish: ", 1)
	}
	c.applyYAML(y, "--wait", "--timeout", "90s")
	url := c.publishedURL("node1", pub)
	getEventually(t, url)
	return c, url
}

// TestServiceDiscovery: an app finds another by name, and still does after
// every instance of the other was replaced.
func TestServiceDiscovery(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.mustShoal("image", "push", helloV2)
	pub := freeNodePort(t)
	c.applyYAML(servedHelloYAML("v1", "0s", pub, 60)+`---
apiVersion: shoal/v1
kind: App
metadata: {name: client}
spec:
  image: shoal.local/hello:v1
  ports: [{name: http, containerPort: 8080}]
  resources: {cpu: 50m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	app := c.getApp("hello")
	if app.Status.ServiceIP == "" {
		t.Fatalf("hello has no service IP: %+v", app.Status)
	}
	cl := c.running("client", 1)[0]
	for _, name := range []string{"hello", "hello.default", "hello.default.shoal"} {
		body := getEventually(t, fmt.Sprintf("http://%s:8080/fetch?url=http://%s:8080/", cl.Status.IP, name))
		if !strings.Contains(body, "hello v1 from hello-") {
			t.Fatalf("client fetching http://%s:8080/ got %q", name, body)
		}
	}
	// An instance reaching its own service may be sent to itself (hairpin).
	self := c.running("hello", 3)[0]
	for i := 0; i < 9; i++ {
		body, err := httpGet(fmt.Sprintf("http://%s:8080/fetch?url=http://hello:8080/", self.Status.IP))
		if err != nil || !strings.Contains(body, "hello v1 from hello-") {
			t.Fatalf("%s fetching its own service got %q, %v", self.Metadata.Name, body, err)
		}
	}
	// Replace every hello instance.
	c.applyYAML(servedHelloYAML("v2", "0s", pub, 60), "--wait", "--timeout", "90s")
	if ip := c.getApp("hello").Status.ServiceIP; ip != app.Status.ServiceIP {
		t.Fatalf("service IP moved from %s to %s", app.Status.ServiceIP, ip)
	}
	// The client's kept-alive connection to an old instance may serve a
	// last request while that instance drains; new connections reach v2.
	eventually(t, 20*time.Second, "the client reaches v2 by name", func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://%s:8080/fetch?url=http://hello:8080/", cl.Status.IP))
		return err == nil && strings.Contains(body, "hello v2 from hello-"), fmt.Sprint(body, err)
	})
	// From the node itself, the service address answers too.
	eventually(t, 20*time.Second, "the service address answers from the node", func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://%s:8080/", app.Status.ServiceIP))
		return err == nil && strings.Contains(body, "hello v2"), fmt.Sprint(body, err)
	})
}

// TestRollingUpdatesDropNothing: under continuous load through the
// published port, v1 → v2, undo back to v1, and a bad v3 that never gets
// ready (rolled back automatically) all finish with zero failed requests.
func TestRollingUpdatesDropNothing(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.mustShoal("image", "push", helloV2)
	pub := freeNodePort(t)
	c.applyYAML(servedHelloYAML("v1", "0s", pub, 60), "--wait", "--timeout", "90s")
	// The node's address, not loopback: the kernel forwards it (kernel
	// mode, the default), so this is the rollout through DNAT rules.
	url := c.publishedURL("node1", pub)
	getEventually(t, url)

	step := func(what string, run func()) {
		t.Helper()
		l := startLoad(url, 4, 50000, 3*time.Minute)
		eventually(t, 30*time.Second, "load under way", func() (bool, string) { return l.ok.Load() >= 200, "" })
		run()
		// Keep going a little after the change, and until the test has
		// sent at least 2,000 requests in all.
		time.Sleep(time.Second)
		eventually(t, 60*time.Second, "2,000 requests", func() (bool, string) {
			return l.ok.Load()+l.failed.Load() >= 2000, fmt.Sprint(l.ok.Load())
		})
		sum := l.stop()
		t.Logf("%s: %s", what, sum)
		if l.failed.Load() != 0 {
			t.Errorf("%s: %s", what, sum)
		}
		if l.ok.Load() < 2000 && what != "bad v3" {
			t.Errorf("%s: only %d requests made it; the test wants at least 2000 over the update", what, l.ok.Load())
		}
	}
	step("v1 to v2", func() {
		c.applyYAML(servedHelloYAML("v2", "0s", pub, 60), "--wait", "--timeout", "120s")
	})
	if body := getEventually(t, url); !strings.Contains(body, "hello v2") {
		t.Fatalf("after the update: %q", body)
	}
	step("undo to v1", func() {
		c.mustShoal("rollout", "undo", "app/hello")
		c.mustShoal("rollout", "status", "app/hello", "--timeout", "120s")
	})
	if body := getEventually(t, url); !strings.Contains(body, "hello v1") {
		t.Fatalf("after undo: %q", body)
	}
	step("bad v3", func() {
		out, err := c.shoal("apply", "-f", c.writeFile(servedHelloYAML("v2", "1h", pub, 8)), "--wait", "--timeout", "120s")
		if err == nil || !strings.Contains(out, "rolled back") {
			t.Errorf("apply --wait of a never-ready revision: err=%v\n%s", err, out)
		}
		c.eventually(60*time.Second, "automatic rollback complete", func() (bool, string) {
			a := c.getApp("hello")
			return a.Status.Rollout == api.RolloutComplete && a.Spec.Env[0].Value == "0s", a.Status.Rollout + " " + a.Status.Message
		})
		// It stopped after one surge instance.
		live := 0
		for _, in := range c.instances("hello") {
			if in.Metadata.DeletedAt.IsZero() {
				live++
			}
		}
		if n := live; n > 3 {
			t.Errorf("after the rollback %d instances remain", n)
		}
	})
	hist := c.mustShoal("rollout", "history", "app/hello")
	if !strings.Contains(hist, "automatic rollback") {
		t.Errorf("rollout history does not show the automatic rollback:\n%s", hist)
	}
}

// TestKillUnderLoad: with publishMode proxy, killing an instance's process
// under load costs no request: the proxy retries a refused connection on
// another instance, replays an idempotent request the crash cut, and drops
// the dead one within a second.
func TestKillUnderLoad(t *testing.T) {
	c, url := servedHelloCluster(t, api.PublishProxy)
	victim := c.running("hello", 3)[0]
	l := startLoad(url, 4, 100000, time.Minute)
	eventually(t, 30*time.Second, "load under way", func() (bool, string) { return l.ok.Load() >= 200, fmt.Sprint(l.ok.Load()) })
	_, _ = httpGet("http://" + victim.Status.IP + ":8080/crash")
	start := time.Now()
	atKill := l.ok.Load()
	c.eventually(10*time.Second, victim.Metadata.Name+" not ready", func() (bool, string) {
		for _, in := range c.instances("hello") {
			if in.Metadata.Name == victim.Metadata.Name {
				return !in.Status.Ready, fmt.Sprint("ready=", in.Status.Ready)
			}
		}
		return true, ""
	})
	t.Logf("the killed instance left the endpoints %s after the kill", time.Since(start).Round(10*time.Millisecond))
	// The load went on through the kill: at least 500 more answers after it.
	eventually(t, 30*time.Second, "load flowing after the kill", func() (bool, string) {
		return l.ok.Load() >= atKill+500, fmt.Sprint(l.ok.Load()-atKill, " since the kill")
	})
	sum := l.stop()
	t.Logf("kill under load: %s", sum)
	if l.failed.Load() != 0 {
		t.Errorf("kill under load: %s", sum)
	}
}

// TestKillUnderLoadKernelMode: in kernel mode (the default) a crash may
// fail the requests under way and those sent before the dead endpoint
// leaves the rules, as through kube-proxy; once it has left, not one more
// request fails, and the load goes on.
func TestKillUnderLoadKernelMode(t *testing.T) {
	c, url := servedHelloCluster(t, "")
	victim := c.running("hello", 3)[0]
	l := startLoad(url, 4, 100000, time.Minute)
	eventually(t, 30*time.Second, "load under way", func() (bool, string) { return l.ok.Load() >= 200, fmt.Sprint(l.ok.Load()) })
	_, _ = httpGet("http://" + victim.Status.IP + ":8080/crash")
	start := time.Now()
	c.eventually(10*time.Second, victim.Metadata.Name+" not ready", func() (bool, string) {
		for _, in := range c.instances("hello") {
			if in.Metadata.Name == victim.Metadata.Name {
				return !in.Status.Ready, fmt.Sprint("ready=", in.Status.Ready)
			}
		}
		return true, ""
	})
	left := time.Since(start)
	// The node's rules follow its watch within a moment; give it one.
	time.Sleep(500 * time.Millisecond)
	failedAtRemoval, okAtRemoval := l.failed.Load(), l.ok.Load()
	t.Logf("the killed instance left the endpoints %s after the kill; %d requests failed by then", left.Round(10*time.Millisecond), failedAtRemoval)
	eventually(t, 30*time.Second, "load flowing after the kill", func() (bool, string) {
		return l.ok.Load() >= okAtRemoval+1000, fmt.Sprint(l.ok.Load()-okAtRemoval, " since the removal")
	})
	sum := l.stop()
	t.Logf("kill under load: %s", sum)
	if n := l.failed.Load() - failedAtRemoval; n != 0 {
		t.Errorf("%d requests failed after the dead instance left the endpoints: %s", n, sum)
	}
}

// TestDeleteInstanceUnderLoadKernelMode: an instance deleted under load
// through a kernel-forwarded published port (it leaves the endpoints
// before it is stopped) costs no request.
func TestDeleteInstanceUnderLoadKernelMode(t *testing.T) {
	c, url := servedHelloCluster(t, "")
	victim := c.running("hello", 3)[0]
	// A container reaches the published port too, whichever instance
	// answers (itself included: masqueraded, so the answer comes back).
	for range 6 {
		if body, err := httpGet("http://" + victim.Status.IP + ":8080/fetch?url=" + url); err != nil || !strings.Contains(body, "hello v1") {
			t.Fatalf("a container fetching %s: %q, %v", url, body, err)
		}
	}
	l := startLoad(url, 4, 100000, time.Minute)
	eventually(t, 30*time.Second, "load under way", func() (bool, string) { return l.ok.Load() >= 200, fmt.Sprint(l.ok.Load()) })
	c.mustShoal("delete", "instance", victim.Metadata.Name)
	c.eventually(60*time.Second, "the deleted instance replaced", func() (bool, string) {
		for _, in := range c.instances("hello") {
			if in.Metadata.UID == victim.Metadata.UID {
				return false, "still there"
			}
		}
		return len(c.running("hello", 3)) == 3, ""
	})
	atEnd := l.ok.Load()
	eventually(t, 30*time.Second, "load flowing after the delete", func() (bool, string) { return l.ok.Load() >= atEnd+500, "" })
	sum := l.stop()
	t.Logf("delete under load: %s", sum)
	if l.failed.Load() != 0 {
		t.Errorf("delete under load: %s", sum)
	}
}

// TestReadinessReachesTheProxyWithinASecond measures how long traffic
// still reaches an instance after the API says it is not ready.
func TestReadinessReachesTheProxyWithinASecond(t *testing.T) {
	c, url := servedHelloCluster(t, "")
	victim := c.running("hello", 3)[0]

	type hit struct {
		at   time.Time
		from string
	}
	hits := make(chan hit, 100000)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < 50000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			body, err := httpGet(url)
			if err == nil {
				hits <- hit{time.Now(), body}
			}
		}
	}()
	if _, err := httpGet("http://" + victim.Status.IP + ":8080/unready"); err != nil {
		t.Fatal(err)
	}
	var notReadyAt time.Time
	c.eventually(20*time.Second, victim.Metadata.Name+" not ready in the API", func() (bool, string) {
		for _, in := range c.instances("hello") {
			if in.Metadata.Name == victim.Metadata.Name && !in.Status.Ready {
				notReadyAt = time.Now()
				return true, ""
			}
		}
		return false, "still ready"
	})
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	close(hits)
	var last time.Time
	n := 0
	for h := range hits {
		n++
		if strings.Contains(h.from, victim.Metadata.Name) && h.at.After(last) {
			last = h.at
		}
	}
	lag := last.Sub(notReadyAt)
	if lag < 0 {
		lag = 0
	}
	t.Logf("traffic reached %s for %s after the API marked it not ready (%d requests)", victim.Metadata.Name, lag.Round(time.Millisecond), n)
	if lag > time.Second {
		t.Errorf("endpoint change took %s to reach the proxy, want under 1s", lag)
	}
}
