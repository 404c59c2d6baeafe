#!/usr/bin/env bash
# Stops what `make up` started: the apps, shoal, and the private containerd.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-/var/lib/shoal}
CTD_DIR=${CTD_DIR:-/run/shoal-containerd}
pidfile=$DATA_DIR/shoal.pid
export SHOAL_CONFIG=$DATA_DIR/admin.conf

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	# Delete every app so containers, network namespaces and IPs are released.
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
scripts/containerd.sh stop "$CTD_DIR" >/dev/null 2>&1 || true
