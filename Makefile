# raftkv developer entry points. See README.md.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/raftkv-target

.PHONY: deps build test lint soak bench clean-data

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --release --all-targets

# The whole suite: formatting, lints (warnings are errors), docs, unit + integration + doc
# tests, and the benches compiled and run once in test mode so they cannot rot.
test: deps lint
	cargo test --all-targets
	cargo test --doc
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --examples --quiet

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Long crash/fault runs that do not belong in `make test`.
soak: deps
	RAFTKV_CRASH_ROUNDS=50 cargo test --release --test crash -- --nocapture

bench: deps
	cargo bench --bench storage --bench embedded

clean-data:
	rm -rf default.raftkv
