#!/usr/bin/env bash
# Auth side by side against a fresh etcd 3.4.23 and a fresh raftkv member: the permission
# matrix of tests/it/auth.rs (the one list of users, grants and calls: every KV, txn, watch,
# lease, maintenance and auth call by an anonymous caller, a garbage token, users with read,
# write and readwrite grants on a prefix, a key and a from-key range, and root), printed as a
# table with raftkv's answer beside etcd's where they differ; the test fails on a difference
# that is not one of the departures it lists (docs/compat.md). Needs etcd-server. About 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}
AUTH_MATRIX_PRINT=1 cargo test --quiet --test it auth::every_call -- --nocapture --test-threads 1 \
  | grep '^auth-matrix: ' | sed 's/^auth-matrix: //'
