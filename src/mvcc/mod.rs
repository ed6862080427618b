//! The multi-version key-value store (etcd's `mvcc`): every change is kept under its
//! [`Revision`] in the `kv` column family, and an in-memory [`TreeIndex`] maps keys to their
//! revisions, rebuilt from disk at start. The rows are etcd's bolt rows byte for byte, which
//! makes [`Store::hash_kv`] etcd's `HashKV` number.
//!
//! Threads: one writer of changes — the FIFO apply thread, through an [`ApplyBatch`] — and any
//! number of readers through [`Store::range`] (and history, hash). The writer updates the index as it goes but
//! publishes the new current revision only after the batch is written to RocksDB, and readers
//! read at or below the published revision, so they never see a change that is not on disk.
//! Compaction prunes the index and publishes the compact revision under the write lock while
//! readers take their RocksDB snapshot under the read lock, so no reader sees a half-compacted
//! store; the dead rows are deleted later by the `raftkv-kv-compact` thread ([`compaction`]),
//! the only other writer, which touches nothing a reader can ask for. mvcc knows nothing about
//! raft; the caller adds its applied index to the batch.

pub mod compaction;
pub mod index;
pub mod key_index;
mod metrics;
pub mod revision;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message as _;
use rocksdb::{IteratorMode, WriteBatch};

pub use compaction::{RemovalCursor, RemovalPace, RemovalPaused};
pub use index::TreeIndex;
pub use key_index::{KeyAt, KeyIndex};
pub use metrics::MvccOps;
pub use revision::Revision;

use crate::pb::KeyValue;
use crate::storage::{meta, Cf, Db};
use crate::{Error, Result};

/// How to read: `limit` keys at most (0 = all), at revision `rev` (≤ 0 = current), or only
/// count them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    pub limit: i64,
    pub rev: i64,
    pub count: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    /// Keys in ascending order, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the read revision, regardless of `limit`.
    pub count: i64,
    /// The current revision of the view (not the one read at), as etcd reports it.
    pub rev: i64,
}

/// What [`Store::hash_kv`] answers: the checksum, and the store's current and compact
/// revisions when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub current_rev: i64,
    pub compact_rev: i64,
}

/// A consistent read-only view of the store.
pub trait ReadView {
    /// Keys in `[key, end)`; `end == None` reads `key` alone, `Some(&[])` every key ≥ `key`.
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult>;
    /// The revision this view shows.
    fn rev(&self) -> i64;
    /// The revision of the last compaction, -1 if there was none (etcd's `FirstRev`).
    fn compact_rev(&self) -> i64;
}

struct State {
    index: TreeIndex,
    /// Newest revision whose batch is written: readers' upper bound.
    current_rev: i64,
    /// Oldest readable revision: the last compaction's, -1 before the first, as etcd's
    /// `compactMainRev` (so a first compaction to revision 0 succeeds, exactly once).
    compact_rev: i64,
}

pub struct Store {
    db: Arc<Db>,
    /// The key index and the published revisions; the apply thread is the only writer.
    state: RwLock<State>,
    /// Live keys with a lease as found by restore, for the lessor to take once at start.
    restored_leases: parking_lot::Mutex<Vec<(Vec<u8>, i64)>>,
    /// The compacted revisions still to delete from disk, and who waits for that.
    removal: compaction::Removal,
    /// etcd's operation counters, counted by the callers that run them.
    pub ops: MvccOps,
}

fn decode_kv(bytes: &[u8], rev: Revision) -> Result<KeyValue> {
    KeyValue::decode(bytes)
        .map_err(|e| Error::Decode { what: "stored key-value", detail: format!("revision {rev:?}: {e}") })
}

/// Live keys that carry a lease, with the lease id: what the lessor is rebuilt from.
pub type LeasedKeys = Vec<(Vec<u8>, i64)>;

/// What a store is opened from: the published state, the leased keys, the finished compact
/// revision, and the removal a crash (or the snapshot's sender) left unfinished.
struct Loaded {
    state: State,
    leased: LeasedKeys,
    finished_rev: i64,
    unfinished: Option<(i64, HashSet<Revision>)>,
}

/// A compact revision record of `meta`, if written.
fn compact_record(db: &Db, key: &[u8]) -> Result<Option<i64>> {
    Ok(match db.get(Cf::Meta, key)? {
        Some(_) => Some(db.get_meta_u64(key)? as i64),
        None => None,
    })
}

/// Reads the key index, revisions and leased keys from the `kv` column family.
fn load(db: &Db) -> Result<Loaded> {
    // A data dir of the version that removed rows in the apply batch has only the finished one.
    let finished_rev = compact_record(db, meta::COMPACT_REVISION)?.unwrap_or(NEVER_COMPACTED);
    let compact_rev = compact_record(db, meta::SCHEDULED_COMPACT_REVISION)?.unwrap_or(finished_rev).max(finished_rev);
    let mut index = TreeIndex::default();
    let mut leased: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut last = 0;
    // One pass over everything: keep it out of the block cache, which serves later reads.
    let mut opts = rocksdb::ReadOptions::default();
    opts.fill_cache(false);
    for item in db.raw().iterator_cf_opt(db.cf(Cf::Kv), opts, IteratorMode::Start) {
        let (key, value) = item.map_err(|e| Error::Storage(e.into()))?;
        let (rev, tombstone) = Revision::from_key(&key)
            .ok_or_else(|| Error::Decode { what: "revision key", detail: format!("{key:?}") })?;
        let kv = decode_kv(&value, rev)?;
        if !index.restore(&kv.key, rev, kv.create_revision, kv.version, tombstone) && !tombstone {
            log::warn!("mvcc: revision {rev:?} of key {:?} out of order; ignored", String::from_utf8_lossy(&kv.key));
        }
        if tombstone || kv.lease == 0 {
            leased.remove(&kv.key);
        } else {
            leased.insert(kv.key, kv.lease);
        }
        last = rev.main;
    }
    // A fresh store is at revision 1, as etcd's; a compaction may have removed the newest
    // tombstones, never the revision counter.
    let current_rev = last.max(compact_rev).max(1);
    // Rows a half-done removal left are in the index now: compact it again (etcd's restore
    // does too), which also gives the keep set to resume with. The rows it drops were dead
    // already, and deletion goes in revision order, so no key lost a newer row but kept an
    // older one.
    let unfinished = (compact_rev > finished_rev).then(|| (compact_rev, index.compact(compact_rev)));
    log::info!(
        "mvcc: restored {} keys, revision {current_rev}, compacted at {compact_rev} (removal finished at {finished_rev})",
        index.len()
    );
    let state = State { index, current_rev, compact_rev };
    Ok(Loaded { state, leased: leased.into_iter().collect(), finished_rev, unfinished })
}

/// The compact revision of a store that was never compacted.
pub const NEVER_COMPACTED: i64 = -1;

fn check_rev(requested: i64, current: i64, compacted: i64) -> Result<i64> {
    let rev = if requested <= 0 { current } else { requested };
    if rev > current {
        return Err(Error::FutureRevision);
    }
    if rev < compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

impl Store {
    /// Opens the store in `db`, rebuilding the key index from the `kv` column family. An
    /// unfinished removal is scheduled again, for the removal thread once it runs.
    pub fn open(db: Arc<Db>) -> Result<Store> {
        let loaded = load(&db)?;
        let store = Store {
            db,
            state: RwLock::new(loaded.state),
            restored_leases: parking_lot::Mutex::new(loaded.leased),
            removal: compaction::Removal::new(loaded.finished_rev),
            ops: MvccOps::default(),
        };
        if let Some((rev, keep)) = loaded.unfinished {
            log::info!("mvcc: resuming the removal of revisions compacted at {rev}");
            store.removal.schedule(rev, keep);
        }
        Ok(store)
    }

    /// Registers the store's series: the operation counters and the removal's histograms.
    pub fn register_metrics(&self, registry: &crate::metrics::Registry) {
        self.ops.register(registry);
        let removal = &self.removal;
        registry.register(removal.pause_ms.clone());
        registry.register(removal.total_ms.clone());
        registry.register(removal.removed_total.clone());
    }

    /// Rebuilds the key index from the database after a snapshot replaced its contents (apply
    /// thread, with removal paused: [`Store::pause_removal`]), and schedules the snapshot's
    /// unfinished removal if it has one. Returns the live keys that carry a lease, for the
    /// lessor.
    pub fn reload(&self) -> Result<LeasedKeys> {
        let loaded = load(&self.db)?;
        *self.state.write() = loaded.state;
        self.removal.set_finished(loaded.finished_rev);
        if let Some((rev, keep)) = loaded.unfinished {
            self.removal.schedule(rev, keep);
        }
        Ok(loaded.leased)
    }

    /// Keys in the index, deleted ones whose history is kept included.
    pub fn key_count(&self) -> usize {
        self.state.read().index.len()
    }

    pub fn current_revision(&self) -> i64 {
        self.state.read().current_rev
    }

    /// Changes with revisions in `[from, to]` on keys in range, in revision order (deletes as
    /// key + mod_revision): watch catch-up. Stops after about `max` changes, but never inside
    /// a revision, so one revision's events are always delivered together.
    ///
    /// [`Error::Compacted`] if `from` is below the compact revision. The check and the RocksDB
    /// snapshot read from are taken under one read lock, as [`Store::range`] does, so a
    /// compaction committed meanwhile cannot delete rows out of the middle of the answer: it
    /// is complete, or it is refused. Above the compact revision no row is ever removed; at it,
    /// only tombstones are dead (a put there is its key's newest revision at or below it, which
    /// compaction keeps), and they are skipped whether or not removal got to them yet.
    pub fn history(&self, key: &[u8], end: Option<&[u8]>, from: i64, to: i64, max: usize) -> Result<Vec<KeyValue>> {
        let (snapshot, compact_rev) = {
            let state = self.state.read();
            if from < state.compact_rev {
                return Err(Error::Compacted);
            }
            (self.db.raw().snapshot(), state.compact_rev)
        };
        let cf = self.db.cf(Cf::Kv);
        let start = Revision::new(from, 0).to_key(false);
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(to + 1, 0).to_key(false));
        let in_range = |k: &[u8]| match end {
            None => k == key,
            Some([]) => k >= key,
            Some(end) => k >= key && k < end,
        };
        let mut out = Vec::new();
        let mut last_main = 0;
        let iter = snapshot.iterator_cf_opt(cf, opts, IteratorMode::From(&start, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| Error::Storage(e.into()))?;
            let Some((rev, tombstone)) = Revision::from_key(&k) else { continue };
            if out.len() >= max && rev.main != last_main {
                break;
            }
            if tombstone && rev.main == compact_rev {
                continue;
            }
            last_main = rev.main;
            let kv = decode_kv(&v, rev)?;
            if !in_range(&kv.key) {
                continue;
            }
            out.push(if tombstone {
                KeyValue { key: kv.key, mod_revision: rev.main, ..Default::default() }
            } else {
                kv
            });
        }
        Ok(out)
    }

    /// A checksum of the history up to `rev` (0 = the current revision), as etcd's `HashByRev`
    /// computes it: CRC-32C of `key` (etcd's bucket name) and then of every row's key and
    /// value in revision order, where rows at or below the compact revision count only if a
    /// compaction at `rev` would keep them. So the sum depends on the history and the compact
    /// revision it reports, not on how much of the compacted history is still on disk; and
    /// since the rows are etcd's bolt rows byte for byte, it equals etcd's for the same history
    /// once etcd's removal is done.
    ///
    /// [`Error::Compacted`] for a `rev` at or below the compact revision, [`Error::FutureRevision`]
    /// above the current one; both revisions, the keep set and the RocksDB snapshot are taken
    /// under one read lock, as [`Store::range`] does.
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash> {
        let (rev, current_rev, compact_rev, keep, snapshot) = {
            let state = self.state.read();
            let (current, compacted) = (state.current_rev, state.compact_rev);
            if rev > 0 && rev <= compacted {
                return Err(Error::Compacted);
            }
            if rev > current {
                return Err(Error::FutureRevision);
            }
            let rev = if rev == 0 { current } else { rev };
            let mut keep = state.index.keep(rev);
            // etcd's quirk kept for equal sums: with nothing live at `rev` it counts every row
            // at or below the compact revision that is on disk, which once its removal is done
            // are the ones that compaction kept — and the index still holds exactly those.
            if keep.is_empty() {
                keep = state.index.keep(compacted);
            }
            (rev, current, compacted, keep, self.db.raw().snapshot())
        };
        let mut opts = rocksdb::ReadOptions::default();
        // A negative `rev` hashes no row, as in etcd.
        opts.set_iterate_upper_bound(Revision::new(rev.max(0) + 1, 0).to_key(false));
        // One pass over the history: keep it out of the block cache, which serves reads.
        opts.fill_cache(false);
        let mut crc = crate::storage::crc32c_update(!0, b"key");
        for item in snapshot.iterator_cf_opt(self.db.cf(Cf::Kv), opts, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| Error::Storage(e.into()))?;
            let Some((r, _)) = Revision::from_key(&key) else { continue };
            if r.main <= compact_rev && !keep.contains(&r) {
                continue;
            }
            crc = crate::storage::crc32c_update(crc, &key);
            crc = crate::storage::crc32c_update(crc, &value);
        }
        Ok(KvHash { hash: !crc, current_rev, compact_rev })
    }

    /// The live keys that carry a lease, as restore found them (taken once, by the lessor).
    pub fn take_restored_leases(&self) -> Vec<(Vec<u8>, i64)> {
        std::mem::take(&mut *self.restored_leases.lock())
    }

    pub fn compact_revision(&self) -> i64 {
        self.state.read().compact_rev
    }

    /// etcd's check of a compaction request: at or below the compact revision is
    /// [`Error::Compacted`], above the current one [`Error::FutureRevision`]. Both revisions are
    /// read under one lock, so the answer is about one published state.
    pub fn check_compaction(&self, rev: i64) -> Result<()> {
        let state = self.state.read();
        if rev <= state.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > state.current_rev {
            return Err(Error::FutureRevision);
        }
        Ok(())
    }

    /// Starts a batch of writes. Only the apply thread may hold one.
    pub fn batch(&self) -> ApplyBatch<'_> {
        let rev = self.current_revision();
        ApplyBatch {
            store: self,
            batch: WriteBatch::default(),
            rev,
            pending: HashMap::new(),
            changes: Vec::new(),
            compaction: None,
        }
    }
}

impl ReadView for Store {
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        let (revs, count, current, snapshot) = {
            let state = self.state.read();
            let current = state.current_rev;
            let rev = check_rev(opts.rev, current, state.compact_rev)?;
            let limit = if opts.count { 1 } else { opts.limit.max(0) as usize };
            let (found, count) = state.index.range(key, end, rev, limit);
            if opts.count || found.is_empty() {
                return Ok(RangeResult { kvs: Vec::new(), count: count as i64, rev: current });
            }
            let revs: Vec<Revision> = found.iter().map(|(_, k)| k.modified).collect();
            // Taken under the lock: a compaction cannot delete these rows before we read them.
            (revs, count, current, self.db.raw().snapshot())
        };
        let cf = self.db.cf(Cf::Kv);
        let keys: Vec<Vec<u8>> = revs.iter().map(|r| r.to_key(false)).collect();
        let values = snapshot.multi_get_cf(keys.iter().map(|k| (cf, k.as_slice())));
        let mut kvs = Vec::with_capacity(revs.len());
        for (rev, value) in revs.into_iter().zip(values) {
            let value = value.map_err(|e| Error::Storage(e.into()))?.ok_or_else(|| Error::Decode {
                what: "stored key-value",
                detail: format!("revision {rev:?} indexed but missing"),
            })?;
            kvs.push(decode_kv(&value, rev)?);
        }
        Ok(RangeResult { kvs, count: count as i64, rev: current })
    }

    fn rev(&self) -> i64 {
        self.current_revision()
    }

    fn compact_rev(&self) -> i64 {
        self.compact_revision()
    }
}

/// A read-only view pinned at one revision, so that every read of a read-only txn sees the same
/// state while the apply thread moves on (etcd's read txn). Headers carry the pinned revision.
pub struct PinnedView<'a> {
    store: &'a Store,
    rev: i64,
}

impl Store {
    pub fn pinned(&self) -> PinnedView<'_> {
        PinnedView { store: self, rev: self.current_revision() }
    }
}

impl ReadView for PinnedView<'_> {
    fn range(&self, key: &[u8], end: Option<&[u8]>, mut opts: RangeOptions) -> Result<RangeResult> {
        if opts.rev > self.rev {
            return Err(Error::FutureRevision);
        }
        if opts.rev <= 0 {
            opts.rev = self.rev;
        }
        let mut result = self.store.range(key, end, opts)?;
        result.rev = self.rev;
        Ok(result)
    }

    fn rev(&self) -> i64 {
        self.rev
    }

    fn compact_rev(&self) -> i64 {
        self.store.compact_revision()
    }
}

/// A group of write transactions applied together: one RocksDB `WriteBatch`, published at once.
pub struct ApplyBatch<'a> {
    store: &'a Store,
    batch: WriteBatch,
    /// Revision of the last transaction in this batch that changed something.
    rev: i64,
    /// What this batch wrote, by revision, for its own reads before the batch is on disk.
    pending: HashMap<Revision, KeyValue>,
    /// Every change of the batch's transactions, in order.
    changes: Vec<KeyValue>,
    /// The compaction recorded in this batch and its keep set, for removal once it is written.
    compaction: Option<(i64, HashSet<Revision>)>,
}

impl<'a> ApplyBatch<'a> {
    /// Starts the next write transaction; it takes one revision if it changes anything.
    pub fn txn(&mut self) -> WriteTxn<'_, 'a> {
        let begin = self.rev;
        WriteTxn { batch: self, begin, changes: Vec::new() }
    }

    /// The revision of the last change in this batch (the store's revision once committed).
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// The WriteBatch, for the caller to add its own records (the applied index).
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Discards history before `rev`: prunes the index and publishes `rev` as the compact
    /// revision at once (reads below it fail from now on), and records it in the batch as the
    /// scheduled compact revision. The dead rows are removed once the batch is written, by the
    /// removal thread ([`compaction`]). An invalid `rev` is refused with
    /// [`Store::check_compaction`]'s error, as etcd's store refuses it, so a caller's missed
    /// check cannot corrupt the index. Must be the only change in its batch: the checks and the
    /// keep set describe the published store, which earlier writes in the batch would have
    /// moved past without being on disk yet.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        // Deletes leave nothing in `pending`, so check the changes and the revision too.
        assert!(
            self.pending.is_empty() && self.changes.is_empty() && self.rev == self.store.current_revision(),
            "compaction shares a batch with writes"
        );
        self.store.check_compaction(rev)?;
        let available = {
            let mut state = self.store.state.write();
            let available = state.index.compact(rev);
            state.compact_rev = rev;
            available
        };
        self.store.db.put_meta_u64(&mut self.batch, meta::SCHEDULED_COMPACT_REVISION, rev as u64);
        log::info!("mvcc: compacted at revision {rev}: {} revisions kept at or below it", available.len());
        self.compaction = Some((rev, available));
        Ok(())
    }

    /// Writes the batch (not synced: the raft log is the durable record), then publishes its
    /// revision to readers and hands a compaction in it to the removal thread (only now: a
    /// row must not go before the record that it is dead).
    /// Returns the batch's changes in revision order (deletes as key + mod_revision), for
    /// watchers. A failed write leaves the index ahead of disk (its revisions unpublished, so
    /// no reader sees them) and is fatal: the caller stops, and a restart rebuilds the index
    /// from disk and re-applies the entries.
    pub fn commit(self) -> Result<Vec<KeyValue>> {
        let ApplyBatch { store, batch, rev, changes, compaction, .. } = self;
        store.db.write(batch, false)?;
        store.state.write().current_rev = rev;
        if let Some((rev, keep)) = compaction {
            store.removal.schedule(rev, keep);
        }
        Ok(changes)
    }
}

/// One write transaction inside an [`ApplyBatch`] (etcd's `TxnWrite`).
pub struct WriteTxn<'b, 'a> {
    batch: &'b mut ApplyBatch<'a>,
    begin: i64,
    changes: Vec<KeyValue>,
}

impl WriteTxn<'_, '_> {
    fn next_rev(&self) -> Revision {
        Revision::new(self.begin + 1, self.changes.len() as i64)
    }

    fn read_kv(&self, rev: Revision) -> Result<KeyValue> {
        if let Some(kv) = self.batch.pending.get(&rev) {
            return Ok(kv.clone());
        }
        let bytes = self.batch.store.db.get(Cf::Kv, &rev.to_key(false))?.ok_or_else(|| Error::Decode {
            what: "stored key-value",
            detail: format!("revision {rev:?} indexed but missing"),
        })?;
        decode_kv(&bytes, rev)
    }

    /// Writes `key` at this transaction's revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<KeyValue> {
        let rev = self.next_rev();
        let prev = self.batch.store.state.read().index.get(key, rev.main);
        let (create_revision, version) = match prev {
            Some(p) => (p.created.main, p.version + 1),
            None => (rev.main, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value: value.to_vec(),
            lease,
        };
        let cf = self.batch.store.db.cf(Cf::Kv);
        self.batch.batch.put_cf(cf, rev.to_key(false), kv.encode_to_vec());
        self.batch.store.state.write().index.put(key, rev);
        self.batch.pending.insert(rev, kv.clone());
        self.changes.push(kv.clone());
        Ok(kv)
    }

    /// Deletes every live key in range; returns what was deleted.
    pub fn delete_range(&mut self, key: &[u8], end: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let at = self.rev();
        let live: Vec<(Vec<u8>, Revision)> = {
            let state = self.batch.store.state.read();
            let (found, _) = state.index.range(key, end, at, 0);
            found.into_iter().map(|(k, state)| (k.to_vec(), state.modified)).collect()
        };
        let mut deleted = Vec::with_capacity(live.len());
        for (key, modified) in live {
            deleted.push(self.read_kv(modified)?);
            let rev = self.next_rev();
            let tombstone = KeyValue { key: key.clone(), ..Default::default() };
            let cf = self.batch.store.db.cf(Cf::Kv);
            self.batch.batch.put_cf(cf, rev.to_key(true), tombstone.encode_to_vec());
            self.batch.store.state.write().index.tombstone(&key, rev);
            // Watchers see a delete as the key with the revision that deleted it.
            self.changes.push(KeyValue { key, mod_revision: rev.main, ..Default::default() });
        }
        Ok(deleted)
    }

    /// Changes made so far, in order (deletes as key + mod_revision).
    pub fn changes(&self) -> &[KeyValue] {
        &self.changes
    }
}

impl ReadView for WriteTxn<'_, '_> {
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        let current = self.rev();
        let (revs, count) = {
            let state = self.batch.store.state.read();
            let rev = check_rev(opts.rev, current, state.compact_rev)?;
            let limit = if opts.count { 1 } else { opts.limit.max(0) as usize };
            let (found, count) = state.index.range(key, end, rev, limit);
            let revs: Vec<Revision> =
                if opts.count { Vec::new() } else { found.iter().map(|(_, k)| k.modified).collect() };
            (revs, count as i64)
        };
        let kvs = revs.into_iter().map(|rev| self.read_kv(rev)).collect::<Result<Vec<_>>>()?;
        Ok(RangeResult { kvs, count, rev: current })
    }

    /// etcd's rule: the revision before this txn, or its own once it changed something.
    fn rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin
        } else {
            self.begin + 1
        }
    }

    fn compact_rev(&self) -> i64 {
        self.batch.store.compact_revision()
    }
}

impl Drop for WriteTxn<'_, '_> {
    fn drop(&mut self) {
        if !self.changes.is_empty() {
            self.batch.rev = self.begin + 1;
            self.batch.changes.append(&mut self.changes);
        }
    }
}

#[cfg(test)]
mod tests;
