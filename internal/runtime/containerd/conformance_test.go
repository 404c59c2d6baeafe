package containerd_test

import (
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/runtime/containerd"
	"github.com/shoal-dev/shoal/internal/runtime/containerd/containerdtest"
	"github.com/shoal-dev/shoal/internal/runtime/runtimetest"
)

// netConf is the conformance test's network, apart from the others'.
var netConf = containerd.NetworkConfig{Bridge: "shoaltc0", Subnet: "10.213.203.0/24"}

// TestConformance runs the suite the fake runtime passes too, against a
// real containerd.
func TestConformance(t *testing.T) {
	address := containerdtest.Start(t)
	resetOnCleanup(t, address, testNamespace("conf"), netConf)
	d := newDriver(t, containerd.Config{
		Address:    address,
		Namespace:  testNamespace("conf"),
		StateDir:   t.TempDir(),
		Network:    netConf,
		Registries: map[string]string{"shoal.local": serveExecTool(t)},
	})
	runtimetest.Run(t, runtimetest.Suite{
		Driver:     d,
		Image:      execImage,
		Args:       []string{"sleep"},
		ExecCmd:    []string{"/exectool", "exit", "3"},
		ExecOutput: "to stderr",
		ExecCode:   3,
		CatCmd:     []string{"/exectool", "cat"},
		LogPath:    filepath.Join(t.TempDir(), "conformance.log"),
	})
}
