#!/bin/sh
# containerd.sh start|stop|status DIR
#
# Runs a private containerd for development and tests: its own config, root,
# state and socket under DIR, the CRI plugin disabled, overlayfs snapshots.
# It never touches a system containerd (different socket, root and state).
#
#   scripts/containerd.sh start /tmp/ctd    # prints the socket path
#   export SHOAL_CONTAINERD_ADDRESS=/tmp/ctd/containerd.sock
#   scripts/containerd.sh stop /tmp/ctd
#
# Keep DIR short (under /tmp or /run): the socket path must fit in a unix
# socket address (108 bytes).
set -eu

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
sock=$dir/containerd.sock
pidfile=$dir/containerd.pid

running() {
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

answers() {
	ctr --address "$sock" version >/dev/null 2>&1
}

case $cmd in
start)
	if ! command -v containerd >/dev/null 2>&1; then
		echo "containerd not installed: run make deps" >&2
		exit 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "containerd needs root" >&2
		exit 1
	fi
	if [ ${#sock} -ge 100 ]; then
		echo "socket path $sock is too long for a unix socket; use a shorter DIR" >&2
		exit 1
	fi
	mkdir -p "$dir/root" "$dir/state" "$dir/opt"
	if running; then
		answers && { echo "$sock"; exit 0; }
		echo "containerd (pid $(cat "$pidfile")) is running but not answering on $sock" >&2
		exit 1
	fi
	cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML
	containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 &
	echo $! >"$pidfile"
	i=0
	while ! answers; do
		if ! running; then
			echo "containerd exited; see $dir/containerd.log:" >&2
			tail -n 20 "$dir/containerd.log" >&2
			exit 1
		fi
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "containerd did not answer on $sock within 10s; see $dir/containerd.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "$sock"
	;;
stop)
	if ! running; then
		rm -f "$pidfile"
		exit 0
	fi
	# Shims outlive containerd: say so rather than leave them silently.
	for ns in $(ctr --address "$sock" namespaces ls -q 2>/dev/null); do
		n=$(ctr --address "$sock" -n "$ns" tasks ls -q 2>/dev/null | wc -l)
		if [ "$n" -gt 0 ]; then
			echo "warning: $n task(s) still running in namespace $ns; their shims keep running" >&2
		fi
	done
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
	;;
status)
	if running && answers; then
		echo "running: $sock"
	else
		echo "stopped"
		exit 1
	fi
	;;
*)
	usage
	;;
esac
