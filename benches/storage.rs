//! Storage micro-benchmarks on real RocksDB: raft log appends (the fsynced write path) and
//! mvcc put/range (the apply and read paths).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft::prelude::Entry;
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

criterion_group!(benches, raft_append);
criterion_main!(benches);
