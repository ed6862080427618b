#!/usr/bin/env bash
# The gateway's differential fuzzer: etcd 3.4 and raftkv on one random request sequence per
# seed, every answer compared (tests/difffuzz/). Needs etcd-server.
# Usage: scripts/difffuzz.sh [--seeds N] [--first-seed S] [--ops N]   (default: one seed, 300 ops)
#        scripts/difffuzz.sh --seed S --ops N                          (replay a failure)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}
exec cargo test --release --quiet --test difffuzz -- "$@"
