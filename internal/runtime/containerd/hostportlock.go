package containerd

import (
	"os"

	"golang.org/x/sys/unix"
)

// The portmap plugin's shared chains (CNI-HOSTPORT-*) are created by the
// first container with a host port and removed by a reset once none is
// left. Between a reset's "none is left" and its delete, another agent on
// the host may be half-way through adding one: the plugin has made the
// shared chains and is about to jump to them. A host-wide lock closes that
// window: adds with host ports hold it shared, the reset's removal holds
// it exclusive.
const hostportLockPath = "/run/shoal-hostports.lock"

// lockHostports takes the lock (how: unix.LOCK_SH or unix.LOCK_EX) and
// returns its release. Without /run (or its permission), it does nothing.
func lockHostports(how int) func() {
	f, err := os.OpenFile(hostportLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return func() {}
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}
