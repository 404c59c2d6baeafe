#!/usr/bin/env bash
# make bench: prints the figures the issues ask for, each as one line.
#
#   scheduler: N placements/s (10000 instances on 1000 nodes)
#   apply20: shoal S s, containerd floor F s, ratio R
#   apply20 at cpu 10m: the same with a 10m CPU limit (a CFS quota of
#          1000/100000): a container's own limit must not slow its start;
#          and shoal at 10m against shoal at 50m
#   control plane: instances/s to Running on 1000 hollow nodes, API p99s,
#          the server's peak RSS; the API's p50/p99/max and failed probes
#          (open loop); etcd's write rate at idle before and after the run
#          (BENCH_LARGE=1: the same lines for 5000 nodes, 50000 instances)
#   memory: all-in-one (server + agent) RSS M MB at idle with 20 instances
#   proxy: the same small GETs sent straight to one instance, through its
#          service address, through a published port on the node's address
#          (kernel mode, the default) and on loopback (always the user-space
#          proxy, as publishMode: proxy is)
#   failover: a new leader after kill -9, a cut-off node's instances Ready
#          elsewhere (three simulated machines)
#
# The floor is measured in the same script on the same machine: 20 parallel
# `ctr run -d` of the same image in a containerd namespace of its own, each
# given its CPU quota once started, as shoal's are.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/shoal

# 1. Scheduler: pure placement, one core.
sched=$(go test -run '^$' -bench BenchmarkSchedule10kOn1k -benchtime 3x -cpu 1 ./internal/scheduler/ |
	awk '/placements\/s/ { for (i = 1; i <= NF; i++) if ($(i+1) == "placements/s") print $i }' | tail -n 1)
printf 'scheduler: %.0f placements/s (10000 instances on 1000 nodes)\n' "$sched"

# 1b. The control plane alone: one server, 1000 hollow agents, 10000
# instances (BENCH_NODES, BENCH_INSTANCES); with BENCH_LARGE=1 also 5000
# and 50000 (BENCH_LARGE_NODES, BENCH_LARGE_INSTANCES).
HB=$PWD/bin/hollowbench
go build -o "$HB" ./hack/hollowbench
"$HB" -nodes "${BENCH_NODES:-1000}" -instances "${BENCH_INSTANCES:-10000}"
if [ "${BENCH_LARGE:-0}" = 1 ]; then
	"$HB" -nodes "${BENCH_LARGE_NODES:-5000}" -instances "${BENCH_LARGE_INSTANCES:-50000}" -timeout 2h
fi

# 2. apply --wait of 20 hello replicas on one node, against the floor.
make -s images >/dev/null
work=$(mktemp -d /tmp/sbench-XXXX)
ctd=$work/ctd
sock=$(scripts/containerd.sh start "$ctd")
port=$((17000 + RANDOM % 1000))
pid=
cleanup() {
	set +e
	if [ -n "$pid" ]; then
		"$BIN" --config "$work/data/admin.conf" delete app bench20 >/dev/null 2>&1
		"$BIN" --config "$work/data/admin.conf" delete app svc >/dev/null 2>&1
		for _ in $(seq 1 100); do
			[ -z "$("$BIN" --config "$work/data/admin.conf" get instances -o name 2>/dev/null)" ] && break
			sleep 0.2
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	for t in $(ctr --address "$sock" -n bench-floor tasks ls -q 2>/dev/null); do
		ctr --address "$sock" -n bench-floor tasks kill -s KILL "$t" >/dev/null 2>&1
	done
	sleep 0.5
	for t in $(ctr --address "$sock" -n bench-floor containers ls -q 2>/dev/null); do
		ctr --address "$sock" -n bench-floor tasks delete -f "$t" >/dev/null 2>&1
		ctr --address "$sock" -n bench-floor containers delete "$t" >/dev/null 2>&1
	done
	"$BIN" node reset --data-dir "$work/data/agent" --containerd-address "$sock" --runtime-namespace bench --bridge sbench0 --routes=false >/dev/null
	scripts/containerd.sh stop "$ctd" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

"$BIN" up --data-dir "$work/data" --listen "127.0.0.1:$port" --containerd-address "$sock" \
	--runtime-namespace bench --bridge sbench0 --cluster-cidr 10.215.0.0/16 --subnet 10.215.0.0/24 >"$work/shoal.log" 2>&1 &
pid=$!
export SHOAL_CONFIG=$work/data/admin.conf
for _ in $(seq 1 150); do
	"$BIN" --config "$work/data/admin.conf" get nodes -o name 2>/dev/null | grep -q node/ && break
	sleep 0.2
done
S="$BIN --config $work/data/admin.conf"
$S image push build/images/hello-v1.tar >/dev/null
# Pull the image once so both sides start from a local image.
cat >"$work/warm.yaml" <<YAML
apiVersion: shoal/v1
kind: App
metadata: {name: warm}
spec: {image: shoal.local/hello:v1, resources: {cpu: 10m, memory: 16Mi}}
YAML
$S apply -f "$work/warm.yaml" --wait --timeout 2m >/dev/null
$S delete app warm >/dev/null
for _ in $(seq 1 100); do [ -z "$($S get instances -o name 2>/dev/null)" ] && break; sleep 0.2; done

# apply20 MILLICPU LABEL: 20 replicas with that CPU limit through shoal,
# then 20 parallel `ctr run -d` of the same image with the same memory
# limit, no network (the floor). The floor gets its CPU limit as shoal's
# containers do (internal/runtime/containerd cpuLimit): started
# unthrottled, the CFS quota set right after the start; started under a
# 10m quota, runc's own setup inside the container takes seconds.
ctr --address "$sock" -n bench-floor images import build/images/hello-v1.tar >/dev/null
# cpu_quota CGROUP QUOTA: the quota (µs per 100 ms) of a running
# container's cgroup, written where runc's update writes it.
cpu_quota() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		echo "$2 100000" >"/sys/fs/cgroup$1/cpu.max"
	else
		echo 100000 >"/sys/fs/cgroup/cpu$1/cpu.cfs_period_us"
		echo "$2" >"/sys/fs/cgroup/cpu$1/cpu.cfs_quota_us"
	fi
}
# floor20 MILLICPU: seconds for 20 parallel starts with that CPU limit.
floor20() {
	local mcpu=$1 t0 t1 floor=() id
	t0=$(date +%s.%N)
	for i in $(seq 1 20); do
		id=floor-$$-$mcpu-$i
		(ctr --address "$sock" -n bench-floor run -d --null-io --memory-limit $((32 << 20)) --cgroup "/bench-floor/$id" \
			shoal.local/hello:v1 "$id" >/dev/null && cpu_quota "/bench-floor/$id" $((mcpu * 100))) &
		floor+=($!)
	done
	for p in "${floor[@]}"; do wait "$p"; done
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
apply20() {
	local mcpu=$1
	cat >"$work/bench20.yaml" <<YAML
apiVersion: shoal/v1
kind: App
metadata: {name: bench20}
spec:
  image: shoal.local/hello:v1
  replicas: 20
  resources: {cpu: ${mcpu}m, memory: 32Mi}
YAML
	local t0 t1
	t0=$(date +%s.%N)
	$S apply -f "$work/bench20.yaml" --wait --timeout 5m >/dev/null
	t1=$(date +%s.%N)
	$S delete app bench20 >/dev/null
	for _ in $(seq 1 150); do [ -z "$($S get instances -o name 2>/dev/null)" ] && break; sleep 0.2; done
	awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
shoal50=$(apply20 50)
floor50=$(floor20 50)
awk -v s="$shoal50" -v f="$floor50" 'BEGIN { printf "apply20: shoal %.2f s, containerd floor %.2f s, ratio %.2f (cpu 50m; the floor started unthrottled, its quota set after the start, as shoal does)\n", s, f, s / f }'
shoal10=$(apply20 10)
floor10=$(floor20 10)
awk -v s="$shoal10" -v f="$floor10" -v s50="$shoal50" 'BEGIN { printf "apply20 at cpu 10m: shoal %.2f s, containerd floor %.2f s, ratio %.2f (the floor started as shoal starts: unthrottled, quota after); shoal at 10m against shoal at 50m: ratio %.2f\n", s, f, s / f, s / s50 }'
$S apply -f "$work/bench20.yaml" --wait --timeout 5m >/dev/null

# 3. Resident memory at idle with the 20 instances running.
sleep 10
rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
awk -v kb="$rss_kb" 'BEGIN { printf "memory: all-in-one (server + agent) RSS %.1f MB at idle with 20 instances\n", kb / 1024 }'

# 4. The service proxy's cost: one hello instance, the same load straight
# to its IP, to its service address and to a published port.
$S delete app bench20 >/dev/null
for _ in $(seq 1 150); do [ -z "$($S get instances -o name 2>/dev/null)" ] && break; sleep 0.2; done
pub=$((30000 + RANDOM % 2768)) # inside the default publish range, 30000-32767
cat >"$work/svc.yaml" <<YAML
apiVersion: shoal/v1
kind: App
metadata: {name: svc}
spec:
  image: shoal.local/hello:v1
  ports: [{name: http, containerPort: 8080, publish: $pub}]
  resources: {cpu: "1", memory: 64Mi}
YAML
$S apply -f "$work/svc.yaml" --wait --timeout 2m >/dev/null
ip=$($S get instances -o json | awk -F'"' '/"ip":/ { print $4; exit }')
vip=$($S get app svc -o json | awk -F'"' '/"serviceIP":/ { print $4; exit }')
nodeip=$($S get nodes -o json | awk -F'"' '/"internalIP":/ { print $4; exit }')
go build -o "$work/httpbench" ./hack/httpbench
sleep 2
# Five rounds of the four paths, interleaved, 8000 requests each; every
# figure is the median of its five. A busy moment then touches one round of
# every path rather than all of one path, and the ratios are of medians.
rate() { awk '{ for (i = 2; i <= NF; i++) if ($i == "req/s,") print $(i-1) }'; }
p99() { awk '{ for (i = 1; i <= NF; i++) if ($i == "p99") print $(i+1) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
: >"$work/proxy.txt"
for round in 1 2 3 4 5; do
	for path in "direct http://$ip:8080/" "service http://$vip:8080/" "published http://$nodeip:$pub/" "proxy http://127.0.0.1:$pub/"; do
		set -- $path
		line=$("$work/httpbench" -url "$2" -n 8000 -warmup 200 -c 8 -label "$1")
		echo "$1 $(rate <<<"$line") $(p99 <<<"$line") $(awk '{ for (i = 1; i <= NF; i++) if ($i == "failed") print $(i-1) }' <<<"$line")" >>"$work/proxy.txt"
	done
done
for path in direct service published proxy; do
	r=$(awk -v p="$path" '$1 == p { print $2 }' "$work/proxy.txt" | median)
	q=$(awk -v p="$path" '$1 == p { print $3 }' "$work/proxy.txt" | median)
	f=$(awk -v p="$path" '$1 == p { s += $4 } END { print s }' "$work/proxy.txt")
	printf "%s: %.0f req/s, p99 %.3f ms (medians of 5 rounds), %d failed\n" "$path" "$r" "$q" "$f"
	eval "rate_$path=$r p99_$path=$q"
done
awk -v rd="$rate_direct" -v rs="$rate_service" -v rp="$rate_published" -v rx="$rate_proxy" \
	-v d="$p99_direct" -v s="$p99_service" -v p="$p99_published" -v x="$p99_proxy" 'BEGIN {
	printf "proxy: service address %.0f%% of direct throughput, p99 %+.3f ms; published port %.0f%% of direct, p99 %+.3f ms; published port through the proxy %.0f%%, p99 %+.3f ms\n", 100 * rs / rd, s - d, 100 * rp / rd, p - d, 100 * rx / rd, x - d
}'

# 5. Failover, on three simulated machines (network namespaces on a
# switch; test/cluster): a new leader after kill -9 of the old, and a
# cut-off node's instances Ready elsewhere, with the default grace period.
SHOAL_BENCH_FAILOVER=1 SHOAL_CONTAINERD_ADDRESS=$sock go test -count=1 -run '^TestFailoverFigures$' -v ./e2e/ 2>&1 |
	grep '^failover:' || { echo "failover: the figures test failed (go test -run TestFailoverFigures -v ./e2e with SHOAL_BENCH_FAILOVER=1)" >&2; exit 1; }

# 6. The encrypted overlay between two simulated machines (wireguard-go on
# a TUN device, as agents run it) against the same machines' plain link:
# on the bare veth (memory speed) and on the link shaped to 1 Gbit/s.
SHOAL_BENCH_OVERLAY=1 go test -count=1 -run '^TestOverlayFigures$' -v ./internal/overlay/ 2>&1 |
	grep '^overlay:' || { echo "overlay: the figures test failed (go test -run TestOverlayFigures -v ./internal/overlay with SHOAL_BENCH_OVERLAY=1)" >&2; exit 1; }

# 7. Autoscaling with real containers: seconds from a paced load crossing
# the target to the decision and to the new replica Ready, failed requests
# during the ramp, back to min after the down window, and the first
# response of an App at zero replicas.
SHOAL_BENCH_AUTOSCALE=1 SHOAL_CONTAINERD_ADDRESS=$sock go test -count=1 -run '^TestAutoscaleFollowsTheLoad$' -v ./e2e/ 2>&1 |
	grep '^autoscale:' || { echo "autoscale: the figures test failed (go test -run TestAutoscaleFollowsTheLoad -v ./e2e with SHOAL_BENCH_AUTOSCALE=1)" >&2; exit 1; }

# 8. The cost of reading what containers use: one sample of 100 running
# containers (wall time: containerd's and its shims' work included).
SHOAL_BENCH_USAGE=1 SHOAL_CONTAINERD_ADDRESS=$sock go test -count=1 -run '^TestUsageCost$' -v ./internal/runtime/containerd/ 2>&1 |
	grep '^usage:' || { echo "usage: the cost test failed (go test -run TestUsageCost -v ./internal/runtime/containerd with SHOAL_BENCH_USAGE=1)" >&2; exit 1; }
