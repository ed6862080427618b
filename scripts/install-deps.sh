#!/usr/bin/env bash
# Installs the system packages raftkv's build needs, only those missing (Debian/Ubuntu).
# rocksdb's bindgen needs libclang; its C++ build needs a C++ compiler; the tests need promtool.
set -euo pipefail
missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
# promtool (Debian's prometheus package) evaluates the etcd mixin's alerts in tests/it/mixin.rs.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v cargo >/dev/null 2>&1 || { echo "install-deps: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
