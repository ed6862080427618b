#!/usr/bin/env bash
# Side by side: raftkv and etcd 3.4 (when installed) under the same loads, one after the other,
# each a single member on a fresh loopback data dir with fsync on, driven by the same client,
# `raftkvctl bench`, over gRPC (etcd's own path; GATEWAY=1 measures the JSON gateway instead).
# Then the same put load against a 3-member cluster of each, at the leader. Prints one
# Markdown table with raftkv/etcd ratios, p50/p99/p99.9, each server's CPU seconds per 1000
# requests and its peak RSS. Servers are stopped by PID.
#
# Usage: scripts/bench-compare.sh          (from `make bench`; about 4 minutes at SCALE=1)
# Environment:
#   SCALE     multiplies every workload's request count (default 1; 0.2 for a quick look)
#   GATEWAY=1 every load over the JSON gateway (HTTP/1.1) rather than gRPC
#   CLUSTER=0 skips the 3-member clusters
#   BIG=1     also load 1,000,000 keys of 256 bytes into each server, report RSS after it,
#             and time a raftkv restart on that data until it serves a read
#   RAFTKV_BIN, RAFTKVCTL_BIN (default $CARGO_TARGET_DIR/release/...), ETCD_BIN (etcd on PATH)
#   PORT      client port (default 12379, below the kernel's ephemeral ports (32768 up) so that
#             no outgoing connection holds a port a member is about to bind; the peer port is
#             PORT+1; raftkv's cluster takes
#             PORT, PORT+10, PORT+20; etcd's script puts its cluster on 2379, 22379, 32379)
set -euo pipefail
if [ "${GATEWAY:-0}" = 1 ]; then export RAFTKVCTL_GATEWAY=true; PROTOCOL=gateway; else PROTOCOL=gRPC; fi
HERE="$(cd "$(dirname "$0")" && pwd)"
SHARED="$(cd "$HERE/../.." && pwd)/shared/etcd"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
RAFTKV_BIN="${RAFTKV_BIN:-$TARGET/release/raftkv}"
CTL="${RAFTKVCTL_BIN:-$TARGET/release/raftkvctl}"
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || true)}"
PORT="${PORT:-12379}"
SCALE="${SCALE:-1}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")"
trap 'stop_server; rm -rf "$WORK"' EXIT

# name | raftkvctl bench arguments (the total is scaled). (conns, clients) as etcd's
# benchmark names them; the shapes of issue 14.
PUT="put --key-size 16 --val-size 256 --key-space-size 1000000"
WORKLOADS=(
  "put (1,1)|--conns 1 --clients 1 --total 3000 $PUT"
  "put (16,16)|--conns 16 --clients 16 --total 30000 $PUT"
  "put (16,64)|--conns 16 --clients 64 --total 60000 $PUT"
  "range l (1,1)|--conns 1 --clients 1 --total 10000 range bench-range-key --consistency l"
  "range s (1,1)|--conns 1 --clients 1 --total 20000 range bench-range-key --consistency s"
  "range l (16,64)|--conns 16 --clients 64 --total 150000 range bench-range-key --consistency l"
  "range s (16,64)|--conns 16 --clients 64 --total 150000 range bench-range-key --consistency s"
  "txn-put (16,64)|--conns 16 --clients 64 --total 60000 txn-put --key-size 16 --val-size 256 --key-space-size 1000000"
  "lease-keepalive (16,64)|--conns 16 --clients 64 --total 150000 lease-keepalive"
  "watch latency, 1000 watchers|--conns 16 --clients 16 --total 1000 --rate 100 watch-latency --watchers 1000"
)
CLUSTER_WORKLOADS=("cluster put (16,64)|--target-leader --conns 16 --clients 64 --total 60000 $PUT")

# shellcheck source=scripts/server-lib.sh
. "$HERE/server-lib.sh"

# run SERVER WORKLOAD...: each workload against the running server; a line each into
# $WORK/SERVER.tsv, the peak RSS into $WORK/SERVER.rss.
run_all() {
  local server=$1; shift
  "$CTL" --endpoints "$ENDPOINTS" put bench-range-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
  : >"$WORK/$server.tsv"
  for w in "$@"; do
    local name="${w%%|*}" args="${w#*|}"
    local total; total=$(awk -v a="$args" 'BEGIN{split(a,f," "); for(i in f) if (f[i]=="--total") print f[i+1]}')
    local scaled; scaled=$(awk -v t="$total" -v s="$SCALE" 'BEGIN{printf "%d", t*s < 100 ? 100 : t*s}')
    args="${args/--total $total/--total $scaled}"
    local c0; c0=$(cpu_secs)
    # shellcheck disable=SC2086
    local json; json=$("$CTL" --endpoints "$ENDPOINTS" bench --json $args)
    local c1; c1=$(cpu_secs)
    printf '%s\t%s\t%s\n' "$name" "$json" "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')" >>"$WORK/$server.tsv"
    echo "  $server $name: $(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s, p99 %.2f ms, %d errors%s" % (r["requests_per_sec"], r["p99_ms"], sum(e["count"] for e in r["errors"]), "".join(" [%dx %s]" % (e["count"], e["error"]) for e in r["errors"])))')" >&2
  done
  peak_rss_mib >"$WORK/$server.rss"
}

# big SERVER: 1,000,000 keys of 256 bytes; RSS after; for raftkv, restart-to-ready time.
run_big() {
  local server=$1
  "$CTL" --endpoints "$ENDPOINTS" bench --json --conns 16 --clients 64 --total 1000000 \
    put --key-size 16 --val-size 256 --sequential-keys --key-space-size 1000000 >"$WORK/$server.big.json"
  peak_rss_mib >"$WORK/$server.bigrss"
  if [ "$server" = raftkv ]; then
    stop_server
    local t0; t0=$(date +%s.%N)
    start_raftkv
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}' >"$WORK/raftkv.restart"
  fi
}

[ -x "$RAFTKV_BIN" ] && [ -x "$CTL" ] || { echo "build first: make build" >&2; exit 1; }
echo "# bench-compare $(date -u +%Y-%m-%dT%H:%M:%SZ) over $PROTOCOL scale=$SCALE nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)" >&2

HAVE_ETCD=0
if [ -n "$ETCD_BIN" ] && [ -x "$ETCD_BIN" ]; then HAVE_ETCD=1; else
  echo "etcd not installed: raftkv alone. For the comparison: apt-get install etcd-server etcd-client" >&2
fi

echo "raftkv:" >&2
start_raftkv
run_all raftkv "${WORKLOADS[@]}"
[ "${BIG:-0}" = 1 ] && run_big raftkv
stop_server
if [ "$HAVE_ETCD" = 1 ]; then
  echo "etcd ($ETCD_BIN):" >&2
  start_etcd
  run_all etcd "${WORKLOADS[@]}"
  [ "${BIG:-0}" = 1 ] && run_big etcd
  stop_server
fi
if [ "${CLUSTER:-1}" = 1 ]; then
  echo "raftkv, 3 members:" >&2
  start_raftkv_cluster
  run_all raftkv-cluster "${CLUSTER_WORKLOADS[@]}"
  stop_server
  if [ "$HAVE_ETCD" = 1 ]; then
    echo "etcd, 3 members:" >&2
    start_etcd_cluster
    run_all etcd-cluster "${CLUSTER_WORKLOADS[@]}"
    stop_server
  fi
fi

python3 - "$WORK" "$HAVE_ETCD" "${BIG:-0}" "$PROTOCOL" <<'EOF'
import json, os, sys
work, have_etcd, big, protocol = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]
def load(server):
    rows = {}
    path = os.path.join(work, server + ".tsv")
    if not os.path.exists(path):
        return rows
    for line in open(path):
        name, js, cpu = line.rstrip("\n").split("\t")
        r = json.loads(js)
        r["cpu_per_1k"] = float(cpu) / max(r["requests"], 1) * 1000
        rows[name] = r
    return rows
def read(name, default="-"):
    p = os.path.join(work, name)
    return open(p).read().strip() if os.path.exists(p) else default
def pair(r, e, key, fmt):
    return (fmt % r[key]) + " / " + ((fmt % e[key]) if e else "-")
print("Over %s, the same client (raftkvctl bench) for both servers." % protocol)
print()
print("| workload | raftkv req/s | etcd req/s | ratio | p50 ms raftkv / etcd | p99 ms raftkv / etcd | p99.9 ms raftkv / etcd | CPU s per 1000 req raftkv / etcd | CPU ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for ours, theirs in (("raftkv", "etcd"), ("raftkv-cluster", "etcd-cluster")):
    mine, other = load(ours), (load(theirs) if have_etcd else {})
    for name, r in mine.items():
        e = other.get(name)
        print("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |" % (
            name, r["requests_per_sec"], "%.0f" % e["requests_per_sec"] if e else "-",
            "%.2f×" % (r["requests_per_sec"] / max(e["requests_per_sec"], 1e-9)) if e else "-",
            pair(r, e, "p50_ms", "%.2f"), pair(r, e, "p99_ms", "%.2f"), pair(r, e, "p999_ms", "%.2f"),
            pair(r, e, "cpu_per_1k", "%.3f"),
            "%.2f" % (r["cpu_per_1k"] / max(e["cpu_per_1k"], 1e-9)) if e else "-"))
print()
print("peak RSS after the runs: raftkv %s MiB, etcd %s MiB (clusters: the largest member, raftkv %s MiB, etcd %s MiB)" % (
    read("raftkv.rss"), read("etcd.rss"), read("raftkv-cluster.rss"), read("etcd-cluster.rss")))
if big:
    print("peak RSS after 1,000,000 keys of 256 B: raftkv %s MiB, etcd %s MiB; raftkv restart to first read: %s s" % (
        read("raftkv.bigrss"), read("etcd.bigrss"), read("raftkv.restart")))
EOF
