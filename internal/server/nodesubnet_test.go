package server_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/server"
)

// TestJoinRefusesABadSubnet: a node that declares a subnet outside the
// cluster range, or one overlapping another node's, is refused at join
// with the field and the other node named; nothing is stored, and the
// first node keeps its subnet.
func TestJoinRefusesABadSubnet(t *testing.T) {
	t.Parallel()
	e := startTLS(t, func(c *server.Config) { c.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16") })
	join := func(node, subnet string) (int, string) {
		key, _ := pki.NewKey()
		pub, _ := pki.EncodePublicKey(key.Public())
		tok := e.token(t, api.TokenRoleAgent, time.Hour)
		return call(t, e.anon, http.MethodPost, e.url+"/api/v1/join", api.JoinRequest{Token: tok.String(), Node: node, Subnet: subnet, PublicKey: string(pub)})
	}
	if code, msg := join("n1", "10.244.1.0/24"); code != http.StatusOK {
		t.Fatalf("join n1: %d %s", code, msg)
	}
	for _, tc := range []struct {
		subnet string
		want   string
	}{
		{"10.244.1.128/25", `spec.subnet: 10.244.1.128/25 overlaps node n1's subnet 10.244.1.0/24`},
		{"10.244.1.0/24", `spec.subnet: 10.244.1.0/24 overlaps node n1's subnet 10.244.1.0/24`},
		{"10.244.0.0/16", `spec.subnet: 10.244.0.0/16 overlaps node n1's subnet 10.244.1.0/24`},
		{"10.244.1.8/30", `overlaps node n1's subnet 10.244.1.0/24`},
		{"8.8.8.0/30", `spec.subnet: 8.8.8.0/30 is outside the cluster range 10.244.0.0/16`},
		{"10.0.0.0/8", `spec.subnet: 10.0.0.0/8 is outside the cluster range 10.244.0.0/16`},
		{"10.244.1.1/24", `spec.subnet: "10.244.1.1/24" is not an IPv4 network`},
	} {
		code, msg := join("n2", tc.subnet)
		if code != http.StatusUnprocessableEntity || !strings.Contains(msg, tc.want) {
			t.Errorf("join n2 with subnet %s: %d %q, want 422 containing %q", tc.subnet, code, msg, tc.want)
		}
	}
	if code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/nodes/n2", nil); code != http.StatusNotFound {
		t.Errorf("refused joins stored node n2: %d %s", code, body)
	}
	code, body := call(t, e.admin, http.MethodGet, e.url+"/api/v1/nodes/n1", nil)
	var n1 api.Node
	if code != http.StatusOK || json.Unmarshal([]byte(body), &n1) != nil || n1.Spec.Subnet != "10.244.1.0/24" {
		t.Fatalf("node n1 after the refused joins: %d %s", code, body)
	}
	// The neighbouring /24, and a /25 of another, are fine.
	if code, msg := join("n2", "10.244.2.0/24"); code != http.StatusOK {
		t.Errorf("join n2 with 10.244.2.0/24: %d %s", code, msg)
	}
	if code, msg := join("n3", "10.244.3.128/25"); code != http.StatusOK {
		t.Errorf("join n3 with 10.244.3.128/25: %d %s", code, msg)
	}
	// A join refused for its name keeps no claim on the subnet it asked for.
	if code, _ := join("n1", "10.244.4.0/24"); code != http.StatusConflict {
		t.Errorf("second join as n1: %d, want 409", code)
	}
	if code, msg := join("n4", "10.244.4.0/24"); code != http.StatusOK {
		t.Errorf("join n4 with the subnet a refused join asked for: %d %s", code, msg)
	}
}
