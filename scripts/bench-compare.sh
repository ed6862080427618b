#!/usr/bin/env bash
# Side by side: raftkv and etcd 3.4 (when installed) under the same load, one after the other,
# each a single member on a fresh loopback data dir with fsync on, driven by `raftkvctl bench`
# over the JSON gateway. Prints one Markdown table with raftkv/etcd ratios, each server's CPU
# seconds per 1000 requests and its peak RSS. Both servers are stopped by PID.
#
# Usage: scripts/bench-compare.sh          (from `make bench`)
# Environment:
#   SCALE     multiplies every workload's request count (default 1; 0.2 for a quick look)
#   BIG=1     also load 1,000,000 keys of 256 bytes into each server, report RSS after it,
#             and time a raftkv restart on that data until it serves a read
#   RAFTKV_BIN, RAFTKVCTL_BIN (default $CARGO_TARGET_DIR/release/...), ETCD_BIN (etcd on PATH)
#   PORT      client port (default 42379; the peer port is PORT+1)
set -euo pipefail
# These measurements are of the JSON gateway path, as recorded in docs/performance.md.
export RAFTKVCTL_GATEWAY=true
HERE="$(cd "$(dirname "$0")" && pwd)"
SHARED="$(cd "$HERE/../.." && pwd)/shared/etcd"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
RAFTKV_BIN="${RAFTKV_BIN:-$TARGET/release/raftkv}"
CTL="${RAFTKVCTL_BIN:-$TARGET/release/raftkvctl}"
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || true)}"
PORT="${PORT:-42379}"
SCALE="${SCALE:-1}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")"
trap 'stop_server; rm -rf "$WORK"' EXIT

# name | raftkvctl bench arguments (the total is scaled)
WORKLOADS=(
  "put c1|--conns 1 --clients 1 --total 3000 put --key-size 16 --val-size 256 --key-space-size 1000000"
  "put c16|--conns 16 --clients 16 --total 30000 put --key-size 16 --val-size 256 --key-space-size 1000000"
  "put c64|--conns 64 --clients 64 --total 60000 put --key-size 16 --val-size 256 --key-space-size 1000000"
  "range l c64|--conns 64 --clients 64 --total 150000 range bench-range-key --consistency l"
  "range s c64|--conns 64 --clients 64 --total 150000 range bench-range-key --consistency s"
)

# shellcheck source=scripts/server-lib.sh
. "$HERE/server-lib.sh"


peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }



# run SERVER: every workload against the running server; one line per workload into $WORK/SERVER.tsv
run_all() {
  local server=$1
  "$CTL" --endpoints "127.0.0.1:$PORT" put bench-range-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
  : >"$WORK/$server.tsv"
  for w in "${WORKLOADS[@]}"; do
    local name="${w%%|*}" args="${w#*|}"
    local total; total=$(awk -v a="$args" 'BEGIN{split(a,f," "); for(i in f) if (f[i]=="--total") print f[i+1]}')
    local scaled; scaled=$(awk -v t="$total" -v s="$SCALE" 'BEGIN{printf "%d", t*s < 100 ? 100 : t*s}')
    args="${args/--total $total/--total $scaled}"
    local c0; c0=$(cpu_secs)
    # shellcheck disable=SC2086
    local json; json=$("$CTL" --endpoints "127.0.0.1:$PORT" bench --json $args)
    local c1; c1=$(cpu_secs)
    printf '%s\t%s\t%s\n' "$name" "$json" "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')" >>"$WORK/$server.tsv"
    echo "  $server $name: $(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s, p99 %.2f ms, %d errors%s" % (r["requests_per_sec"], r["p99_ms"], sum(e["count"] for e in r["errors"]), "".join(" [%dx %s]" % (e["count"], e["error"]) for e in r["errors"])))')" >&2
  done
  echo "$(peak_rss_mib)" >"$WORK/$server.rss"
}

# big SERVER: 1,000,000 keys of 256 bytes; RSS after; for raftkv, restart-to-ready time.
run_big() {
  local server=$1
  "$CTL" --endpoints "127.0.0.1:$PORT" bench --json --conns 64 --clients 64 --total 1000000 \
    put --key-size 16 --val-size 256 --sequential-keys --key-space-size 1000000 >"$WORK/$server.big.json"
  echo "$(peak_rss_mib)" >"$WORK/$server.bigrss"
  if [ "$server" = raftkv ]; then
    stop_server
    local t0; t0=$(date +%s.%N)
    start_raftkv
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}' >"$WORK/raftkv.restart"
  fi
}

[ -x "$RAFTKV_BIN" ] && [ -x "$CTL" ] || { echo "build first: make build" >&2; exit 1; }
echo "# bench-compare $(date -u +%Y-%m-%dT%H:%M:%SZ) scale=$SCALE nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "raftkv:" >&2
start_raftkv
run_all raftkv
[ "${BIG:-0}" = 1 ] && run_big raftkv
stop_server

HAVE_ETCD=0
if [ -n "$ETCD_BIN" ] && [ -x "$ETCD_BIN" ]; then
  HAVE_ETCD=1
  echo "etcd ($ETCD_BIN):" >&2
  start_etcd
  run_all etcd
  [ "${BIG:-0}" = 1 ] && run_big etcd
  stop_server
else
  echo "etcd not installed: raftkv alone. For the comparison: apt-get install etcd-server etcd-client" >&2
fi

python3 - "$WORK" "$HAVE_ETCD" "${BIG:-0}" <<'EOF'
import json, os, sys
work, have_etcd, big = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
def load(server):
    rows = {}
    for line in open(os.path.join(work, server + ".tsv")):
        name, js, cpu = line.rstrip("\n").split("\t")
        r = json.loads(js)
        r["cpu_per_1k"] = float(cpu) / max(r["requests"], 1) * 1000
        rows[name] = r
    return rows
def read(name, default="-"):
    p = os.path.join(work, name)
    return open(p).read().strip() if os.path.exists(p) else default
ours = load("raftkv")
theirs = load("etcd") if have_etcd else {}
print("| workload | raftkv req/s | etcd req/s | ratio | p50 ms raftkv / etcd | p99 ms raftkv / etcd | CPU s per 1000 req raftkv / etcd | CPU ratio |")
print("|---|---|---|---|---|---|---|---|")
for name, r in ours.items():
    e = theirs.get(name)
    if e:
        print("| %s | %.0f | %.0f | %.2f× | %.2f / %.2f | %.2f / %.2f | %.3f / %.3f | %.2f |" % (
            name, r["requests_per_sec"], e["requests_per_sec"], r["requests_per_sec"] / max(e["requests_per_sec"], 1e-9),
            r["p50_ms"], e["p50_ms"], r["p99_ms"], e["p99_ms"], r["cpu_per_1k"], e["cpu_per_1k"],
            r["cpu_per_1k"] / max(e["cpu_per_1k"], 1e-9)))
    else:
        print("| %s | %.0f | - | - | %.2f / - | %.2f / - | %.3f / - | - |" % (
            name, r["requests_per_sec"], r["p50_ms"], r["p99_ms"], r["cpu_per_1k"]))
print()
print("peak RSS after the runs: raftkv %s MiB, etcd %s MiB" % (read("raftkv.rss"), read("etcd.rss")))
if big:
    print("peak RSS after 1,000,000 keys of 256 B: raftkv %s MiB, etcd %s MiB; raftkv restart to first read: %s s" % (
        read("raftkv.bigrss"), read("etcd.bigrss"), read("raftkv.restart")))
EOF
