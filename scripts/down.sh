#!/usr/bin/env bash
# Stops what `make up` started and leaves the host as it was: the apps,
# shoal, then `shoal node reset` (containers, images, network namespaces,
# bridge, iptables rules, agent state), then the private containerd.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-/var/lib/shoal}
CTD_DIR=${CTD_DIR:-/run/shoal-containerd}
pidfile=$DATA_DIR/shoal.pid
export SHOAL_CONFIG=$DATA_DIR/admin.conf

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	# Delete every app so containers stop gracefully, drained.
	for ns in $(bin/shoal get namespaces -o name 2>/dev/null); do
		ns=${ns#namespace/}
		for app in $(bin/shoal get apps -n "$ns" -o name 2>/dev/null); do
			bin/shoal delete app "${app#app/}" -n "$ns" >/dev/null 2>&1 || true
		done
	done
	for i in $(seq 1 100); do
		[ -z "$(bin/shoal get instances -A -o name 2>/dev/null)" ] && break
		sleep 0.2
	done
	kill -TERM "$(cat "$pidfile")"
	for i in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
	rm -f "$pidfile"
	echo "shoal stopped"
fi
sock=$(cat "$DATA_DIR/containerd.address" 2>/dev/null || echo "$CTD_DIR/containerd.sock")
status=0
if [ -d "$DATA_DIR/agent" ] || ip link show dev shoal0 >/dev/null 2>&1; then
	bin/shoal node reset --data-dir "$DATA_DIR/agent" --containerd-address "$sock" || status=1
fi
rm -f "$DATA_DIR/containerd.address"
scripts/containerd.sh stop "$CTD_DIR" >/dev/null 2>&1 || true
exit $status
