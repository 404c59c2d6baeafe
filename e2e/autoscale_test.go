package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// figure prints a benchmark line when make bench runs the test
// (SHOAL_BENCH_AUTOSCALE=1), and logs it otherwise.
func figure(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if os.Getenv("SHOAL_BENCH_AUTOSCALE") != "" {
		fmt.Println(line)
	}
	t.Log(line)
}

// TestAutoscaleFollowsTheLoad: a paced load through the published port
// raises the replicas within seconds, and they fall back to min after the
// down window once it stops, with no request failed across both. An App
// at zero is started by its first request, which is held and served.
func TestAutoscaleFollowsTheLoad(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	pub := freeNodePort(t)
	c.applyYAML(fmt.Sprintf(`apiVersion: shoal/v1
kind: App
metadata: {name: busy}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 250m, memory: 32Mi}
  ports: [{name: http, containerPort: 8080, publish: %d}]
  terminationGracePeriodSeconds: 5
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 1}
  autoscale: {min: 1, max: 4, targetRequestsPerSecond: 10, scaleDownStabilizationSeconds: 15}
`, pub), "--wait", "--timeout", "90s")
	url := c.publishedURL("node1", pub)
	getEventually(t, url)
	if out, err := c.shoal("scale", "app/busy", "--replicas", "3"); err == nil || !strings.Contains(out, "autoscaled between 1 and 4") {
		t.Errorf("scale of an autoscaled app: err %v\n%s", err, out)
	}

	start := time.Now()
	l := startPacedLoad(url, 40, 2*time.Minute)
	var decided, ready time.Duration
	c.eventually(40*time.Second, "replicas up under load", func() (bool, string) {
		a := c.getApp("busy")
		if decided == 0 && *a.Spec.Replicas > 1 {
			decided = time.Since(start)
		}
		if ready == 0 && a.Status.Ready > 1 {
			ready = time.Since(start)
		}
		nodes, _ := c.shoal("get", "nodes", "-o", "json")
		return *a.Spec.Replicas >= 3 && a.Status.Ready >= 3, fmt.Sprintf("replicas %d, ready %d, %+v %.300s %.1500s", *a.Spec.Replicas, a.Status.Ready, a.Status.Autoscale, l.stopSummary(), nodes)
	})
	time.Sleep(3 * time.Second)
	sum := l.stop()
	figure(t, "autoscale: scale-up decided %.1f s after a 40 req/s load began (target 10 per replica), a new replica Ready after %.1f s; %s", decided.Seconds(), ready.Seconds(), sum)
	if l.failed.Load() != 0 {
		t.Errorf("requests failed while scaling up: %.500s\n%s\n%s", sum, c.mustShoal("get", "instances"), c.mustShoal("events"))
	}
	stopped := time.Now()
	c.eventually(60*time.Second, "back to min after the down window", func() (bool, string) {
		a := c.getApp("busy")
		return *a.Spec.Replicas == 1, fmt.Sprintf("replicas %d, %+v", *a.Spec.Replicas, a.Status.Autoscale)
	})
	figure(t, "autoscale: back to min %.1f s after the load stopped (down window 15 s)", time.Since(stopped).Seconds())
	if st := c.getApp("busy").Status.Autoscale; st == nil || len(st.Decisions) < 2 || !strings.Contains(strings.Join(st.Decisions, "\n"), "requests/s (target 10 per replica)") {
		t.Errorf("decisions not recorded with their figures: %+v", st)
	}
	if out := c.mustShoal("describe", "app", "busy"); !strings.Contains(out, "Autoscaled") {
		t.Errorf("describe app shows no Autoscaled event:\n%s", out)
	}
	if out := c.mustShoal("get", "apps", "-o", "wide"); !strings.Contains(out, "CPU-USED") || !strings.Contains(out, "Mi") {
		t.Errorf("get apps -o wide:\n%s", out)
	}
	if out := c.mustShoal("top", "apps"); !strings.Contains(out, "app/busy") {
		t.Errorf("top apps:\n%s\n%s", out, c.mustShoal("get", "nodes", "-o", "yaml"))
	}

	// From zero: the first request is held while an instance starts.
	pub0 := freeNodePort(t)
	c.applyYAML(fmt.Sprintf(`apiVersion: shoal/v1
kind: App
metadata: {name: lazy}
spec:
  image: shoal.local/hello:v1
  replicas: 0
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, containerPort: 8080, publish: %d}]
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 1}
  autoscale: {min: 0, max: 2, targetRequestsPerSecond: 10, scaleDownStabilizationSeconds: 10}
`, pub0))
	url0 := c.publishedURL("node1", pub0)
	time.Sleep(3 * time.Second) // the proxy has the App
	if n := len(c.instances("lazy")); n != 0 {
		t.Fatalf("an App at zero runs %d instances", n)
	}
	t0 := time.Now()
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Get(url0)
	if err != nil {
		t.Fatalf("the first request to an App at zero: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	first := time.Since(t0)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello") {
		t.Fatalf("the first request to an App at zero: %d %q", resp.StatusCode, body)
	}
	figure(t, "autoscale: first response from zero replicas after %.2f s (goal 2 s)", first.Seconds())
	c.eventually(60*time.Second, "lazy back at zero when idle", func() (bool, string) {
		a := c.getApp("lazy")
		live := 0
		for _, in := range c.instances("lazy") {
			if in.Metadata.DeletedAt.IsZero() {
				live++
			}
		}
		return *a.Spec.Replicas == 0 && live == 0, fmt.Sprintf("replicas %d, %d live", *a.Spec.Replicas, live)
	})
	_ = api.KindApp
}
