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

// TestOverlayAcrossNAT: four machines, two of them behind NAT routers of
// their own. Every container reaches every other through the WireGuard
// overlay: the public machines dial each other, the NATed ones dial out
// and keep their path open, and the two NATed ones reach each other
// through the public one a cluster-admin marked as relay (m1's; m2's is
// not one, and no node becomes one by its own say). Instance addresses, the service address and the
// published port answer the same from every machine, and no container
// packet crosses a wire in the clear.
func TestOverlayAcrossNAT(t *testing.T) {
	ctd := requireRoot(t)
	net := hosts.New(t)
	m1 := &machine{name: "m1", host: net.AddHost("m1"), serverDir: shortTempDir(t)}
	m2 := &machine{name: "m2", host: net.AddHost("m2"), serverDir: shortTempDir(t)}
	m3 := &machine{name: "m3", host: net.AddHostBehindNAT("m3"), serverDir: shortTempDir(t)}
	m4 := &machine{name: "m4", host: net.AddHostBehindNAT("m4"), serverDir: shortTempDir(t)}
	ms := []*machine{m1, m2, m3, m4}
	startServer(t, m1)
	must := func(args ...string) string {
		t.Helper()
		out, err := shoalOn(m1.host, m1.conf(), args...)
		if err != nil {
			t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("image", "push", helloV1)
	startAgent(t, ctd, m1, m1)
	startAgent(t, ctd, m2, m1)
	startAgent(t, ctd, m3, m1, "--overlay-endpoint", "none")
	startAgent(t, ctd, m4, m1, "--overlay-endpoint", "none")
	eventually(t, 60*time.Second, "four nodes Ready", func() (bool, string) {
		out, _ := shoalOn(m1.host, m1.conf(), "get", "nodes")
		return strings.Count(out, "Ready") == 4 && !strings.Contains(out, "NotReady"), out
	})
	// The NATed nodes reach each other through m1's node only once it is
	// marked as relay.
	if out := must("node", "relay", m1.node.name); !strings.Contains(out, "node "+m1.node.name+" is a relay") {
		t.Fatalf("shoal node relay: %s", out)
	}
	// Every node published its key; the NATed ones no endpoint.
	var nodes struct{ Items []*api.Node }
	if err := json.Unmarshal([]byte(must("get", "nodes", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		ov := n.Status.Overlay
		natted := n.Metadata.Name == m3.node.name || n.Metadata.Name == m4.node.name
		if ov == nil || ov.PublicKey == "" || (ov.Endpoint == "") != natted {
			t.Errorf("node %s publishes overlay %+v", n.Metadata.Name, ov)
		}
		if n.Spec.Relay != (n.Metadata.Name == m1.node.name) {
			t.Errorf("node %s: spec.relay %v; only %s's was marked", n.Metadata.Name, n.Spec.Relay, m1.node.name)
		}
	}

	manifest := filepath.Join(shortTempDir(t), "web.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v1
  replicas: 4
  resources: {cpu: 50m, memory: 32Mi}
  placement: {maxPerNode: 1}
  ports: [{name: http, containerPort: 8080, publish: 30480}]
  health:
    readiness: {http: {path: /healthz, port: http}, periodSeconds: 1}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	must("apply", "-f", manifest, "--wait", "--timeout", "120s")
	var list struct{ Items []*api.Instance }
	if err := json.Unmarshal([]byte(must("get", "instances", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 4 {
		t.Fatalf("%d instances, want 4: %s", len(list.Items), summarize(list.Items))
	}
	var app api.App
	if err := json.Unmarshal([]byte(must("get", "app", "web", "-o", "json")), &app); err != nil {
		t.Fatal(err)
	}

	// Count, on every machine, container packets leaving in the clear:
	// anything to a container subnet on the machine's wire.
	for _, m := range ms {
		if out, err := m.host.Command("iptables", "-w", "-t", "mangle", "-I", "POSTROUTING", "-o", "eth0", "-d", "10.214.0.0/16", "-j", "ACCEPT").CombinedOutput(); err != nil {
			t.Fatalf("counting rule on %s: %v\n%s", m.name, err, out)
		}
	}
	get := func(from *machine, url string) (string, error) {
		out, err := from.host.Command("curl", "-sS", "--max-time", "3", url).CombinedOutput()
		return string(out), err
	}
	for _, from := range ms {
		for _, in := range list.Items {
			url := fmt.Sprintf("http://%s:8080/", in.Status.IP)
			eventually(t, 20*time.Second, from.name+" reaches "+in.Metadata.Name+" on "+in.Spec.Node, func() (bool, string) {
				out, err := get(from, url)
				return err == nil && strings.Contains(out, in.Metadata.Name), fmt.Sprint(out, err)
			})
		}
		seen := map[string]bool{}
		eventually(t, 20*time.Second, from.name+" reaches every instance through the service address", func() (bool, string) {
			out, err := get(from, fmt.Sprintf("http://%s:8080/", app.Status.ServiceIP))
			for _, in := range list.Items {
				if err == nil && strings.Contains(out, in.Metadata.Name) {
					seen[in.Metadata.Name] = true
				}
			}
			nat, _ := from.host.Command("iptables-save", "-t", "nat").CombinedOutput()
			return len(seen) == 4, fmt.Sprint(seen, out, err, string(nat))
		})
		// The published port of each public machine, and of itself.
		for _, to := range []*machine{m1, m2, from} {
			for i := 0; i < 8; i++ {
				if out, err := get(from, fmt.Sprintf("http://%s:30480/", to.host.IP)); err != nil || !strings.Contains(out, "web-") {
					t.Fatalf("%s: published port on %s: %v\n%s", from.name, to.name, err, out)
				}
			}
		}
	}
	for _, m := range ms {
		out, err := m.host.Command("iptables", "-w", "-t", "mangle", "-nvxL", "POSTROUTING").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 8 && f[8] == "10.214.0.0/16" && f[0] != "0" {
				r, _ := m.host.Command("ip", "route").CombinedOutput()
				ct, _ := m.host.Command("cat", "/proc/net/nf_conntrack").CombinedOutput()
				t.Errorf("%s sent %s container packets in the clear:\n%s\n%s\n%s", m.name, f[0], out, r, ct)
			}
		}
	}
}
