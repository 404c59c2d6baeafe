#!/usr/bin/env bash
# Installs what shoal needs on Debian, as root, when it is missing:
# containerd, runc, the CNI plugins, iptables, iproute2 and curl (up.sh
# waits on the API with it). Go must already be installed at the version
# go.mod names (Debian's own is too old); this says so if it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
want_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl ca-certificates)

if ! command -v go >/dev/null; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "go is at /usr/local/go/bin but not on PATH: export PATH=\$PATH:/usr/local/go/bin" >&2
	else
		echo "Go $want_go or newer is required (https://go.dev/dl); Debian's golang package is too old" >&2
	fi
	exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -n1)" != "$want_go" ]; then
	echo "go.mod needs Go $want_go or newer; $(command -v go) is $have_go (https://go.dev/dl)" >&2
	exit 1
fi

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing ${need[*]}: run as root so they can be installed with apt-get" >&2
		exit 1
	fi
	echo "installing ${need[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Container traffic is routed through the bridge.
if [ "$(id -u)" -eq 0 ]; then
	sysctl -qw net.ipv4.ip_forward=1 || true
fi
