# raftkv developer entry points. See README.md.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/raftkv-target

.PHONY: deps build deb run cluster test lint soak bounds compat fuzz bench bench-secure bench-grpc bench-compaction bench-defrag bench-big perf clean-data

deps:
	@scripts/install-deps.sh

# Release binaries. Examples ride along so the dependency features (and so the RocksDB build)
# are the same as for `make bench`: one release RocksDB build serves both.
build: deps
	cargo build --release --bins --examples

# The Debian package of the release binaries (scripts/build-deb.sh): the systemd unit, a
# `raftkv` user owning /var/lib/raftkv, /etc/default/raftkv. `make test` installs and purges
# one built from the debug binaries (tests/it/package.rs).
deb: build
	scripts/build-deb.sh $(CARGO_TARGET_DIR)/release $(CARGO_TARGET_DIR)/deb

# A single member on 127.0.0.1:2379 with its data in ./default.raftkv (Ctrl-C stops it).
run: build
	$(CARGO_TARGET_DIR)/release/raftkv --name default --data-dir default.raftkv \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

# A local 3-member cluster (clients on 127.0.0.1:2379/22379/32379, peers on :2380/22380/32380),
# data in ./cluster.raftkv, logs prefixed with the member name; Ctrl-C stops all three.
cluster: build
	scripts/cluster.sh

# The whole suite: formatting, lints (warnings are errors), docs, unit + integration + doc
# tests, and the benches compiled and run once in test mode so they cannot rot.
test: deps lint
	cargo test --all-targets
	cargo test --doc
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --examples --quiet

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Long crash/fault runs that do not belong in `make test`: the fault-injection soak
# (tests/it/soak/, docs/reliability.md) for SOAK_MINUTES (`make test` runs it for one minute;
# RAFTKV_SOAK_SEED=<seed> replays a schedule), then 50 SIGKILL crash rounds and a follower
# catching up by snapshot after 50,000 writes.
SOAK_MINUTES ?= 20
soak: deps
	RAFTKV_SOAK_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) cargo test --release --test it soak:: -- --nocapture
	RAFTKV_CRASH_ROUNDS=50 cargo test --release --test it crash:: -- --nocapture
	RAFTKV_CATCHUP_WRITES=50000 cargo test --release --test it cluster::a_follower_behind_a_compacted_log -- --nocapture

# Resource bounds, measured (tests/it/bounds/, docs/reliability.md "Resource bounds"): 10,000
# watchers on a key and on prefixes, 100,000 leases expiring together, 10,000 idle connections,
# watch clients that read nothing and 1,000 clients ranging over 100,000 keys, each against a
# fresh member process with a probe client beside it (about 8 minutes; RAFTKV_BOUNDS=ranges,...
# runs some only).
bounds: deps
	cargo test --release --test it bounds::measure -- --ignored --nocapture

# The gateway against real etcd 3.4 (needs etcd-server): the differential fuzzer over
# COMPAT_SEEDS seeds × COMPAT_OPS requests (about 2.5 minutes a seed), then the 140-step
# transcript. `make test` runs one short seed.
COMPAT_SEEDS ?= 20
COMPAT_OPS ?= 1500
compat: build
	scripts/difffuzz.sh --seeds $(COMPAT_SEEDS) --ops $(COMPAT_OPS) --keep-going
	scripts/compat-diff.sh

# libFuzzer on the JSON reader and the HTTP/1.1 parser, FUZZ_SECONDS each (cargo-fuzz; the
# first run builds RocksDB once more, instrumented). New inputs that raise coverage land in
# fuzz/corpus/, which is committed.
FUZZ_SECONDS ?= 300
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Criterion micro-benches, then raftkv and etcd side by side (scripts/bench-compare.sh).
bench: build
	cargo bench --bench storage --bench embedded --bench watch_lease
	scripts/bench-compare.sh

# Put at (16,64) over plaintext, mutual TLS, and mutual TLS with auth enabled, raftkv and etcd
# side by side (scripts/bench-secure.sh, about 2 minutes; needs openssl and etcd-server).
bench-secure: build
	scripts/bench-secure.sh

# gRPC side by side: h2load unary Range and Put against raftkv and etcd, and the same loads on
# raftkv's gateway (scripts/h2load-compare.sh, about a minute; needs nghttp2-client).
bench-grpc: build
	scripts/h2load-compare.sh

# Put latency while a 1M-revision compaction runs, raftkv and etcd (scripts/compaction-stall.sh,
# about 12 minutes with etcd: loading etcd's history takes most of it).
bench-compaction: build
	scripts/compaction-stall.sh

# Put latency while a defragment of a 1M-key store runs, raftkv and etcd (the same script).
bench-defrag: build
	ACTION=defrag KEYS=1000000 VERSIONS=1 scripts/compaction-stall.sh

# The side-by-side run plus 1,000,000 keys of 256 bytes: RSS after, raftkv restart time.
bench-big: build
	BIG=1 scripts/bench-compare.sh

# perf record of a member under a put load → $(CARGO_TARGET_DIR)/perf/flamegraph.svg and report.txt.
# The first run builds the profiling profile (its own RocksDB build: about 15 minutes).
perf: deps
	scripts/perf.sh

clean-data:
	rm -rf default.raftkv cluster.raftkv
