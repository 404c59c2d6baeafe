#!/usr/bin/env bash
# The whole suite, as `make test` runs it: format and vet checks, then every
# package's tests with the race detector against a private containerd, then
# a check that the tests left the host as they found it (no iptables rule,
# link, network namespace, mount, route, process or containerd namespace of
# theirs).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TEST_CTD=${TEST_CTD:-/run/shoal-test-ctd}
GOTEST_FLAGS=${GOTEST_FLAGS:--count=1 -timeout 30m}

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
$GO vet ./...

before=$(mktemp)
ns_before=$(mktemp)
trap 'rm -f "$before" "$ns_before"' EXIT
scripts/hoststate.sh snapshot "$before"

sock=$(scripts/containerd.sh start "$TEST_CTD")
stopped=
stop_ctd() { [ -n "$stopped" ] || scripts/containerd.sh stop "$TEST_CTD"; stopped=1; }
trap 'stop_ctd; rm -f "$before" "$ns_before"' EXIT
ctr --address "$sock" namespaces ls -q | sort >"$ns_before"

# Every package runs with the race detector: the e2e tests too, since the
# binary they start is built with -race (SHOAL_E2E_RACE) and its data races
# are as real as the unit tests'.
status=0
SHOAL_CONTAINERD_ADDRESS=$sock SHOAL_E2E_RACE=1 $GO test -race $GOTEST_FLAGS ./... || status=$?

left=$(comm -13 "$ns_before" <(ctr --address "$sock" namespaces ls -q | sort))
stop_ctd
if [ -n "$left" ]; then
	echo "the tests left containerd namespaces behind: $left" >&2
	status=1
fi
scripts/hoststate.sh check "$before" || status=1
exit $status
