#!/usr/bin/env bash
# hoststate.sh snapshot FILE | check FILE
#
# What shoal and its tests could leave on a host, in a form two snapshots
# can be compared in: iptables rules (without counters), network links,
# network namespaces, mounts, routes and shoal's processes. `make test`
# takes a snapshot before the suite and checks after it that nothing was
# added: tests must leave the host as they found it.
set -euo pipefail

state() {
	{
		for t in nat filter mangle; do
			iptables-save -t "$t" 2>/dev/null | grep -E '^-A|^:' | sed -E 's/ \[[0-9]+:[0-9]+\]$//' | sed "s/^/iptables $t: /"
		done
		ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "link: " $2}'
		ip netns list 2>/dev/null | awk '{print "netns: " $1}'
		[ -d /run/netns ] && ls /run/netns | sed 's/^/netns file: /'
		awk '{print "mount: " $5}' /proc/self/mountinfo | grep -E 'netns|shoal|containerd|ctd' || true
		ip -4 route show | sed 's/^/route: /'
		ps -eo args= | grep -E '(^|/)(shoal|containerd-shim(-[a-z0-9-]+)?|containerd)( |$)' | grep -v grep | sed 's/^/process: /' || true
	} | sort -u
}

case ${1:-} in
snapshot)
	state >"$2"
	;;
check)
	after=$(mktemp)
	trap 'rm -f "$after"' EXIT
	state >"$after"
	added=$(comm -13 "$2" "$after")
	if [ -n "$added" ]; then
		echo "the tests left this behind on the host:" >&2
		echo "$added" | sed 's/^/  /' >&2
		exit 1
	fi
	echo "host as found: no rule, link, netns, mount, route or process left behind"
	;;
*)
	echo "usage: $0 snapshot FILE | check FILE" >&2
	exit 2
	;;
esac
