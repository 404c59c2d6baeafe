package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// getJob reads a Job through the CLI.
func (c *cluster) getJob(name string) *api.Job {
	c.t.Helper()
	var j api.Job
	if err := json.Unmarshal([]byte(c.mustShoal("get", "job", name, "-o", "json")), &j); err != nil {
		c.t.Fatal(err)
	}
	return &j
}

// TestJobs: a Job of 3 completions, 2 at a time, runs exactly 3 times; a
// failing one stops after its backoffLimit; logs job/NAME shows every
// run's output; bad Jobs are refused naming the field; delete stops what
// runs.
func TestJobs(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`apiVersion: shoal/v1
kind: Job
metadata: {name: batch}
spec:
  image: shoal.local/hello:v1
  command: [/hello, work, 2s]
  completions: 3
  parallelism: 2
  resources: {cpu: 50m, memory: 32Mi}
---
apiVersion: shoal/v1
kind: Job
metadata: {name: flaky}
spec:
  image: shoal.local/hello:v1
  command: [/hello, work, 100ms, "3"]
  backoffLimit: 2
  resources: {cpu: 50m, memory: 32Mi}
`)
	maxActive := int32(0)
	c.eventually(90*time.Second, "batch Complete with 3 completions", func() (bool, string) {
		j := c.getJob("batch")
		maxActive = max(maxActive, j.Status.Active)
		return j.Status.State == api.JobComplete, fmt.Sprintf("%+v", j.Status)
	})
	if maxActive > 2 {
		t.Errorf("%d instances ran at once, parallelism 2", maxActive)
	}
	var list struct{ Items []*api.Instance }
	if err := json.Unmarshal([]byte(c.mustShoal("get", "instances", "-l", "job=batch", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for _, in := range list.Items {
		if in.Status.Phase == api.PhaseSucceeded {
			succeeded++
		}
	}
	if len(list.Items) != 3 || succeeded != 3 {
		t.Errorf("batch ran %d instances, %d succeeded; want exactly 3 and 3:\n%s", len(list.Items), succeeded, summarize(list.Items))
	}
	logs := c.mustShoal("logs", "job/batch")
	for _, want := range []string{"batch-0 done", "batch-1 done", "batch-2 done"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs job/batch lack %q:\n%s", want, logs)
		}
	}
	if out := c.mustShoal("get", "jobs"); !strings.Contains(out, "batch") || !strings.Contains(out, "3/3") {
		t.Errorf("get jobs:\n%s", out)
	}

	c.eventually(90*time.Second, "flaky Failed after its backoffLimit", func() (bool, string) {
		j := c.getJob("flaky")
		return j.Status.State == api.JobFailed && j.Status.Reason == "BackoffLimitExceeded", fmt.Sprintf("%+v", j.Status)
	})
	if err := json.Unmarshal([]byte(c.mustShoal("get", "instances", "-l", "job=flaky", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 { // backoffLimit 2: the first run and two retries
		t.Errorf("flaky ran %d times, want 3 (backoffLimit 2):\n%s", len(list.Items), summarize(list.Items))
	}

	// Bad input: a clear, field-level 4xx, nothing stored.
	for _, bad := range []struct{ yaml, want string }{
		{"restartPolicy: Always", "spec.restartPolicy"},
		{"completions: 1\n  parallelism: 3", "spec.parallelism"},
		{`schedule: "61 * * * *"`, "spec.schedule"},
		{`schedule: "* * * * *"` + "\n  timeZone: Mars/Olympus", "spec.timeZone"},
	} {
		out, err := c.shoal("apply", "-f", c.writeFile(`apiVersion: shoal/v1
kind: Job
metadata: {name: bad}
spec:
  image: shoal.local/hello:v1
  `+bad.yaml+"\n"))
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("apply of a Job with %s: err %v, output:\n%s", bad.yaml, err, out)
		}
	}
	if out, err := c.shoal("get", "job", "bad"); err == nil {
		t.Errorf("a refused Job was stored:\n%s", out)
	}

	// delete stops what runs.
	c.applyYAML(`apiVersion: shoal/v1
kind: Job
metadata: {name: long}
spec:
  image: shoal.local/hello:v1
  command: [/hello, work, 10m]
  terminationGracePeriodSeconds: 1
  resources: {cpu: 50m, memory: 32Mi}
`)
	c.eventually(60*time.Second, "long running", func() (bool, string) {
		out := c.mustShoal("get", "instances", "-l", "job=long")
		return strings.Contains(out, "Running"), out
	})
	c.mustShoal("delete", "job", "long")
	c.eventually(60*time.Second, "long's instance stopped and gone", func() (bool, string) {
		out := c.mustShoal("get", "instances", "-l", "job=long", "-o", "name")
		return strings.TrimSpace(out) == "", out
	})
}

// TestCronOncePerTickAcrossServerKill: a Job every minute runs exactly
// once per tick, also for the tick that came while its server was killed
// (kill -9 just before it, back just after).
func TestCronOncePerTickAcrossServerKill(t *testing.T) {
	c := serverCluster(t)
	c.addAgent("n1")
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`apiVersion: shoal/v1
kind: Job
metadata: {name: tick}
spec:
  image: shoal.local/hello:v1
  command: [/hello, work, 1s]
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 10
  resources: {cpu: 50m, memory: 32Mi}
`)
	runs := func() []*api.Job {
		var list struct{ Items []*api.Job }
		if err := json.Unmarshal([]byte(c.mustShoal("get", "jobs", "-l", api.LabelCronJob+"=tick", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	// Kill the server 5 s before the next tick; start it 5 s after.
	next := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(next) < 12*time.Second {
		next = next.Add(time.Minute)
	}
	time.Sleep(time.Until(next.Add(-5 * time.Second)))
	c.server.kill9()
	time.Sleep(time.Until(next.Add(5 * time.Second)))
	c.server.start()
	c.waitReady()
	// And one more tick with the server up. (A tick before next may have
	// run too, when the Job was applied more than a minute before it.)
	want := []string{fmt.Sprintf("tick-%d", next.Unix()/60), fmt.Sprintf("tick-%d", next.Unix()/60+1)}
	c.eventually(100*time.Second, "the runs of the killed tick and the next, complete", func() (bool, string) {
		done := map[string]bool{}
		for _, r := range runs() {
			done[r.Metadata.Name] = r.Status.State == api.JobComplete
		}
		return done[want[0]] && done[want[1]], fmt.Sprint(done, " want ", want)
	})
	ticks := map[int64]bool{}
	for _, r := range runs() {
		var minute int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(r.Metadata.Name, "tick-"), "%d", &minute); err != nil {
			t.Fatalf("run %s is not named after its tick", r.Metadata.Name)
		}
		ticks[minute] = true
		var list struct{ Items []*api.Instance }
		if err := json.Unmarshal([]byte(c.mustShoal("get", "instances", "-l", "job="+r.Metadata.Name, "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Errorf("run %s ran %d instances, want 1", r.Metadata.Name, len(list.Items))
		}
	}
	lo := next.Unix() / 60
	for m := lo; m < lo+2; m++ {
		if !ticks[m] {
			t.Errorf("tick %s has no run (runs: %v)", time.Unix(m*60, 0).UTC().Format("15:04"), ticks)
		}
	}
	for m := range ticks {
		if m < lo-1 || m > lo+2 {
			t.Errorf("a run for tick %s, outside the minutes the test ran in: %v", time.Unix(m*60, 0).UTC().Format("15:04"), ticks)
		}
	}
	if j := c.getJob("tick"); j.Status.Missed != 0 {
		t.Errorf("%d ticks recorded as missed, want none (no starting deadline)", j.Status.Missed)
	}
}

// TestScheduledScaleDownUnderLoad: a scale-down from 3 to 1 scheduled two
// seconds ahead happens at its time, drains as a rollout does, and drops
// no request of a load running through it; describe shows it coming and
// then done.
func TestScheduledScaleDownUnderLoad(t *testing.T) {
	c, url := servedHelloCluster(t, "")
	var pub int
	if _, err := fmt.Sscanf(url[strings.LastIndexByte(url, ':')+1:], "%d", &pub); err != nil {
		t.Fatal(err)
	}
	l := startLoad(url, 4, 50000, 3*time.Minute)
	eventually(t, 30*time.Second, "load under way", func() (bool, string) { return l.ok.Load() >= 200, "" })
	at := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	c.applyYAML(servedHelloYAML("v1", "0s", pub, 60) + fmt.Sprintf("  schedule: [{at: %q, set: {replicas: 1}}]\n", at.Format(time.RFC3339)))
	if out := c.mustShoal("describe", "app", "hello"); !strings.Contains(out, "next") || !strings.Contains(out, "set replicas 1") {
		t.Errorf("describe app before the change:\n%s", out)
	}
	c.eventually(30*time.Second, "one instance left", func() (bool, string) {
		live := 0
		for _, in := range c.instances("hello") {
			if in.Metadata.DeletedAt.IsZero() {
				live++
			}
		}
		return live == 1 && *c.getApp("hello").Spec.Replicas == 1, fmt.Sprint(live, " live")
	})
	if early := c.getApp("hello").Status.ScheduleHistory; len(early) != 1 || early[0].At.Before(at) {
		t.Errorf("schedule history %+v, want one change at %s", early, at)
	}
	time.Sleep(3 * time.Second) // the drained instances have stopped
	eventually(t, 60*time.Second, "2,000 requests", func() (bool, string) {
		return l.ok.Load()+l.failed.Load() >= 2000, fmt.Sprint(l.ok.Load())
	})
	sum := l.stop()
	t.Logf("scale-down under load: %s", sum)
	if l.failed.Load() != 0 {
		t.Errorf("requests failed across the scheduled scale-down: %s", sum)
	}
	if out := c.mustShoal("describe", "app", "hello"); !strings.Contains(out, "done") {
		t.Errorf("describe app after the change:\n%s", out)
	}
	if out := c.mustShoal("rollout", "history", "app/hello"); !strings.Contains(out, "cause: schedule") || !strings.Contains(out, ": replicas 1") {
		t.Errorf("rollout history lacks the scheduled change:\n%s", out)
	}
	if out := c.mustShoal("events"); !strings.Contains(out, "Scheduled") {
		t.Errorf("no Scheduled event:\n%s", out)
	}
	// A time already past is refused, naming the field; nothing changes.
	past := time.Now().Add(-time.Hour).Format(time.RFC3339)
	out, err := c.shoal("apply", "-f", c.writeFile(servedHelloYAML("v1", "0s", pub, 60)+fmt.Sprintf("  schedule: [{at: %q, set: {replicas: 3}}]\n", past)))
	if err == nil || !strings.Contains(out, "spec.schedule[0].at") || !strings.Contains(out, "in the past") {
		t.Errorf("apply of a change in the past: err %v\n%s", err, out)
	}
}
