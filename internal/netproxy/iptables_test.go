package netproxy

import (
	"slices"
	"testing"
)

// TestJumpsByPublishAddress: published ports get kernel jumps on every
// local address but loopback, on one address, or (loopback only) none.
func TestJumpsByPublishAddress(t *testing.T) {
	for _, tc := range []struct {
		publish string
		want    []string // the PREROUTING jump to the -E chain; nil: none
	}{
		{"", []string{"PREROUTING", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment", "shoal published ports", "-j", "C-E"}},
		{"0.0.0.0", []string{"PREROUTING", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment", "shoal published ports", "-j", "C-E"}},
		{"192.0.2.7", []string{"PREROUTING", "-d", "192.0.2.7/32", "-m", "comment", "--comment", "shoal published ports", "-j", "C-E"}},
		{"127.0.0.1", nil},
	} {
		it := &iptables{chain: "C", bridge: "br", publish: tc.publish}
		var got []string
		for _, j := range it.jumps() {
			if j[0] == "PREROUTING" && j[len(j)-1] == "C-E" {
				got = j
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("publish %q: jump %q, want %q", tc.publish, got, tc.want)
		}
	}
}
