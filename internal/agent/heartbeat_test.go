package agent

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

// TestDefaultHeartbeatWithinGrace: an agent on its defaults renews its
// lease at least three times within the servers' default grace period.
func TestDefaultHeartbeatWithinGrace(t *testing.T) {
	if 3*DefaultHeartbeat > api.DefaultNodeGracePeriod {
		t.Fatalf("DefaultHeartbeat %v: want three renewals within api.DefaultNodeGracePeriod %v", DefaultHeartbeat, api.DefaultNodeGracePeriod)
	}
}
