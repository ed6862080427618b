//! The one RocksDB instance a member keeps everything in, and its key layout.
//!
//! Owns: opening the database (with its column families and tuning), the key encodings, and the
//! `meta` column family's small records (applied index, cluster identity, compaction state).
//! Every thread may read through a [`Db`]; writes come from exactly three threads: the raft
//! thread (column family `raft`, always with `sync` per Ready), the FIFO apply thread (`kv`,
//! `lease`, `meta`, `auth`) and `raftkv-kv-compact` (deletes of compacted `kv` rows, the finished compact
//! revision in `meta`), the last two never synced: the next synced raft write makes them durable,
//! because all column families share one WAL — which is why the WAL must never be disabled here.
//! That WAL's files get their full size when created (`wal.rs`), so a synced write does not grow
//! them.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `raft` | `log/` + index (u64 BE), `hard_state`, `conf_state`, `snapshot_meta` | raft protobuf |
//! | `kv` | revision: main (u64 BE) `_` sub (u64 BE), + `t` for a tombstone (etcd's bolt layout) | `mvccpb.KeyValue` |
//! | `lease` | lease id (u64 BE) | lease record |
//! | `meta` | `applied_index`, `applied_term`, `scheduled_compact_revision`, `compact_revision` (finished), `cluster_id`, `member_id` | u64 BE |
//! | `meta` | `alarm/` + member id (u64 BE) + alarm type (i32 BE) | empty |
//! | `auth` | `user/` + name, `role/` + name; `revision` | `authpb.User`, `authpb.Role`; u64 BE |

mod wal;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB refused an operation (I/O error, lock held by another process, corruption found
    /// by RocksDB itself).
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// A record could not be decoded: the data dir is damaged or was written by something else.
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// A file next to the database (snapshot files) could not be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A fault point armed by a test (see [`crate::failpoint`]).
    #[error("injected failure at {0}")]
    Injected(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `source`, the failure of a file operation on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }
}

/// Column families. Their names are part of the on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cf {
    Raft,
    Kv,
    Lease,
    Meta,
    Auth,
}

impl Cf {
    pub const ALL: [Cf; 5] = [Cf::Raft, Cf::Kv, Cf::Lease, Cf::Meta, Cf::Auth];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Raft => "raft",
            Cf::Kv => "kv",
            Cf::Lease => "lease",
            Cf::Meta => "meta",
            Cf::Auth => "auth",
        }
    }
}

/// Keys of the `meta` column family.
pub mod meta {
    /// Index of the last raft entry whose effects are in this database.
    pub const APPLIED_INDEX: &[u8] = b"applied_index";
    /// Term of that entry.
    pub const APPLIED_TERM: &[u8] = b"applied_term";
    /// Revision of the last compaction whose dead revisions are all removed from `kv` (etcd's
    /// `finishedCompactRev`). The name predates background removal, when every compaction
    /// finished in its apply batch: a data dir without the scheduled record below means this.
    pub const COMPACT_REVISION: &[u8] = b"compact_revision";
    /// Revision of the last applied compaction, written in its apply batch (etcd's
    /// `scheduledCompactRev`); above [`COMPACT_REVISION`] while its removal is unfinished.
    pub const SCHEDULED_COMPACT_REVISION: &[u8] = b"scheduled_compact_revision";
    pub const CLUSTER_ID: &[u8] = b"cluster_id";
    pub const MEMBER_ID: &[u8] = b"member_id";
}

/// Keys of the `raft` column family that other layers read too (the log itself is the raft
/// layer's business).
pub mod raft_keys {
    /// The configuration in force at the applied index: written by apply with the index it
    /// belongs to, read by the raft log's storage and copied into snapshots.
    pub const CONF_STATE: &[u8] = b"conf_state";
}

/// Size of RocksDB's shared block cache. Reads of recent revisions mostly hit the memtables;
/// the cache keeps the index/filter blocks and hot data blocks of older SST files.
const BLOCK_CACHE_BYTES: usize = 128 << 20;

/// Memtable size of the `kv` and `lease` families before a flush: about 100k puts of 256 B.
const KV_WRITE_BUFFER_BYTES: usize = 32 << 20;

/// Memtable size of the `raft` family. The log lives in it from append until the snapshot
/// compaction deletes it (15k entries with the defaults, a few MiB), so little ever reaches
/// an SST file.
const RAFT_WRITE_BUFFER_BYTES: usize = 16 << 20;

/// WAL kept before RocksDB flushes the memtables holding its oldest data. This bounds what a
/// restart after a crash replays (a clean stop flushes everything, see [`Db::flush`]).
const MAX_WAL_BYTES: u64 = 64 << 20;

/// Puts RocksDB's compaction threads (its LOW pool, named `rocksdb:low`) under `SCHED_IDLE`.
///
/// Nice 19, all RocksDB's C API offers (`LowerThreadPoolCPUPriority` at `kLow`), still takes
/// a weighted share of a core from the threads a put passes through; a `SCHED_IDLE` thread runs
/// only on a CPU nothing else wants, and any other thread that wakes preempts it at once (the
/// scheduler's rule for the idle policy, which no weight gives). RocksDB has that level too
/// (`kIdle`), but not through its C API, so it is set here, thread by thread; RocksDB leaves it
/// alone as long as its own pool priority is never lowered. The pool is per process and fixed
/// in size once a database is open; each open sets every such thread again, which is harmless.
fn idle_compaction_threads() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "rocksdb:low" {
            continue;
        }
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<libc::pid_t>().ok()) else { continue };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call; a thread that exited meanwhile
        // only makes the call fail (ESRCH).
        if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) } != 0 {
            log::debug!("storage: cannot idle compaction thread {tid}: {}", std::io::Error::last_os_error());
        }
    }
}

/// A handle to the member's database. Cheap to share behind an `Arc`.
pub struct Db {
    db: DB,
    /// The block cache shared by every family, kept to report its use.
    cache: Cache,
    /// Synced (fsynced) writes so far: the group-commit ratio is proposals per sync.
    synced_writes: AtomicU64,
    /// Gives new WAL files their full size before a synced write lands in them.
    wal: Option<wal::WalSizer>,
}

impl Db {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Db> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Two cores: one flush and one compaction at a time is the most this machine class wants.
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(MAX_WAL_BYTES);
        // WAL bytes go to a buffer and reach the file only at a synced write (`flush_wal`), so
        // a synced write holds RocksDB's write queue only to append, not through the fsync:
        // the apply thread's unsynced writes no longer wait behind the raft thread's fsync.
        opts.set_manual_wal_flush(true);
        // Compactions (RocksDB's LOW pool: background ones and a defragment's manual one) run
        // at the lowest CPU and I/O priority, so on two cores they take what the raft, apply
        // and client threads leave instead of competing with them head-on. Flushes (the HIGH
        // pool) keep their priority: a late flush stalls writes. The CPU half is
        // `idle_compaction_threads`, after the open has started the pool.
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_io_priority();
        opts.set_env(&env);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, &cache)));
        // The watch must exist before the open creates its WAL.
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let wal = wal::WalSizer::watch(path);
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        idle_compaction_threads();
        Ok(Db { db, cache, synced_writes: AtomicU64::new(0), wal })
    }

    pub fn cf(&self, cf: Cf) -> &ColumnFamily {
        // The families are created at open; a missing one is a programming error.
        self.db.cf_handle(cf.name()).expect("column family created at open")
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Reads a u64 record of the `meta` family; absent records read as 0.
    pub fn get_meta_u64(&self, key: &[u8]) -> Result<u64> {
        match self.get(Cf::Meta, key)? {
            None => Ok(0),
            Some(v) => decode_u64(&v).ok_or_else(|| Error::Corrupt {
                what: format!("meta/{}", String::from_utf8_lossy(key)),
                detail: format!("{} bytes, want 8", v.len()),
            }),
        }
    }

    pub fn put_meta_u64(&self, batch: &mut WriteBatch, key: &[u8], value: u64) {
        batch.put_cf(self.cf(Cf::Meta), key, value.to_be_bytes());
    }

    /// Writes a batch atomically; with `sync` it returns only once the WAL, up to and including
    /// this batch, is on disk. Without `sync` the batch may stay in RocksDB's WAL buffer until
    /// the next synced write: a process crash loses such a tail, exactly as an OS crash always
    /// could, and everything in it is re-derived from the durable raft log.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.db.write_opt(batch, &WriteOptions::default())?;
        if sync {
            if let Some(wal) = &self.wal {
                wal.extend_new();
            }
            // Writes out the WAL buffer and fsyncs it: this write and every earlier one (in
            // WAL order) are durable when it returns.
            self.db.flush_wal(true)?;
            self.synced_writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes every memtable to SST files, so the next open replays no WAL: a clean stop's
    /// last step, which keeps restarts fast.
    pub fn flush(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = Cf::ALL.iter().map(|cf| self.cf(*cf)).collect();
        self.db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// Rewrites every family's files without deleted and overwritten entries: a flush, then one
    /// manual compaction of each family's whole key range, waited for. It runs on RocksDB's
    /// compaction threads, at idle priority (`idle_compaction_threads`), so the load beside it
    /// keeps the CPU (etcd blocks every request for a whole defragment instead).
    ///
    /// One range, not slices of it: a slice's compaction takes every file that overlaps it,
    /// and its outputs reach into the next slice, which takes them again. 16 revision slices
    /// of a 1M-key store wrote 209 MiB to rewrite 32 MiB and took 4.7 s; one range writes 43 MiB
    /// in 0.8 s (docs/performance.md).
    pub fn compact_all(&self) -> Result<()> {
        self.flush()?;
        // Bottommost files too: by default RocksDB leaves them as they are, with whatever
        // deleted data sits in them, and then a defragment would not free what it should.
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::ForceOptimized);
        for cf in Cf::ALL {
            self.db.compact_range_cf_opt(self.cf(cf), None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }

    /// Number of synced writes since open.
    pub fn synced_writes(&self) -> u64 {
        self.synced_writes.load(Ordering::Relaxed)
    }

    /// Bytes on disk (SST files) plus memtables, over every column family.
    pub fn size_bytes(&self) -> u64 {
        self.sum_property(&Cf::ALL, "rocksdb.total-sst-files-size")
            + self.sum_property(&Cf::ALL, "rocksdb.size-all-mem-tables")
    }

    /// Memory RocksDB holds: (block cache in use, memtables of every family).
    pub fn memory_bytes(&self) -> (u64, u64) {
        (self.cache.get_usage() as u64, self.sum_property(&Cf::ALL, "rocksdb.size-all-mem-tables"))
    }

    /// RocksDB's estimate of the live data plus its memtables, over the applied state's
    /// families (every family but the raft log): what
    /// etcd's backend holds, whose size its quota limits. Memtables count as RocksDB allocates
    /// them, in blocks of an eighth of their buffer size (4 MiB for `kv`), so small databases
    /// are measured coarsely, as etcd's bolt file grows in steps too.
    pub fn state_bytes(&self) -> u64 {
        const STATE: [Cf; 4] = [Cf::Kv, Cf::Lease, Cf::Meta, Cf::Auth];
        self.sum_property(&STATE, "rocksdb.estimate-live-data-size")
            + self.sum_property(&STATE, "rocksdb.size-all-mem-tables")
    }

    fn sum_property(&self, cfs: &[Cf], name: &str) -> u64 {
        cfs.iter().filter_map(|cf| self.db.property_int_value_cf(self.cf(*cf), name).ok().flatten()).sum()
    }

    /// CRC-32C (Castagnoli, as etcd's hash) over every key and value of `cf`, in key order, as of
    /// one consistent snapshot.
    pub fn hash(&self, cf: Cf) -> Result<u32> {
        let snapshot = self.db.snapshot();
        let mut crc = !0u32;
        for item in snapshot.iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            crc = crc32c_update(crc, &key);
            crc = crc32c_update(crc, &value);
        }
        Ok(!crc)
    }

    /// The underlying RocksDB handle, for iterators and snapshots.
    pub fn raw(&self) -> &DB {
        &self.db
    }
}

fn cf_options(cf: Cf, cache: &Cache) -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    match cf {
        Cf::Kv | Cf::Lease => {
            // Point reads by revision dominate: a bloom filter saves most SST probes.
            table.set_bloom_filter(10.0, false);
            opts.set_write_buffer_size(KV_WRITE_BUFFER_BYTES);
            opts.set_compression_type(DBCompressionType::Lz4);
        }
        Cf::Raft => {
            // The log is written once, read back while applying, then deleted by compaction:
            // keep it in memtables as long as possible and do not spend CPU compressing it.
            opts.set_write_buffer_size(RAFT_WRITE_BUFFER_BYTES);
            opts.set_compression_type(DBCompressionType::None);
        }
        Cf::Meta | Cf::Auth => {}
    }
    opts.set_block_based_table_factory(&table);
    opts
}

pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Feeds `data` to a running CRC-32C (Castagnoli, reflected; start from `!0` and invert the
/// result), as Go's `crc32.Update` with the Castagnoli table: the checksum etcd's hashes use.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_threads_run_at_idle_priority_once_a_database_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let _db = Db::open(dir.path()).unwrap();
        let policies: Vec<i32> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim_end() == "rocksdb:low")
            .map(|t| {
                let tid: libc::pid_t = t.file_name().to_str().unwrap().parse().unwrap();
                // SAFETY: a plain query of a thread of this process.
                unsafe { libc::sched_getscheduler(tid) }
            })
            .collect();
        assert!(!policies.is_empty(), "RocksDB started no compaction thread");
        assert!(policies.iter().all(|&p| p == libc::SCHED_IDLE), "policies: {policies:?}");
    }

    /// The rewrite covers the whole `kv` range: every deleted row's space is freed, at both
    /// ends and between, and every live row is kept.
    #[test]
    fn a_defragment_frees_deleted_rows_and_keeps_the_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let key = |rev: u64| [&rev.to_be_bytes()[..], b"_", &0u64.to_be_bytes()].concat();
        let revs = 1..=20_000u64;
        let mut batch = WriteBatch::default();
        for rev in revs.clone() {
            batch.put_cf(db.cf(Cf::Kv), key(rev), [7u8; 100]);
        }
        db.write(batch, false).unwrap();
        db.flush().unwrap();
        let mut batch = WriteBatch::default();
        for rev in revs.clone().filter(|r| r % 100 != 0) {
            batch.delete_cf(db.cf(Cf::Kv), key(rev));
        }
        db.write(batch, false).unwrap();
        let sst_bytes = || db.sum_property(&[Cf::Kv], "rocksdb.total-sst-files-size");
        let before = sst_bytes();
        db.compact_all().unwrap();
        let live: Vec<Vec<u8>> = db
            .raw()
            .iterator_cf(db.cf(Cf::Kv), rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        assert_eq!(live, revs.filter(|r| r % 100 == 0).map(key).collect::<Vec<_>>());
        assert!(sst_bytes() * 20 < before, "{} of {before} bytes left", sst_bytes());
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xe306_9283);
    }
}
