package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestPlannedRoutes(t *testing.T) {
	node := func(name, subnet, ip string) *api.Node {
		return &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{Subnet: subnet}, Status: api.NodeStatus{InternalIP: ip}}
	}
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("192.168.50.1") }
	got := plannedRoutes("a", []*api.Node{
		node("a", "10.244.0.0/24", "192.168.50.1"), // itself
		node("c", "10.244.2.0/24", "192.168.50.3"),
		node("b", "10.244.1.0/24", "192.168.50.2"),
		node("d", "", "192.168.50.4"),              // no subnet yet
		node("e", "10.244.4.0/24", ""),             // no address
		node("f", "10.244.5.0/24", "192.168.50.1"), // another agent on this machine
	}, local)
	want := []route{
		{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParseAddr("192.168.50.2")},
		{netip.MustParsePrefix("10.244.2.0/24"), netip.MustParseAddr("192.168.50.3")},
	}
	if len(got) != len(want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("routes %v, want %v", got, want)
		}
	}
}

// TestSyncRoutes installs and removes real routes, in a network namespace
// of the test's own.
func TestSyncRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: routes need root")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("routes need root")
		}
		t.Skip("routes need root")
	}
	ns := fmt.Sprintf("shoal-rt-%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	run("-n", ns, "addr", "add", "192.168.77.1/24", "dev", "d0")
	run("-n", ns, "link", "set", "d0", "up")
	run("-n", ns, "link", "set", "d1", "up")
	old := ipCommand
	ipCommand = []string{"ip", "-n", ns}
	t.Cleanup(func() { ipCommand = old })

	a := New(Config{NodeName: "a", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir()})
	installed := map[netip.Prefix]netip.Addr{}
	ctx := context.Background()
	a.syncRoutes(ctx, installed, []route{{netip.MustParsePrefix("10.99.1.0/24"), netip.MustParseAddr("192.168.77.2")}})
	if got := run("-n", ns, "route", "show", "proto", routeProto); !strings.Contains(got, "10.99.1.0/24 via 192.168.77.2") {
		t.Fatalf("route not installed; routes with proto %s: %q", routeProto, got)
	}
	// The node moved to another address: the route follows.
	a.syncRoutes(ctx, installed, []route{{netip.MustParsePrefix("10.99.1.0/24"), netip.MustParseAddr("192.168.77.3")}})
	if got := run("-n", ns, "route", "show", "proto", routeProto); !strings.Contains(got, "via 192.168.77.3") || strings.Contains(got, "via 192.168.77.2") {
		t.Fatalf("route not moved: %q", got)
	}
	// The node left: the route goes.
	a.syncRoutes(ctx, installed, nil)
	if got := run("-n", ns, "route", "show", "proto", routeProto); strings.TrimSpace(got) != "" {
		t.Fatalf("route left behind: %q", got)
	}
}
