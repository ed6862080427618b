//! Embedded throughput: N threads putting 256-byte values through `Node::put`, fsync on.
//!
//! What it shows: with many concurrent writers one synced RocksDB write (one fsync) commits
//! many proposals, so throughput scales past the disk's fsync rate. Besides criterion's
//! numbers it prints puts/s and fsyncs per put for 1, 16 and 64 threads.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftkv::pb::PutRequest;
use raftkv::{Config, Node};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VALUE: [u8; 256] = [b'v'; 256];

fn run(node: &Node, threads: u64, total: u64, counter: &AtomicU64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..total.div_ceil(threads) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let key = format!("bench/{t}/{}", (n + i) % 100_000);
                    node.put(PutRequest { key: key.into_bytes(), value: VALUE.to_vec(), ..Default::default() })
                        .expect("put");
                }
            });
        }
    });
    start.elapsed()
}

fn embedded_put(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(Config::new("bench", dir.path())).unwrap();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("embedded_put_256B");
    group.sample_size(10);
    // `cargo test --benches` runs each bench once to keep it compiling; measure only for real.
    let measuring = std::env::args().any(|a| a == "--bench");
    for threads in [1u64, 16, 64] {
        group.throughput(Throughput::Elements(threads));
        group.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &threads| {
            b.iter_custom(|iters| run(&node, threads, iters * threads, &counter))
        });
        if !measuring {
            continue;
        }
        // A direct measurement for the closing note, independent of criterion's sampling.
        let puts = if threads == 1 { 300 } else { 3000 };
        let syncs_before = node.storage_syncs();
        let elapsed = run(&node, threads, puts, &counter);
        let syncs = node.storage_syncs() - syncs_before;
        let done = puts.div_ceil(threads) * threads;
        println!(
            "embedded put, {threads:>2} threads: {:>8.0} puts/s, {:.3} fsyncs per put",
            done as f64 / elapsed.as_secs_f64(),
            syncs as f64 / done as f64
        );
    }
    group.finish();
    node.stop().unwrap();
}

criterion_group!(benches, embedded_put);
criterion_main!(benches);
