// Package containerdtest gives tests a real containerd: the one named by
// $SHOAL_CONTAINERD_ADDRESS, or a private one started for the test (the
// same way scripts/containerd.sh does) and stopped when it ends. It never
// uses or disturbs a system containerd.
package containerdtest
