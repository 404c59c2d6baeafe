package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestContainerEgress plays a tenant's container probing its node: a
// service of the host (on the node's address and on the bridge's) and
// the cloud metadata address are refused at once, while the container
// still finds an App by name (DNS on the bridge address, a service
// address) as before.
func TestContainerEgress(t *testing.T) {
	c := upCluster(t)
	c.mustShoal("image", "push", helloV1)
	c.applyYAML(`
apiVersion: shoal/v1
kind: App
metadata: {name: prober}
spec:
  image: shoal.local/hello:v1
  ports: [{name: http, containerPort: 8080}]
  resources: {cpu: 50m, memory: 32Mi}
`, "--wait", "--timeout", "90s")
	in := c.running("prober", 1)[0]

	// A service of the host's own, outside the publish range.
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(l.Addr().(*net.TCPAddr).Port)
	if r := api.DefaultPortRange; port >= r.Min && port <= r.Max {
		l.Close()
		t.Skipf("the host's ephemeral port %d is inside the publish range %s", port, r)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "host secret") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	obj, err := c.api.Get(context.Background(), api.MustKind(api.KindNode), "", "node1")
	if err != nil {
		t.Fatal(err)
	}
	nd := obj.(*api.Node)
	subnet, err := netip.ParsePrefix(nd.Spec.Subnet)
	if err != nil {
		t.Fatalf("node1's subnet %q: %v", nd.Spec.Subnet, err)
	}
	bridgeIP := subnet.Masked().Addr().Next().String()
	nodeURL := fmt.Sprintf("http://%s/", net.JoinHostPort(nd.Status.InternalIP, fmt.Sprint(port)))
	if body := getEventually(t, nodeURL); body != "host secret" {
		t.Fatalf("the host's own service from the host: %q", body)
	}

	fetch := func(target string) (string, error) {
		return httpGet(fmt.Sprintf("http://%s:8080/fetch?url=%s", in.Status.IP, url.QueryEscape(target)))
	}
	if body, err := fetch("http://prober:8080/"); err != nil || !strings.Contains(body, "hello v1") {
		t.Fatalf("a container fetching its App by name: %q, %v", body, err)
	}
	for _, target := range []string{
		nodeURL,
		fmt.Sprintf("http://%s/", net.JoinHostPort(bridgeIP, fmt.Sprint(port))),
		"http://169.254.169.254/latest/meta-data/",
	} {
		body, err := fetch(target)
		// Refused by the node's rules (admin-prohibited): at once, not a
		// timeout, and nothing of the host's answer.
		if err == nil || strings.Contains(body, "host secret") || !strings.Contains(body, "no route to host") {
			t.Errorf("a container fetching %s: %q, %v; want it refused (no route to host)", target, body, err)
		}
	}
}
