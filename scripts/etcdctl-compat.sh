#!/usr/bin/env bash
# etcdctl 3.4 side by side against a fresh etcd 3.4.23 and a fresh raftkv member: runs the
# `etcdctl_compat` integration test (tests/it/etcdctl_compat.rs, the one list of commands),
# printing every masked answer raftkv gave; differences fail it with both answers shown.
# With CHECK_PERF=1 it also runs `etcdctl check perf --load=s` (60 s) against raftkv.
# Needs etcd-server and etcd-client. About 10 s (70 s with CHECK_PERF=1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}
RAFTKV_COMPAT_VERBOSE=1 cargo test --quiet --test it etcdctl_compat -- --nocapture
if [ "${CHECK_PERF:-0}" = 1 ]; then
  cargo build --quiet --release --bin raftkv
  dir=$(mktemp -d)
  trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
  "$CARGO_TARGET_DIR/release/raftkv" --name perf --data-dir "$dir/data" --listen-client-urls http://127.0.0.1:48379 \
    --listen-peer-urls http://127.0.0.1:48380 --log-level warn &
  pid=$!
  sleep 1
  ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:48379 check perf --load=s
fi
