package agent

import (
	"strings"
	"testing"
)

// TestDeclaredSubnetMustBeTheNodes: an agent started with another
// --subnet than its node's is refused with what to do instead.
func TestDeclaredSubnetMustBeTheNodes(t *testing.T) {
	for _, tc := range []struct{ assigned, declared, want string }{
		{"10.244.1.0/24", "", ""},
		{"10.244.1.0/24", "10.244.1.0/24", ""},
		{"10.244.1.0/24", "10.244.9.0/24", "--subnet 10.244.9.0/24: node n1 has subnet 10.244.1.0/24, and a node's subnet never changes once set: give --subnet 10.244.1.0/24 or none"},
	} {
		got, err := sameSubnet("n1", tc.assigned, tc.declared)
		switch {
		case tc.want == "" && (err != nil || got != tc.assigned):
			t.Errorf("assigned %s, declared %q: %q, %v; want %s", tc.assigned, tc.declared, got, err, tc.assigned)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("assigned %s, declared %q: %v; want an error containing %q", tc.assigned, tc.declared, err, tc.want)
		}
	}
}
