package api

import (
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		ok   bool
	}{
		{"30000-32767", DefaultPortRange, true},
		{" 30080 ", PortRange{30080, 30080}, true},
		{"1-65535", PortRange{1, 65535}, true},
		{"30100-30000", PortRange{}, false},
		{"0-100", PortRange{}, false},
		{"30000-65536", PortRange{}, false},
		{"30000-", PortRange{}, false},
		{"a-b", PortRange{}, false},
		{"", PortRange{}, false},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestCheckPortRange(t *testing.T) {
	const cluster, admin = "the cluster's publish range", "set by the cluster admin with --port-range"
	const node, owner = "node n1's publish range", "set by its owner with --port-range"
	narrow := PortRange{30000, 30099}
	tests := []struct {
		name         string
		ports        []Port
		r            PortRange
		whose, setBy string
		want         []string // "path: message", in order
	}{
		{"in range", []Port{{ContainerPort: 80, Publish: 30081, HostPort: 32767}, {ContainerPort: 81, HostPort: 30000}}, DefaultPortRange, cluster, admin, nil},
		{"nothing bound on the node", []Port{{ContainerPort: 22}}, DefaultPortRange, cluster, admin, nil},
		{"publish outside", []Port{{ContainerPort: 80, Publish: 18081}}, DefaultPortRange, cluster, admin, []string{
			"spec.ports[0].publish: 18081 is outside the cluster's publish range 30000-32767 (set by the cluster admin with --port-range); choose a port in the range"}},
		{"publish 22", []Port{{ContainerPort: 80}, {ContainerPort: 22, Publish: 22}}, DefaultPortRange, cluster, admin, []string{
			"spec.ports[1].publish: 22 is outside the cluster's publish range 30000-32767 (set by the cluster admin with --port-range); choose a port in the range"}},
		{"hostPort outside", []Port{{ContainerPort: 80, HostPort: 8080}}, DefaultPortRange, cluster, admin, []string{
			"spec.ports[0].hostPort: 8080 is outside the cluster's publish range 30000-32767 (set by the cluster admin with --port-range); choose a port in the range"}},
		{"both outside", []Port{{ContainerPort: 80, HostPort: 80, Publish: 443}}, DefaultPortRange, cluster, admin, []string{
			"spec.ports[0].publish: 443 is outside", "spec.ports[0].hostPort: 80 is outside"}},
		{"inside the cluster's, outside the owner's", []Port{{ContainerPort: 80, HostPort: 30100}}, narrow, node, owner, []string{
			"spec.ports[0].hostPort: 30100 is outside node n1's publish range 30000-30099 (set by its owner with --port-range); choose a port in the range"}},
		{"inside the owner's", []Port{{ContainerPort: 80, HostPort: 30099}}, narrow, node, owner, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := CheckPortRange("spec", &Template{Ports: tt.ports}, tt.r, tt.whose, tt.setBy)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d: %v", len(errs), errs, len(tt.want), tt.want)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("error %d: got %q, want it to start with %q", i, e.Error(), tt.want[i])
				}
			}
		})
	}
}

func TestNodePortRangeValidated(t *testing.T) {
	n := &Node{TypeMeta: TypeMeta{APIVersion: Version, Kind: KindNode}, Metadata: ObjectMeta{Name: "n1"}}
	n.Status.Accepts.PortRange = "30000-30099"
	if err := Validate(n); err != nil {
		t.Errorf("a node with port range 30000-30099: %v", err)
	}
	n.Status.Accepts.PortRange = "22-"
	if err := Validate(n); err == nil || !strings.Contains(err.Error(), "status.accepts.portRange") {
		t.Errorf("a node with port range %q: got %v, want an error on spec.accepts.portRange", n.Status.Accepts.PortRange, err)
	}
}
