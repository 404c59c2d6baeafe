package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shoal-dev/shoal/internal/api"
)

// TestRestartsLoseNothing kills the agent and then the server with
// SIGKILL and starts them again: the same containers keep running (same
// processes), nothing is started twice, and nothing is lost.
func TestRestartsLoseNothing(t *testing.T) {
	c := serverCluster(t)
	agent := c.addAgent("n1")
	rtNS := c.nodes[0].runtimeNS
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: web}
spec:
  image: shoal.local/hello:v1
  replicas: 3
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	before := sortedLines(c.ctr(rtNS, "tasks", "ls"))
	ips := map[string]string{}
	for _, in := range c.running("web", 3) {
		ips[in.Metadata.Name] = in.Status.IP
	}

	oldAddr := c.nodeAddress("n1")
	agent.kill9()
	agent.start()
	// The new agent has synced with the server, and started nothing.
	c.eventually(30*time.Second, "the restarted agent synced, with no container started", func() (bool, string) {
		addr := c.nodeAddress("n1")
		if addr == oldAddr {
			return false, "the node still shows the old agent's address"
		}
		m, err := c.agentGet("n1", "/metrics")
		return err == nil && strings.Contains(m, "shoal_agent_synced 1") && strings.Contains(m, "shoal_agent_container_starts_total 0"), fmt.Sprint(err, m)
	})
	c.running("web", 3)
	if after := sortedLines(c.ctr(rtNS, "tasks", "ls")); after != before {
		t.Fatalf("agent restart changed the containers:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	c.server.kill9()
	c.server.start()
	c.waitReady()
	// The new server's controllers have looked at the app at least once
	// and the agent is back in touch (a heartbeat after the restart).
	restarted := time.Now()
	c.eventually(30*time.Second, "controllers reconciled after the restart", func() (bool, string) {
		m, err := c.get("/metrics")
		return err == nil && strings.Contains(m, `shoal_controller_reconciles_total{controller="apps",result="ok"}`), fmt.Sprint(err)
	})
	c.eventually(30*time.Second, "a heartbeat after the restart", func() (bool, string) {
		obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", "n1")
		if err != nil {
			return false, err.Error()
		}
		hb := obj.(*api.Node).Status.LastHeartbeat
		return hb.After(restarted), hb.String()
	})
	for _, in := range c.running("web", 3) {
		if ips[in.Metadata.Name] != in.Status.IP {
			t.Fatalf("after server restart instance %s is new or moved (ip %s, was %v)", in.Metadata.Name, in.Status.IP, ips)
		}
	}
	if after := sortedLines(c.ctr(rtNS, "tasks", "ls")); after != before {
		t.Fatalf("server restart changed the containers:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The cluster still takes orders.
	c.mustShoal("scale", "app", "web", "--replicas", "4")
	c.running("web", 4)
}

// TestAgentKeepsRunningWithoutServer: with the server gone, containers keep
// running and a crashed one is still restarted.
func TestAgentKeepsRunningWithoutServer(t *testing.T) {
	c := serverCluster(t)
	c.addAgent("n1")
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: solo}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	in := c.running("solo", 1)[0]
	getEventually(t, "http://"+in.Status.IP+":8080/")
	c.server.kill9()
	if _, err := httpGet("http://" + in.Status.IP + ":8080/"); err != nil {
		t.Fatalf("instance stopped answering when the server went away: %v", err)
	}
	_, _ = httpGet("http://" + in.Status.IP + ":8080/crash")
	eventually(t, 30*time.Second, "crashed instance restarted without a server", func() (bool, string) {
		body, err := httpGet("http://" + in.Status.IP + ":8080/")
		return err == nil && strings.Contains(body, in.Metadata.Name), fmt.Sprint(body, err)
	})
	c.server.start()
	c.waitReady()
	c.eventually(30*time.Second, "agent reports the restart once the server is back", func() (bool, string) {
		ins := c.instances("solo")
		if len(ins) != 1 {
			return false, fmt.Sprint(len(ins), " instances")
		}
		return ins[0].Status.Restarts >= 1 && ins[0].Status.Phase == api.PhaseRunning, fmt.Sprintf("%+v", ins[0].Status)
	})
}

// TestBadWorkloads: each broken instance gets a clear message and the
// agent and the other instances are untouched.
func TestBadWorkloads(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: good}
spec:
  image: shoal.local/hello:v1
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	good := c.running("good", 1)[0]

	taken := listenNodePort(t)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	// A tag the image store lacks is refused at apply (the server pins
	// every shoal.local tag to its digest); a digest it lacks fails on the
	// node, below.
	if out, err := c.shoal("apply", "-f", c.writeFile("apiVersion: shoal/v1\nkind: App\nmetadata: {name: notag}\nspec: {image: shoal.local/nope:v9}\n")); err == nil || !strings.Contains(out, `spec.image: "shoal.local/nope:v9": not in the cluster's image store: push it first`) {
		t.Errorf("apply of a tag never pushed: %v\n%s", err, out)
	}

	c.applyYAML(fmt.Sprintf(`
apiVersion: shoal/v1
kind: App
metadata: {name: noimage}
spec:
  image: shoal.local/nope@sha256:%s
---
apiVersion: shoal/v1
kind: App
metadata: {name: nocommand}
spec:
  image: shoal.local/hello:v1
  command: [/no/such/binary]
---
apiVersion: shoal/v1
kind: App
metadata: {name: oom}
spec:
  image: shoal.local/hello:v1
  env: [{name: HELLO_ALLOC_MB, value: "128"}]
  resources: {memory: 16Mi}
---
apiVersion: shoal/v1
kind: App
metadata: {name: porttaken}
spec:
  image: shoal.local/hello:v1
  ports: [{containerPort: 8080, hostPort: %d}]
`, strings.Repeat("0", 64), port))
	for app, want := range map[string]string{
		"noimage":   "image not found: shoal.local/nope@sha256:0000",
		"nocommand": "/no/such/binary",
		"oom":       "OOM killed",
		"porttaken": fmt.Sprintf("host port %d/tcp is already in use", port),
	} {
		c.eventually(60*time.Second, app+" reports "+want, func() (bool, string) {
			ins := c.instances(app)
			if len(ins) != 1 {
				return false, fmt.Sprint(len(ins), " instances")
			}
			return strings.Contains(ins[0].Status.Message, want), ins[0].Status.Message
		})
		desc := c.mustShoal("describe", "app", app)
		if !strings.Contains(desc, want) {
			t.Errorf("describe app %s does not show %q:\n%s", app, want, desc)
		}
	}
	if get := c.mustShoal("get", "instances"); !strings.Contains(get, "image not found") {
		t.Errorf("get instances does not show the image error:\n%s", get)
	}
	// The good one was never disturbed.
	now := c.running("good", 1)[0]
	if now.Status.Restarts != 0 || now.Status.IP != good.Status.IP {
		t.Fatalf("good instance was disturbed: %+v", now.Status)
	}
	if _, err := httpGet("http://" + good.Status.IP + ":8080/"); err != nil {
		t.Fatalf("good instance stopped answering: %v", err)
	}
}

// TestTwoAgentsShareContainerd: two nodes on one containerd, told apart by
// runtime namespace, both receive replicas (spread).
func TestTwoAgentsShareContainerd(t *testing.T) {
	c := serverCluster(t)
	c.addAgent("left", "--labels", "zone=a")
	c.addAgent("right", "--labels", "zone=b")
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: spread}
spec:
  image: shoal.local/hello:v1
  replicas: 4
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	perNode := map[string]int{}
	for _, in := range c.running("spread", 4) {
		perNode[in.Spec.Node]++
		getEventually(t, "http://"+in.Status.IP+":8080/")
	}
	if perNode["left"] != 2 || perNode["right"] != 2 {
		t.Fatalf("replicas per node = %v, want 2 on each", perNode)
	}
	for _, n := range c.nodes {
		if got := len(nonEmptyLines(c.ctr(n.runtimeNS, "tasks", "ls", "-q"))); got != 2 {
			t.Fatalf("runtime namespace %s has %d tasks, want 2", n.runtimeNS, got)
		}
	}
	// Placement follows the nodes' labels.
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: pinned}
spec:
  image: shoal.local/hello:v1
  replicas: 2
  placement: {nodeSelector: {zone: b}}
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	for _, in := range c.running("pinned", 2) {
		if in.Spec.Node != "right" {
			t.Fatalf("%s with nodeSelector zone=b runs on %s", in.Metadata.Name, in.Spec.Node)
		}
	}
}

// TestPullFromRegistry: an image pulled for real from an OCI registry
// (served on loopback by the test).
func TestPullFromRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs root and containerd")
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := tarball.ImageFromPath(helloV2, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/demo/hello:v2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push to the test registry: %v", err)
	}
	c := upCluster(t, "--insecure-registry", host)
	c.applyYAML(fmt.Sprintf(`
apiVersion: shoal/v1
kind: App
metadata: {name: pulled}
spec:
  image: %s/demo/hello:v2
  resources: {cpu: 100m, memory: 32Mi}
`, host), "--wait", "--timeout", "90s")
	in := c.running("pulled", 1)[0]
	if body := getEventually(t, "http://"+in.Status.IP+":8080/"); !strings.Contains(body, "hello v2") {
		t.Fatalf("pulled image answered %q", body)
	}
}

// TestNodesGetTheirOwnSubnets: agents that declare no subnet get a
// different one each from the server's cluster range.
func TestNodesGetTheirOwnSubnets(t *testing.T) {
	c := serverCluster(t, "--cluster-cidr", "10.216.0.0/16")
	// The agents are told the servers' range: they route no subnet outside it.
	c.addAgent("s1", "--subnet=server", "--cluster-cidr", "10.216.0.0/16")
	c.addAgent("s2", "--subnet=server", "--cluster-cidr", "10.216.0.0/16")
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: nets}
spec:
  image: shoal.local/hello:v1
  replicas: 2
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	subnets := map[string]netip.Prefix{}
	for _, name := range []string{"s1", "s2"} {
		obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := netip.ParsePrefix(obj.(*api.Node).Spec.Subnet)
		if err != nil || p.Bits() != 24 || !netip.MustParsePrefix("10.216.0.0/16").Contains(p.Addr()) {
			t.Fatalf("node %s subnet %q: want a /24 of 10.216.0.0/16", name, obj.(*api.Node).Spec.Subnet)
		}
		subnets[name] = p
	}
	if subnets["s1"] == subnets["s2"] {
		t.Fatalf("both nodes got %s", subnets["s1"])
	}
	for _, in := range c.running("nets", 2) {
		if !subnets[in.Spec.Node].Contains(netip.MustParseAddr(in.Status.IP)) {
			t.Errorf("%s on %s has IP %s, outside its node's subnet %s", in.Metadata.Name, in.Spec.Node, in.Status.IP, subnets[in.Spec.Node])
		}
		getEventually(t, "http://"+in.Status.IP+":8080/")
	}
}

// TestPushOCIArchive: an OCI image layout archive, as podman save
// --format oci-archive writes it, with a zstd layer and a multi-platform
// index, pushed with the CLI and run by containerd.
func TestPushOCIArchive(t *testing.T) {
	c := upCluster(t)
	built, err := tarball.ImageFromPath(helloV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := built.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := built.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// The same files, recompressed with zstd, in an OCI manifest.
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
			tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, zl); err != nil {
			t.Fatal(err)
		}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: cf.Architecture}}})
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "localhost/ocihello:v1"})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(c.dir, "ocihello.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if out := c.mustShoal("image", "push", archive); !strings.Contains(out, "ocihello:v1") {
		t.Fatalf("image push of an OCI archive printed %q", out)
	}
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: oci}
spec:
  image: shoal.local/ocihello:v1
  resources: {cpu: 100m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	in := c.running("oci", 1)[0]
	if body := getEventually(t, "http://"+in.Status.IP+":8080/"); !strings.Contains(body, "hello v1") {
		t.Fatalf("the image from the OCI archive answered %q", body)
	}
}
