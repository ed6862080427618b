#!/usr/bin/env bash
# gRPC side by side: h2load (Debian nghttp2-client) sends etcd's unary Range and Put over
# CONNS connections × STREAMS concurrent streams to raftkv and to etcd 3.4 (when installed),
# one after the other, each a single member on a fresh loopback data dir with fsync on. The
# same loads then go to raftkv's JSON gateway (`raftkvctl bench`, CONNS*STREAMS/16 HTTP/1.1
# connections, one request in flight each) so the two paths of one server can be compared.
# Prints a Markdown table: requests/s, each server's CPU seconds per 1000 requests.
#
# Usage: scripts/h2load-compare.sh          (from `make bench-grpc`; about 2 minutes)
# Environment:
#   CONNS (16), STREAMS (64), RANGES (200000), PUTS (50000): the loads
#   RAFTKV_BIN, RAFTKVCTL_BIN (default $CARGO_TARGET_DIR/release/...), ETCD_BIN (etcd on PATH)
#   PORT      client port (default 13379; the peer port is PORT+1)
set -euo pipefail
# These measurements are of the JSON gateway path, as recorded in docs/performance.md.
export RAFTKVCTL_GATEWAY=true
HERE="$(cd "$(dirname "$0")" && pwd)"
SHARED="$(cd "$HERE/../.." && pwd)/shared/etcd"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
RAFTKV_BIN="${RAFTKV_BIN:-$TARGET/release/raftkv}"
CTL="${RAFTKVCTL_BIN:-$TARGET/release/raftkvctl}"
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || true)}"
PORT="${PORT:-13379}"
CONNS="${CONNS:-16}" STREAMS="${STREAMS:-64}" RANGES="${RANGES:-200000}" PUTS="${PUTS:-50000}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/h2load-compare.XXXXXX")"
trap 'stop_server; rm -rf "$WORK"' EXIT
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }
[ -x "$RAFTKV_BIN" ] && [ -x "$CTL" ] || { echo "build first: make build" >&2; exit 1; }

# The two request messages with gRPC's 5-byte prefix: Range of one 256-byte key (linearizable),
# Put of a 256-byte value to one key.
python3 - "$WORK" <<'EOF'
import sys
def framed(m): return b"\0" + len(m).to_bytes(4, "big") + m
key = b"bench-range-key"
value = b"v" * 256
open(sys.argv[1] + "/range.bin", "wb").write(framed(b"\x0a" + bytes([len(key)]) + key))
open(sys.argv[1] + "/put.bin", "wb").write(framed(b"\x0a" + bytes([len(key)]) + key + b"\x12\x80\x02" + value))
EOF

# shellcheck source=scripts/server-lib.sh
. "$HERE/server-lib.sh"

# The key the range loads read.
seed() { "$CTL" --endpoints "127.0.0.1:$PORT" put bench-range-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null; }


# row SERVER PATH NAME REQUESTS COMMAND...: runs the load, appends "server path name req/s cpu-per-1k".
row() {
  local server=$1 path=$2 name=$3 n=$4; shift 4
  local c0 out c1 rps
  c0=$(cpu_secs)
  out=$("$@" 2>&1)
  c1=$(cpu_secs)
  if [ "$path" = grpc ]; then
    echo "$out" | grep -q "$n succeeded, 0 failed, 0 errored" || { echo "$out" >&2; echo "h2load saw failures" >&2; exit 1; }
    rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  else
    rps=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert not r["errors"], r["errors"]; print("%.2f" % r["requests_per_sec"])')
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$server" "$path" "$name" "$rps" "$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN{printf "%.3f", (b-a)/n*1000}')" >>"$WORK/rows.tsv"
  echo "  $server $path $name: $rps req/s" >&2
}

h2() { # h2load for one gRPC method
  h2load -n "$2" -c "$CONNS" -m "$STREAMS" -d "$WORK/$1.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$PORT/etcdserverpb.KV/$3"
}

grpc_loads() {
  row "$1" grpc "range" "$RANGES" h2 range "$RANGES" Range
  row "$1" grpc "put" "$PUTS" h2 put "$PUTS" Put
}

echo "# h2load-compare $(date -u +%Y-%m-%dT%H:%M:%SZ) conns=$CONNS streams=$STREAMS nproc=$(nproc)" >&2
: >"$WORK/rows.tsv"
echo "raftkv:" >&2
start_raftkv
seed
grpc_loads raftkv
GW=$((CONNS * STREAMS / 16))
row raftkv gateway range "$RANGES" "$CTL" --endpoints "127.0.0.1:$PORT" bench --json --conns "$GW" --clients "$GW" \
  --total "$RANGES" range bench-range-key --consistency l
row raftkv gateway put "$PUTS" "$CTL" --endpoints "127.0.0.1:$PORT" bench --json --conns "$GW" --clients "$GW" \
  --total "$PUTS" put --key-size 16 --val-size 256 --key-space-size 1
stop_server

if [ -n "$ETCD_BIN" ] && [ -x "$ETCD_BIN" ]; then
  echo "etcd ($ETCD_BIN):" >&2
  start_etcd
  seed
  grpc_loads etcd
  stop_server
fi

python3 - "$WORK/rows.tsv" "$CONNS" "$STREAMS" "$((CONNS * STREAMS / 16))" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
get = {(s, p, n): (float(r), float(c)) for s, p, n, r, c in rows}
print("| load | raftkv gRPC req/s | etcd gRPC req/s | raftkv/etcd | raftkv gateway req/s | CPU s / 1000 req: raftkv gRPC, etcd gRPC, raftkv gateway |")
print("|---|---|---|---|---|---|")
for name in ("range", "put"):
    g = get.get(("raftkv", "grpc", name)); e = get.get(("etcd", "grpc", name)); w = get.get(("raftkv", "gateway", name))
    fmt = lambda v, i: "%.0f" % v[i] if v else "-"
    cpu = lambda v: "%.3f" % v[1] if v else "-"
    ratio = "%.2f×" % (g[0] / e[0]) if g and e else "-"
    print("| %s | %s | %s | %s | %s | %s, %s, %s |" % (name, fmt(g, 0), fmt(e, 0), ratio, fmt(w, 0), cpu(g), cpu(e), cpu(w)))
print()
print("gRPC: h2load, %s connections × %s streams; gateway: raftkvctl bench, %s HTTP/1.1 connections." % tuple(sys.argv[2:5]))
EOF
