package containerd

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
		{"relative logger", func(c *Config) { c.LoggerBinary = "shoal" }, "absolute"},
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
	if c.Namespace != "shoal" || c.Network.Bridge != "shoal0" || c.Network.Subnet != "10.213.0.0/24" || c.LogMaxBytes != 10<<20 {
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
	s := string(bridgeConfList(c))
	for _, want := range []string{
		`"name":"shoal-br7"`, `"bridge":"br7"`, `"isGateway":true`, `"ipMasq":true`, `"hairpinMode":true`,
		`"subnet":"10.1.2.0/24"`, `"dataDir":"/var/lib/x/cni/ipam"`, `"portMappings":true`, `"snat":true`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("conflist lacks %s: %s", want, s)
		}
	}
}
