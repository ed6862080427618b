#!/usr/bin/env bash
# Put over mutual TLS with auth enabled, raftkv and etcd 3.4 side by side (issue 17's
# performance line): one member each on https://127.0.0.1, client certificates required,
# auth enabled, the load by a user whose role may read and write every key (so every put is
# checked against a permission, not waved through as root's), driven by the same client,
# `raftkvctl bench --user`, over gRPC. Then the same load over plain TLS without auth and over
# plaintext, so the table shows what each layer costs. Prints one Markdown table.
#
# Usage: scripts/bench-secure.sh   (about 2 minutes at SCALE=1)
# Environment: SCALE (multiplies the request counts), ROUNDS (2), RAFTKV_BIN, RAFTKVCTL_BIN,
#   ETCD_BIN, PORT (12379; the peer port is PORT+1, the plaintext URL PORT+2).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
RAFTKV_BIN="${RAFTKV_BIN:-$TARGET/release/raftkv}"
CTL="${RAFTKVCTL_BIN:-$TARGET/release/raftkvctl}"
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || true)}"
PORT="${PORT:-12379}"
SCALE="${SCALE:-1}"
ROUNDS="${ROUNDS:-2}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-secure.XXXXXX")"
PID=""
# etcd exits 143 on SIGTERM; a stopped server is what is wanted either way.
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; fi; PID=""; }
trap 'stop; rm -rf "$WORK"' EXIT

# A CA, a server certificate for 127.0.0.1 and a client certificate, ECDSA P-256.
certs() {
  cd "$WORK"
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.pem 2>/dev/null
  for who in server client; do
    openssl ecparam -name prime256v1 -genkey -noout -out "$who.key" 2>/dev/null
    openssl req -new -key "$who.key" -subj "/CN=$who" -out "$who.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$who.ext"
    openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile "$who.ext" -out "$who.pem" 2>/dev/null
  done
  cd - >/dev/null
}

TLS_SERVER=(--cert-file "$WORK/server.pem" --key-file "$WORK/server.key"
  --trusted-ca-file "$WORK/ca.pem" --client-cert-auth)
TLS_CLIENT=(--cacert "$WORK/ca.pem" --cert "$WORK/client.pem" --key "$WORK/client.key")

# start SERVER: a fresh member serving https on PORT and plaintext on PORT+2.
start() {
  local server=$1 bin
  rm -rf "$WORK/data"
  bin=$RAFTKV_BIN; [ "$server" = etcd ] && bin=$ETCD_BIN
  "$bin" --name bench --data-dir "$WORK/data" "${TLS_SERVER[@]}" \
    --listen-client-urls "https://127.0.0.1:$PORT,http://127.0.0.1:$((PORT + 2))" \
    --advertise-client-urls "https://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
    --initial-cluster "bench=http://127.0.0.1:$((PORT + 1))" >>"$WORK/$server.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    "$CTL" --endpoints "127.0.0.1:$((PORT + 2))" get --consistency s x >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "$server never became ready; see $WORK/$server.log" >&2
  return 1
}

# The user `bench` may read and write every key; root exists, as auth enable requires.
enable_auth() {
  local ctl=("$CTL" --endpoints "127.0.0.1:$PORT" "${TLS_CLIENT[@]}")
  "${ctl[@]}" role add root >/dev/null
  "${ctl[@]}" user add root:rootpw >/dev/null
  "${ctl[@]}" user grant-role root root >/dev/null
  "${ctl[@]}" role add bench >/dev/null
  "${ctl[@]}" role grant-permission bench readwrite --from-key '' >/dev/null
  "${ctl[@]}" user add bench:benchpw >/dev/null
  "${ctl[@]}" user grant-role bench bench >/dev/null
  "${ctl[@]}" auth enable >/dev/null
}

# load NAME ENDPOINT [CLIENT FLAGS...]: one put run at (16,64); a table cell.
load() {
  local name=$1 endpoint=$2; shift 2
  local total; total=$(awk -v s="$SCALE" 'BEGIN{printf "%d", 30000 * s}')
  local c0 c1 json
  c0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  json=$("$CTL" --endpoints "$endpoint" "$@" bench --json --conns 16 --clients 64 --total "$total" \
    put --key-size 16 --val-size 256 --key-space-size 1000000)
  c1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  echo "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
errors = sum(e["count"] for e in r["errors"])
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / 100.0 * 1000 / int(sys.argv[3])
print("%s\t%.0f\t%.2f\t%.3f\t%d" % (sys.argv[4], r["requests_per_sec"], r["p99_ms"], cpu, errors))
' "$c0" "$c1" "$total" "$name" >>"$WORK/results.tsv"
  tail -n1 "$WORK/results.tsv" >&2
}

certs
[ -n "$ETCD_BIN" ] || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
: >"$WORK/results.tsv"
for round in $(seq "$ROUNDS"); do
  for server in raftkv etcd; do
    start "$server"
    load "$round $server plaintext" "127.0.0.1:$((PORT + 2))"
    load "$round $server TLS" "127.0.0.1:$PORT" "${TLS_CLIENT[@]}"
    enable_auth
    load "$round $server TLS + auth" "127.0.0.1:$PORT" "${TLS_CLIENT[@]}" --user bench:benchpw
    stop
  done
done

echo
echo "| round, server, path | puts/s | p99 ms | server CPU s per 1000 puts | errors |"
echo "|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$WORK/results.tsv"
