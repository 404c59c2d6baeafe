#!/usr/bin/env bash
# Starts an all-in-one shoal cluster in the background and deploys the
# hello example. Called by `make up`; `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DATA_DIR:-/var/lib/shoal}
LISTEN=${LISTEN:-127.0.0.1:7070}
CTD_DIR=${CTD_DIR:-/run/shoal-containerd}
BIN=$PWD/bin/shoal
mkdir -p "$DATA_DIR"

# Use the system containerd when one answers; otherwise start our own.
sock=/run/containerd/containerd.sock
if ! ctr --address "$sock" version >/dev/null 2>&1; then
	sock=$(scripts/containerd.sh start "$CTD_DIR")
fi
echo "$sock" >"$DATA_DIR/containerd.address" # for make down's node reset

pidfile=$DATA_DIR/shoal.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	echo "shoal is already running (pid $(cat "$pidfile"))"
else
	nohup "$BIN" up --data-dir "$DATA_DIR" --listen "$LISTEN" --containerd-address "$sock" \
		>>"$DATA_DIR/shoal.log" 2>&1 &
	echo $! >"$pidfile"
fi

export SHOAL_CONFIG=$DATA_DIR/admin.conf
for i in $(seq 1 100); do
	if [ -f "$SHOAL_CONFIG" ] && "$BIN" get namespaces >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "shoal exited; its log ($DATA_DIR/shoal.log) ends with:" >&2
		tail -n 20 "$DATA_DIR/shoal.log" >&2
		exit 1
	fi
	sleep 0.2
done

"$BIN" image push build/images/hello-v1.tar
"$BIN" image push build/images/hello-v2.tar
"$BIN" apply -f examples/hello/app.yaml --wait --timeout 2m
"$BIN" get instances

cat <<MSG

shoal is up at https://$LISTEN (log: $DATA_DIR/shoal.log). Every connection is
mutual TLS: the CLI uses $SHOAL_CONFIG (the cluster CA and an
admin certificate; keep it private).

  curl localhost:30081                  # hello, any of its 3 replicas, from any node
  curl localhost:30080                  # hello-public, on its node's hostPort
  bin/shoal get apps                    # what runs
  bin/shoal get instances -o wide       # where, with which IPs
  bin/shoal logs app/hello -f           # follow the logs
  bin/shoal scale app hello --replicas 5
  bin/shoal delete -f examples/hello/app.yaml
  bin/shoal token create                # a join token for another machine, which runs:
                                        #   shoal agent --server https://THIS-HOST:PORT --token TOKEN
  make down                             # stop shoal (containers are stopped too)

MSG
