//! Storage micro-benchmarks on real RocksDB: raft log appends (the fsynced write path) and
//! mvcc put/range (the apply and read paths).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft::prelude::Entry;
use raftkv::mvcc::{RangeOptions, ReadView, Store};
use raftkv::raft::storage::RaftStorage;
use raftkv::storage::Db;
use rocksdb::WriteBatch;
use std::sync::Arc;

fn raft_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let mut log = RaftStorage::open(db.clone()).unwrap();
    let mut group = c.benchmark_group("raft_log_append");
    for (batch_len, sync) in [(1usize, false), (64, false), (64, true)] {
        group.throughput(Throughput::Elements(batch_len as u64));
        let name = format!("{batch_len}x300B{}", if sync { "_fsync" } else { "" });
        group.bench_function(name, |b| {
            b.iter(|| {
                let next = log.last_index() + 1;
                let entries: Vec<Entry> = (next..next + batch_len as u64)
                    .map(|index| Entry { index, term: 1, data: vec![7u8; 300].into(), ..Default::default() })
                    .collect();
                let mut batch = WriteBatch::default();
                log.append(&mut batch, &entries).unwrap();
                db.write(batch, sync).unwrap();
            })
        });
    }
    group.finish();
}

fn mvcc(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let store = Store::open(db).unwrap();
    let value = [b'v'; 256];
    const KEYS: u64 = 10_000;
    let mut group = c.benchmark_group("mvcc");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    // One put per batch: the apply path's cost per entry when batches are small.
    group.bench_function("put_256B_batch_of_1", |b| {
        b.iter(|| {
            i += 1;
            let mut batch = store.batch();
            batch.txn().put(format!("key/{}", i % KEYS).as_bytes(), &value, 0).unwrap();
            batch.commit().unwrap();
        })
    });
    // 64 puts per batch: what group commit gives the apply path under load.
    group.throughput(Throughput::Elements(64));
    group.bench_function("put_256B_batch_of_64", |b| {
        b.iter(|| {
            let mut batch = store.batch();
            for _ in 0..64 {
                i += 1;
                batch.txn().put(format!("key/{}", i % KEYS).as_bytes(), &value, 0).unwrap();
            }
            batch.commit().unwrap();
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("range_one_key", |b| {
        b.iter(|| {
            i += 1;
            let key = format!("key/{}", i % KEYS);
            store.range(key.as_bytes(), None, RangeOptions::default()).unwrap()
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("range_100_keys", |b| {
        b.iter(|| store.range(b"key/1", Some(b"key/2"), RangeOptions { limit: 100, ..Default::default() }).unwrap())
    });
    group.finish();
}

criterion_group!(benches, raft_append, mvcc);
criterion_main!(benches);
