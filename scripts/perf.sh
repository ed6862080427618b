#!/usr/bin/env bash
# `make perf`: profile a raftkv member under a put load and draw a flame graph.
#
# Builds the `profiling` profile (release + debug symbols) with frame pointers, starts one
# member on a fresh loopback data dir, records `perf record -g` of it while `raftkvctl bench`
# drives it, then writes (under $CARGO_TARGET_DIR/perf/):
#   flamegraph.svg   one tower per thread: raftkv-raft, raftkv-apply, raftkv-httpio-*, ...
#   report.txt       `perf report --stdio --sort comm,symbol`, the top entries
#   perf.data        for your own `perf report -i`
# Environment: PERF_LOAD (raftkvctl bench arguments; default a 64-connection put load),
# PERF_FREQ (sampling Hz, default 999), PORT (default 13379; peer port PORT+1).
set -euo pipefail
# These measurements are of the JSON gateway path, as recorded in docs/performance.md.
export RAFTKVCTL_GATEWAY=true
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
OUT="$TARGET/perf"
PORT="${PORT:-13379}"
LOAD="${PERF_LOAD:---conns 64 --clients 64 --total 200000 put --key-size 16 --val-size 256 --key-space-size 100000}"
FREQ="${PERF_FREQ:-999}"

if ! command -v perf >/dev/null; then
  echo "perf: installing linux-perf" >&2
  apt-get install -y linux-perf >/dev/null || { echo "perf: install linux-perf (Debian) or linux-tools-\$(uname -r) (Ubuntu)" >&2; exit 1; }
fi
if ! command -v inferno-flamegraph >/dev/null; then
  echo "perf: installing inferno (flame graphs)" >&2
  cargo install inferno >/dev/null
fi
paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
if [ "$(id -u)" != 0 ] && [ "$paranoid" -gt 1 ]; then
  echo "perf: kernel.perf_event_paranoid is $paranoid; run as root or: sudo sysctl kernel.perf_event_paranoid=1" >&2
  exit 1
fi

# Frame pointers let perf walk Rust stacks cheaply; they are a codegen flag, so the profiling
# build gets its own directory and never disturbs the release one.
RUSTFLAGS="-C force-frame-pointers=yes" cargo build --profile profiling --bins --examples
BIN="$TARGET/profiling"

mkdir -p "$OUT"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/raftkv-perf.XXXXXX")"
"$BIN/raftkv" --name perf --data-dir "$DATA/m" --listen-client-urls "http://127.0.0.1:$PORT" \
  --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --log-level warn >"$OUT/raftkv.log" 2>&1 &
PID=$!
cleanup() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 200); do "$BIN/raftkvctl" --endpoints "127.0.0.1:$PORT" endpoint health >/dev/null 2>&1 && break; sleep 0.05; done

perf record -F "$FREQ" -g -p "$PID" -o "$OUT/perf.data" 2>"$OUT/perf-record.log" &
PERF=$!
sleep 0.5
# shellcheck disable=SC2086
"$BIN/raftkvctl" --endpoints "127.0.0.1:$PORT" bench $LOAD | tee "$OUT/bench.txt" | grep -E "Requests/sec|99% in"
kill -INT "$PERF"
wait "$PERF" || true

perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/folded.txt"
inferno-flamegraph --title "raftkv: $LOAD" <"$OUT/folded.txt" >"$OUT/flamegraph.svg"
# (head closes the pipe early; that is not a failure)
perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort comm,symbol 2>/dev/null |
  grep -v -e '^$' -e '^#' | head -60 >"$OUT/report.txt" || true
echo
echo "CPU by thread (share of samples):"
awk '{n=$NF; sub(/;.*/, "", $0); sub(/-[0-9]+$/, "-*", $1); t[$1]+=n; s+=n} END {for (k in t) printf "  %-22s %5.1f%%\n", k, 100*t[k]/s}' "$OUT/folded.txt" |
  sort -k2 -rn | head -12 || true
echo
echo "flame graph: $OUT/flamegraph.svg"
echo "top entries: $OUT/report.txt"
