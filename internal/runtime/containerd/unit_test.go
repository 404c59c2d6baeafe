package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/internal/runtime"
)

func TestStartFailure(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown`,
			`exec: "nope": executable file not found in $PATH`,
		},
		{
			`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: exec format error: unknown`,
			`error during container init: exec format error`,
		},
		{`something else entirely`, `something else entirely`},
	}
	for _, tt := range tests {
		if got := startFailure(errors.New(tt.in)); got != tt.want {
			t.Errorf("startFailure(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPortsLabelRoundTrip(t *testing.T) {
	in := []runtime.PortMapping{
		{ContainerPort: 8080, HostPort: 18080, Protocol: "tcp"},
		{ContainerPort: 53, HostPort: 1053, Protocol: "UDP"},
		{ContainerPort: 9090}, // not published: not stored
		{ContainerPort: 80, HostPort: 8000},
	}
	label := formatPorts(in)
	if label != "18080:8080/tcp,1053:53/udp,8000:80/tcp" {
		t.Errorf("formatPorts = %q", label)
	}
	want := []runtime.PortMapping{
		{ContainerPort: 8080, HostPort: 18080, Protocol: "tcp"},
		{ContainerPort: 53, HostPort: 1053, Protocol: "udp"},
		{ContainerPort: 80, HostPort: 8000, Protocol: "tcp"},
	}
	if got := parsePorts(label); !slices.Equal(got, want) {
		t.Errorf("parsePorts = %+v, want %+v", got, want)
	}
	if got := parseHostPorts(label); !slices.Equal(got, []string{"18080/tcp", "1053/udp", "8000/tcp"}) {
		t.Errorf("parseHostPorts = %v", got)
	}
	if got := parsePorts(""); len(got) != 0 {
		t.Errorf("parsePorts(\"\") = %v", got)
	}
}

func TestNames(t *testing.T) {
	if got := sanitize("default/web:0"); got != "default_web_0" {
		t.Errorf("sanitize = %q", got)
	}
	if got := sanitize(".x"); got != "xx" {
		t.Errorf("sanitize(.x) = %q", got)
	}
	for in, want := range map[string]string{
		"default.web-0":         "default-web-0",
		"_x_":                   "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
		"...":                   "container",
	} {
		if got := defaultHostname(in); got != want {
			t.Errorf("defaultHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	base := func() Config { return Config{StateDir: t.TempDir()} }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"long bridge", func(c *Config) { c.Network.Bridge = "a-very-long-bridge" }, "Linux allows 15"},
		{"bad subnet", func(c *Config) { c.Network.Subnet = "10.0.0.0" }, "IPv4 CIDR"},
		{"v6 subnet", func(c *Config) { c.Network.Subnet = "fd00::/64" }, "IPv4 CIDR"},
		{"tiny subnet", func(c *Config) { c.Network.Subnet = "10.0.0.0/31" }, "too small"},
		{"bad namespace", func(c *Config) { c.Namespace = "a/b" }, "namespace"},
		{"bad cluster range", func(c *Config) { c.Network.ClusterCIDR = "10.244.0.0" }, `cluster range "10.244.0.0": want an IPv4 CIDR`},
		{"v6 cluster range", func(c *Config) { c.Network.ClusterCIDR = "fd00::/48" }, "cluster range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			if err := c.setDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("setDefaults = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	c := base()
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "shoal" || c.Network.Bridge != "shoal0" || c.Network.Subnet != "10.213.0.0/24" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestNewWithoutContainerd(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "nope.sock")
	_, err := New(context.Background(), Config{Address: addr, StateDir: t.TempDir()})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach containerd at "+addr+": ") {
		t.Fatalf("New = %v, want \"cannot reach containerd at %s: ...\"", err, addr)
	}
}

func TestBridgeConfList(t *testing.T) {
	c := Config{StateDir: "/var/lib/x", Network: NetworkConfig{Bridge: "br7", Subnet: "10.1.2.0/24"}}
	b := bridgeConfList(c)
	s := string(b)
	for _, want := range []string{
		// No per-container masquerading: ensureMasquerade has one rule
		// for the subnet.
		`"name":"shoal-br7"`, `"bridge":"br7"`, `"isGateway":true`, `"ipMasq":false`, `"hairpinMode":true`,
		`"subnet":"10.1.2.0/24"`, `"dataDir":"/var/lib/x/cni/ipam"`, `"portMappings":true`, `"snat":true`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("conflist lacks %s: %s", want, s)
		}
	}

	// Teardown sweeps per-container masquerade rules only for attachments
	// whose cached conflist (an older version's) has the bridge make them.
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if perContainerMasq(list) {
		t.Errorf("perContainerMasq(current conflist) = true, want false")
	}
	old, err := libcni.ConfListFromBytes([]byte(strings.Replace(s, `"ipMasq":false`, `"ipMasq":true`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !perContainerMasq(old) {
		t.Errorf("perContainerMasq(conflist with \"ipMasq\":true) = false, want true")
	}
}

// TestPortHolds holds real ports of this machine; it needs no containerd.
func TestPortHolds(t *testing.T) {
	free := func(network string) int32 {
		t.Helper()
		if network == "tcp" {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			return int32(l.Addr().(*net.TCPAddr).Port)
		}
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return int32(c.LocalAddr().(*net.UDPAddr).Port)
	}
	bindable := func(p runtime.PortMapping) bool {
		t.Helper()
		addr := fmt.Sprintf("127.0.0.1:%d", p.HostPort)
		var c io.Closer
		var err error
		if protocol(p) == "udp" {
			c, err = net.ListenPacket("udp", addr)
		} else {
			c, err = net.Listen("tcp", addr)
		}
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	tcp := runtime.PortMapping{ContainerPort: 80, HostPort: free("tcp")}
	udp := runtime.PortMapping{ContainerPort: 53, HostPort: free("udp"), Protocol: "UDP"}
	unpublished := runtime.PortMapping{ContainerPort: 9090}

	var h portHolds
	defer h.releaseAll()
	if err := h.hold("a", []runtime.PortMapping{tcp, udp, unpublished}); err != nil {
		t.Fatalf("hold: %v", err)
	}
	for _, p := range []runtime.PortMapping{tcp, udp} {
		if bindable(p) {
			t.Errorf("bound %s while it is held", hostPortKey(p))
		}
	}
	for key, s := range h.byID["a"] {
		if !closeOnExec(t, s) {
			t.Errorf("socket for %s is inherited by child processes; want close-on-exec", key)
		}
	}
	if err := h.hold("a", []runtime.PortMapping{tcp, udp}); err != nil {
		t.Errorf("hold of ports id already holds: %v, want nil", err)
	}

	// A port held for another container fails the whole hold, and what
	// the call took is released.
	other := runtime.PortMapping{ContainerPort: 81, HostPort: free("tcp")}
	err := h.hold("b", []runtime.PortMapping{other, tcp})
	if want := fmt.Sprintf("host port %d/tcp is already in use on this node (another program listens on it); choose another hostPort", tcp.HostPort); err == nil || err.Error() != want {
		t.Errorf("hold of a held port = %v, want %q", err, want)
	}
	if !bindable(other) {
		t.Errorf("%s still held after a failed hold", hostPortKey(other))
	}
	if _, ok := h.byID["b"]; ok {
		t.Errorf("holds for b after its failed hold: %v", h.byID["b"])
	}

	h.release("a")
	for _, p := range []runtime.PortMapping{tcp, udp} {
		if !bindable(p) {
			t.Errorf("%s still held after release", hostPortKey(p))
		}
	}
	if err := h.hold("c", []runtime.PortMapping{{HostPort: free("tcp"), Protocol: "sctp"}}); err == nil || !strings.Contains(err.Error(), "want tcp or udp") {
		t.Errorf("hold of sctp = %v, want an error naming tcp and udp", err)
	}
}

// closeOnExec reports whether the socket behind s has FD_CLOEXEC set.
func closeOnExec(t *testing.T, s io.Closer) bool {
	t.Helper()
	sc, ok := s.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no file descriptor", s)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := raw.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// TestHostMounts: a read-only volume is read-only recursively (what is
// mounted below it too), and only resolved paths are mounted.
func TestHostMounts(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := hostMounts([]runtime.Mount{
		{Source: filepath.Join(dir, "data"), Destination: "/ro", ReadOnly: true},
		{Source: filepath.Join(dir, "data"), Destination: "/rw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{"rbind", "rprivate", "ro", "rro"}, {"rbind", "rprivate"}} {
		if m := got[i]; m.Type != "bind" || m.Source != filepath.Join(dir, "data") || !slices.Equal(m.Options, want) {
			t.Errorf("mount %d: %+v, want a bind of %s/data with %v", i, m, dir, want)
		}
	}
	for _, tc := range []struct{ source, want string }{
		{filepath.Join(dir, "link"), "volume " + dir + "/link: the path leads to / through a symbolic link"},
		{filepath.Join(dir, "link", "etc"), "the path leads to /etc through a symbolic link"},
		{filepath.Join(dir, "nope"), "volume " + dir + "/nope: the path does not exist on this node"},
	} {
		if _, err := hostMounts([]runtime.Mount{{Source: tc.source, Destination: "/x", ReadOnly: true}}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.source, err, tc.want)
		}
	}
}

// An instance's pinned image is pulled by its digest, and an image whose
// manifest is another is refused.
func TestPinnedImages(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const other = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	for in, want := range map[string]string{
		"shoal.local/hello:v1@" + d: "shoal.local/hello@" + d,
		"shoal.local/hello@" + d:    "shoal.local/hello@" + d,
		"shoal.local/hello:v1":      "shoal.local/hello:v1",
		"busybox":                   "docker.io/library/busybox:latest",
	} {
		if got, err := normalizeRef(in); err != nil || got != want {
			t.Errorf("normalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if err := checkPinned("shoal.local/hello@"+d, d); err != nil {
		t.Errorf("the pinned manifest: %v", err)
	}
	if err := checkPinned("shoal.local/hello@"+d, other); err == nil || !strings.Contains(err.Error(), "not the digest the instance names") {
		t.Errorf("another manifest: %v, want it refused", err)
	}
	if err := checkPinned("shoal.local/hello:v1", other); err != nil {
		t.Errorf("a tag pins nothing: %v", err)
	}
}
