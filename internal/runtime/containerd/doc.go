// Package containerd is the real runtime.Driver: containers run by
// containerd and runc, networked by CNI (bridge, host-local, portmap,
// loopback) in a network namespace the driver creates per container.
//
// What it owns, per container id:
//
//	containerd namespace cfg.Namespace
//	  container  id      labels: the agent's + io.shoal.runtime.* (IP, log, ports, start)
//	  snapshot   id      overlayfs, read-write rootfs
//	  task               one per run; deleted and recreated by Start after an exit
//	/run/netns/<namespace>-<id>          bind-mounted network namespace
//	StateDir/cni/ipam/<network>/<ip>     host-local IP allocation
//	StateDir/cni/cache                   libcni results (used on CNI DEL)
//	StateDir/containers/<id>/hosts       the container's /etc/hosts
//	iptables: portmap DNAT chains named after the CNI container id
//	host ports: a listening socket on each, held by the driver (see portHolds)
//
// Per network, New installs one masquerade rule for the subnet's outbound
// traffic (ensureMasquerade) and the egress rules of hostnet.EgressPlan
// (what containers reach of the node and past it; IPv6 is off on the
// bridge, so they cannot be gone around); both are left in place when
// the driver stops, and Reset removes them.
//
// Everything outside containerd is named from the id alone, so Remove can
// clean up after a crash in the middle of Create. Start re-creates a
// network namespace that is gone (a node reboot empties /run), keeping the
// port mappings; the IP may change and the label follows it. The host-port
// sockets die with the driver's process; New takes them again from the
// ports labels.
//
// Logs: containerd's shim appends the container's stdout and stderr to
// Spec.LogPath; Start moves the previous run's log aside. Rotating by size
// is the agent's (a logger process per container would cost ~28 MB RSS).
//
// It must not decide policy: no restarts, no back-off, no garbage
// collection of images. That is the agent's.
package containerd
