#!/usr/bin/env bash
# make fuzz: runs every fuzz target of the repository, one after the other
# (go test fuzzes one target at a time), FUZZTIME each (default 20s).
# A target is found by its `func FuzzX(` in a _test.go file, so a new one
# is run without editing this. A failure stops the run; go test has written
# the input under the package's testdata/fuzz/FuzzX/: keep it there as a
# seed once the bug is fixed.
#
# -fuzzminimizetime is short: minimizing a large input (an image archive)
# would otherwise take most of a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' internal cmd | xargs -n1 dirname | sort -u |
while read -r pkg; do
	for target in $(grep -hoE '^func Fuzz[A-Za-z0-9_]*' "$pkg"/*_test.go | sed 's/^func //' | sort); do
		echo "== $pkg $target ($FUZZTIME)"
		"$GO" test "./$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s
	done
done
