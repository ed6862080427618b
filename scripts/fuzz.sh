#!/usr/bin/env bash
# libFuzzer (cargo-fuzz) on the client port's parsers: the JSON reader, the HTTP/1.1 request
# parser, and HTTP/2 + HPACK + gRPC message decoding, SECONDS each. The toolchain here is
# stable: RUSTC_BOOTSTRAP lets cargo-fuzz use the sanitizer flags it needs. Crashes land in fuzz/artifacts/; the corpus in fuzz/corpus/.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/raftkv-fuzz-target}
for target in json http1 h2; do
  mkdir -p "corpus/$target"
  cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048
done
