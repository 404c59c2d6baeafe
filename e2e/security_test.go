package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
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
	c := upCluster(t)
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
}
