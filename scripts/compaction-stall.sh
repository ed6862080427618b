#!/usr/bin/env bash
# Put latency while a large compaction runs (issue 15, part 5), raftkv and then etcd 3.4 (when
# installed), each a single member on a fresh loopback data dir with fsync on:
#   1. history: KEYS keys × VERSIONS versions (1,000 × 1,000 = 1M revisions), VAL_SIZE-byte values;
#   2. before: an open-loop load of RATE puts/s for LOAD_SECS to fresh keys, no compaction;
#   3. during: the same load, and LEAD_SECS into it a physical compaction to the end of the
#      history (it returns once the old revisions are off the disk), timed; with ACTION=defrag
#      a defragment instead (`make bench-defrag`: 1M keys of one version each).
# Prints one Markdown table: slowest put and p99.9 before and during, and the compaction's time.
# Speed is never asserted; numbers are only comparable within one run on one machine.
#
# Usage: scripts/compaction-stall.sh
# Environment: KEYS (1000), VERSIONS (1000), VAL_SIZE (100), RATE (2000), LOAD_SECS (40),
#   LEAD_SECS (3), SETTLE_SECS (10, a pause after the history), PORT (13379; the peer port is PORT+1), RAFTKV_BIN, RAFTKVCTL_BIN, ETCD_BIN,
#   SERVERS ("raftkv etcd"), ACTION (compaction | defrag)
set -euo pipefail
# These measurements are of the JSON gateway path, as recorded in docs/performance.md.
export RAFTKVCTL_GATEWAY=true
HERE="$(cd "$(dirname "$0")" && pwd)"
SHARED="$(cd "$HERE/../.." && pwd)/shared/etcd"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
RAFTKV_BIN="${RAFTKV_BIN:-$TARGET/release/raftkv}"
CTL="${RAFTKVCTL_BIN:-$TARGET/release/raftkvctl}"
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || true)}"
KEYS="${KEYS:-1000}" VERSIONS="${VERSIONS:-1000}" VAL_SIZE="${VAL_SIZE:-100}"
RATE="${RATE:-2000}" LOAD_SECS="${LOAD_SECS:-40}" LEAD_SECS="${LEAD_SECS:-3}" SETTLE_SECS="${SETTLE_SECS:-10}"
PORT="${PORT:-13379}"
SERVERS="${SERVERS:-raftkv etcd}"
ACTION="${ACTION:-compaction}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/compaction-stall.XXXXXX")"
trap 'stop_server; rm -rf "$WORK"' EXIT

# shellcheck source=scripts/server-lib.sh
. "$HERE/server-lib.sh"

ctl() { "$CTL" --endpoints "127.0.0.1:$PORT" --command-timeout 600s "$@"; }




revision() {
  python3 - "$PORT" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v3/kv/range", data=b'{"key":"eA=="}', method="POST")
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
print(json.load(direct.open(req))["header"]["revision"])
EOF
}

# The load: fresh keys over a large key space, so it adds revisions beside the history.
load() {
  ctl bench --json --conns 8 --clients 32 --rate "$RATE" --total $((RATE * LOAD_SECS)) \
    put --key-size 16 --val-size "$VAL_SIZE" --key-space-size 100000000
}

# The removal's batches from /metrics (etcd's histogram, which both servers export): how many,
# their mean, and the bucket bound that holds the slowest.
pauses() {
  python3 - "$PORT" <<'EOF'
import sys, urllib.request
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
name = "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds"
buckets, total, count = [], 0.0, 0
for line in direct.open(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode().splitlines():
    if line.startswith(name + "_bucket"):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
    elif line.startswith(name + "_sum"):
        total = float(line.split()[-1])
    elif line.startswith(name + "_count"):
        count = int(float(line.split()[-1]))
slowest = next((le for le, n in buckets if n == count), float("inf"))
print("%d batches, mean %.1f ms, slowest <= %g ms" % (count, total / max(count, 1), slowest))
EOF
}

field() { python3 -c "import json,sys; print('%.1f' % json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

measure() { # SERVER: one result line into $WORK/SERVER.row
  local server=$1
  "start_$server"
  local began; began=$(date +%s.%N)
  ctl bench --conns 16 --clients 64 --total $((KEYS * VERSIONS)) \
    put --key-size 16 --val-size "$VAL_SIZE" --sequential-keys --key-space-size "$KEYS" >/dev/null
  local rev; rev=$(revision)
  echo "  $server: history of $((KEYS * VERSIONS)) puts up to revision $rev in $(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s" >&2
  sleep "$SETTLE_SECS" # let RocksDB's flushes and compactions of the history pass
  local before; before=$(load)
  load >"$WORK/during.json" &
  local load_pid=$!
  sleep "$LEAD_SECS"
  local c0; c0=$(date +%s.%N)
  if [ "$ACTION" = defrag ]; then
    # The gateway's defragment: both servers answer it once done.
    curl -sf --noproxy '*' -X POST "http://127.0.0.1:$PORT/v3/maintenance/defragment" -d '{}' >/dev/null
  else
    ctl compaction --physical "$rev" >/dev/null
  fi
  local c1; c1=$(date +%s.%N)
  wait "$load_pid"
  local during; during=$(cat "$WORK/during.json")
  local took; took=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')
  [ "$ACTION" = compaction ] && echo "  $server: removal $(pauses)" >&2
  if awk -v t="$took" -v l="$((LOAD_SECS - LEAD_SECS))" 'BEGIN{exit !(t > l)}'; then
    echo "  $server: the $ACTION outlasted the load; raise LOAD_SECS" >&2
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$server" \
    "$(field "$before" max_ms)" "$(field "$during" max_ms)" \
    "$(field "$before" p999_ms)" "$(field "$during" p999_ms)" "$took" >"$WORK/$server.row"
  echo "  $server: before $before" >&2
  echo "  $server: during $during" >&2
  stop_server
}

for server in $SERVERS; do
  if [ "$server" = etcd ] && [ -z "$ETCD_BIN" ]; then
    echo "etcd not installed: raftkv only" >&2
    continue
  fi
  measure "$server"
done

echo
echo "| server | slowest put before (ms) | slowest put during (ms) | p99.9 before (ms) | p99.9 during (ms) | $ACTION (s) |"
echo "|---|---|---|---|---|---|"
for server in $SERVERS; do
  [ -f "$WORK/$server.row" ] && cat "$WORK/$server.row"
done
