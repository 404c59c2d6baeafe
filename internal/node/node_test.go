package node

import (
	"context"
	"strings"
	"testing"
)

func TestOverlayDevice(t *testing.T) {
	for _, tc := range []struct{ bridge, want string }{
		{"shoal0", "wg-shoal0"},
		{"shoal-e2e-n1", "wg-shoal-e2e-n1"},
	} {
		if got := OverlayDevice(tc.bridge); got != tc.want {
			t.Errorf("OverlayDevice(%q) = %q, want %q", tc.bridge, got, tc.want)
		}
	}
	// Longer bridge names hash into a valid (<= 15 bytes) device name, a
	// different one per bridge.
	a, b := OverlayDevice("shoal-long-bridge-a"), OverlayDevice("shoal-long-bridge-b")
	if len(a) > 15 || len(b) > 15 || a == b || !strings.HasPrefix(a, "wg-") {
		t.Errorf("long bridges: %q and %q", a, b)
	}
}

// TestRunRefusesBadConfig: what is wrong with a Config is said before
// anything is made on the host.
func TestRunRefusesBadConfig(t *testing.T) {
	err := Run(context.Background(), Config{Runtime: "docker", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `--runtime "docker": use containerd or fake`) {
		t.Fatalf("Run with runtime docker: %v", err)
	}
}
