#!/usr/bin/env bash
# `make cluster`: a local 3-member raftkv cluster in the foreground, on loopback only.
#
#   infra1: client http://127.0.0.1:2379   peer http://127.0.0.1:2380
#   infra2: client http://127.0.0.1:22379  peer http://127.0.0.1:22380
#   infra3: client http://127.0.0.1:32379  peer http://127.0.0.1:32380
#
# Data in ./cluster.raftkv/infraN (kept between runs: a second run restarts the same cluster;
# `rm -rf cluster.raftkv` for a fresh one). Each member's log lines are prefixed with its name.
# Ctrl-C (or SIGTERM) stops all three and waits for them; if one member exits on its own, the
# others are stopped too and the script exits non-zero.
#
# Environment: RAFTKV_BIN (default $CARGO_TARGET_DIR/release/raftkv), CLUSTER_DIR
# (default ./cluster.raftkv), extra member flags in RAFTKV_FLAGS.
set -uo pipefail

BIN="${RAFTKV_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}/release/raftkv}"
DIR="${CLUSTER_DIR:-cluster.raftkv}"
NAMES=(infra1 infra2 infra3)
CLIENT_PORTS=(2379 22379 32379)
PEER_PORTS=(2380 22380 32380)
INITIAL="infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"

[ -x "$BIN" ] || { echo "cluster: $BIN not found; run 'make build' first" >&2; exit 1; }
mkdir -p "$DIR"

PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap 'echo "cluster: stopping"; stop_all; exit 0' INT TERM

for i in 0 1 2; do
  name=${NAMES[$i]}
  client="http://127.0.0.1:${CLIENT_PORTS[$i]}"
  peer="http://127.0.0.1:${PEER_PORTS[$i]}"
  # A subshell per member: the member's stdout and stderr, prefixed with its name. The member
  # is exec'd by the inner shell so its PID is the one we signal.
  (
    exec "$BIN" --name "$name" --data-dir "$DIR/$name" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$INITIAL" --initial-cluster-state new \
      --initial-cluster-token raftkv-cluster ${RAFTKV_FLAGS:-} 2>&1
  ) > >(sed -u "s/^/$name | /") &
  PIDS+=($!)
done
echo "cluster: infra1 $(printf '%s ' "${PIDS[0]}") infra2 ${PIDS[1]} infra3 ${PIDS[2]}; clients on 127.0.0.1:2379,22379,32379 (Ctrl-C stops all)"

# Wait for the first member to exit; a member that stops by itself takes the others down.
wait -n "${PIDS[@]}"
status=$?
echo "cluster: a member exited (status $status); stopping the others" >&2
stop_all
exit 1
