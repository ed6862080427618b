//! [`RaftStorage`]: raft-rs's `Storage` over the `raft` column family.
//!
//! Owned by the raft thread (inside its `RawNode`): raft-rs reads through the `Storage` trait and
//! the thread stages writes into the `WriteBatch` of the Ready it is persisting. The in-memory
//! summary (first/last index, hard state, conf state, snapshot metadata) is updated as writes
//! are staged; if the batch then fails to persist the node stops (a fatal error), so the summary
//! never outlives a write that did not happen.
//!
//! The newest entries are also kept in memory (an `EntryCache`, as TiKV keeps one): raft reads
//! back every entry it commits, and a leader every entry it sends, and those RocksDB reads were
//! a seventh of the raft thread's time under a put load. The cache is updated with the staged
//! writes, like the summary.
//!
//! Answers follow raft-rs's `MemStorage` exactly (a property test checks it), including its
//! choice that after `compact(i)` the term of entry `i - 1` is no longer known unless it is the
//! snapshot's.

use std::collections::VecDeque;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::storage::{self, Cf, Db};

const LOG_PREFIX: &[u8] = b"log/";
/// Bounds of the in-memory tail of the log: enough for the entries between two Readys and a
/// follower a little behind; older ones are read from RocksDB.
const CACHE_MAX_ENTRIES: usize = 4096;
const CACHE_MAX_BYTES: usize = 16 << 20;
const HARD_STATE: &[u8] = b"hard_state";
use crate::storage::raft_keys::CONF_STATE;
const SNAPSHOT_META: &[u8] = b"snapshot_meta";

fn log_key(index: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(LOG_PREFIX);
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

fn corrupt(what: &str, detail: impl ToString) -> storage::Error {
    storage::Error::Corrupt { what: what.to_string(), detail: detail.to_string() }
}

fn store_err(e: storage::Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

/// The raft log, hard state, conf state and snapshot metadata of one member, in RocksDB.
pub struct RaftStorage {
    db: Arc<Db>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    /// First index readable through `entries`; `snapshot_meta.index + 1` when the log is empty.
    first_index: u64,
    last_index: u64,
    /// Where snapshots for followers come from; without it (tests of the log alone) the
    /// recorded snapshot metadata is all there is.
    snapshots: Option<Arc<crate::snapshot::SnapshotFiles>>,
    cache: EntryCache,
}

/// The newest entries of the log, a contiguous run ending at its last index (or nothing).
struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl EntryCache {
    fn new(max_entries: usize, max_bytes: usize) -> EntryCache {
        EntryCache { entries: VecDeque::new(), bytes: 0, max_entries, max_bytes }
    }

    fn size(entry: &Entry) -> usize {
        entry.data.len() + entry.context.len() + 32
    }

    fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// The cached entry `index`, if there is one.
    fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first()?;
        self.entries.get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    /// Follows an append of `new` (non-empty, contiguous, already checked against the log).
    fn append(&mut self, new: &[Entry]) {
        let start = new[0].index;
        match self.first() {
            // The new entries replace a tail of the cache.
            Some(first) if start >= first && start <= first + self.entries.len() as u64 => {
                for gone in self.entries.drain((start - first) as usize..) {
                    self.bytes -= EntryCache::size(&gone);
                }
            }
            // They replace all of it.
            Some(_) => self.clear(),
            None => {}
        }
        for entry in new {
            self.bytes += EntryCache::size(entry);
            self.entries.push_back(entry.clone());
        }
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            self.pop_front();
        }
    }

    /// Forgets the entries before `index`.
    fn compact(&mut self, index: u64) {
        while self.first().is_some_and(|first| first < index) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(gone) = self.entries.pop_front() {
            self.bytes -= EntryCache::size(&gone);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl RaftStorage {
    /// Loads the summary of the log kept in `db`.
    pub fn open(db: Arc<Db>) -> storage::Result<RaftStorage> {
        let hard_state = read_pb::<HardState>(&db, HARD_STATE)?.unwrap_or_default();
        let conf_state = read_pb::<ConfState>(&db, CONF_STATE)?.unwrap_or_default();
        let snapshot_meta = read_pb::<SnapshotMetadata>(&db, SNAPSHOT_META)?.unwrap_or_default();
        let (first, last) = log_bounds(&db)?;
        let (first_index, last_index) = match (first, last) {
            (Some(first), Some(last)) => (first, last),
            _ => (snapshot_meta.index + 1, snapshot_meta.index),
        };
        let storage = RaftStorage {
            db,
            hard_state,
            conf_state,
            snapshot_meta,
            first_index,
            last_index,
            snapshots: None,
            cache: EntryCache::new(CACHE_MAX_ENTRIES, CACHE_MAX_BYTES),
        };
        Ok(storage)
    }

    /// Serves followers' snapshots from `files`.
    pub fn set_snapshot_files(&mut self, files: Arc<crate::snapshot::SnapshotFiles>) {
        self.snapshots = Some(files);
    }

    /// True when nothing was ever persisted: the member must be bootstrapped.
    pub fn is_empty(&self) -> bool {
        self.conf_state == ConfState::default() && self.last_index == 0
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_meta
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Stages appending `entries`, replacing any conflicting tail of the log.
    pub fn append(&mut self, batch: &mut WriteBatch, entries: &[Entry]) -> raft::Result<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if first.index < self.first_index {
            return Err(store_err(corrupt(
                "raft log append",
                format!("entry {} overwrites compacted log (first {})", first.index, self.first_index),
            )));
        }
        if first.index > self.last_index + 1 {
            return Err(store_err(corrupt(
                "raft log append",
                format!("gap: last {}, appending from {}", self.last_index, first.index),
            )));
        }
        let cf = self.db.cf(Cf::Raft);
        for entry in entries {
            let bytes = entry.write_to_bytes().map_err(raft::Error::CodecError)?;
            batch.put_cf(cf, log_key(entry.index), bytes);
        }
        if last.index < self.last_index {
            // The new entries win over an older leader's uncommitted tail.
            batch.delete_range_cf(cf, log_key(last.index + 1), log_key(self.last_index + 1));
        }
        self.last_index = last.index;
        self.cache.append(entries);
        Ok(())
    }

    pub fn set_hard_state(&mut self, batch: &mut WriteBatch, hs: &HardState) {
        self.put_pb(batch, HARD_STATE, hs);
        self.hard_state = hs.clone();
    }

    pub fn set_conf_state(&mut self, batch: &mut WriteBatch, cs: &ConfState) {
        self.put_pb(batch, CONF_STATE, cs);
        self.conf_state = cs.clone();
    }

    /// Stages recording a snapshot of the applied state at `meta.index` (the state itself is
    /// the `kv`/`lease`/`meta` families; only its metadata lives here).
    pub fn set_snapshot_metadata(&mut self, batch: &mut WriteBatch, meta: &SnapshotMetadata) {
        self.put_pb(batch, SNAPSHOT_META, meta);
        self.snapshot_meta = meta.clone();
    }

    /// Stages discarding the entries before `compact_index`. Indexes at or below the first index
    /// are a no-op; the last entry is always kept so the log's end stays known.
    pub fn compact(&mut self, batch: &mut WriteBatch, compact_index: u64) -> raft::Result<()> {
        if compact_index <= self.first_index {
            return Ok(());
        }
        if compact_index > self.last_index {
            return Err(store_err(corrupt(
                "raft log compact",
                format!("compact index {} beyond last index {}", compact_index, self.last_index),
            )));
        }
        let cf = self.db.cf(Cf::Raft);
        batch.delete_range_cf(cf, log_key(self.first_index), log_key(compact_index));
        self.first_index = compact_index;
        self.cache.compact(compact_index);
        Ok(())
    }

    /// Stages replacing the whole log by a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, batch: &mut WriteBatch, meta: &SnapshotMetadata) -> raft::Result<()> {
        if self.first_index > meta.index {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate));
        }
        let cf = self.db.cf(Cf::Raft);
        batch.delete_range_cf(cf, log_key(0), log_key(u64::MAX));
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.set_hard_state(batch, &hs);
        self.set_conf_state(batch, meta.get_conf_state());
        self.set_snapshot_metadata(batch, meta);
        self.first_index = meta.index + 1;
        self.last_index = meta.index;
        self.cache.clear();
        Ok(())
    }

    fn put_pb(&self, batch: &mut WriteBatch, key: &[u8], msg: &impl protobuf::Message) {
        // Encoding a well-formed in-memory message cannot fail.
        let bytes = msg.write_to_bytes().expect("encode raft state");
        batch.put_cf(self.db.cf(Cf::Raft), key, bytes);
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        let bytes = self
            .db
            .get(Cf::Raft, &log_key(index))
            .map_err(store_err)?
            .ok_or_else(|| store_err(corrupt("raft log", format!("entry {index} missing"))))?;
        Entry::parse_from_bytes(&bytes).map_err(raft::Error::CodecError)
    }
}

fn read_pb<M: protobuf::Message>(db: &Db, key: &[u8]) -> storage::Result<Option<M>> {
    match db.get(Cf::Raft, key)? {
        None => Ok(None),
        Some(bytes) => M::parse_from_bytes(&bytes).map(Some).map_err(|e| corrupt(&String::from_utf8_lossy(key), e)),
    }
}

/// First and last index present in the log, if any.
fn log_bounds(db: &Db) -> storage::Result<(Option<u64>, Option<u64>)> {
    let cf = db.cf(Cf::Raft);
    let first = db.raw().iterator_cf(cf, IteratorMode::From(LOG_PREFIX, Direction::Forward)).next();
    let end = log_key(u64::MAX);
    let last = db.raw().iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse)).next();
    Ok((log_index(first.transpose()?)?, log_index(last.transpose()?)?))
}

/// A key and value as RocksDB's iterators yield them.
type Item = (Box<[u8]>, Box<[u8]>);

/// The index of a `raft` family item if it is a log entry.
fn log_index(item: Option<Item>) -> storage::Result<Option<u64>> {
    match item {
        Some((key, _)) if key.starts_with(LOG_PREFIX) => storage::decode_u64(&key[LOG_PREFIX.len()..])
            .map(Some)
            .ok_or_else(|| corrupt("raft log key", format!("{key:?}"))),
        _ => Ok(None),
    }
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into();
        if self.cache.first().is_some_and(|first| low >= first) {
            let mut entries = Vec::with_capacity((high - low) as usize);
            let mut size = 0u64;
            for entry in (low..high).filter_map(|i| self.cache.get(i)) {
                size += u64::from(entry.compute_size());
                if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                    break;
                }
                entries.push(entry.clone());
            }
            return Ok(entries);
        }
        let cf = self.db.cf(Cf::Raft);
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(high).to_vec());
        let start = log_key(low);
        let iter = self.db.raw().iterator_cf_opt(cf, opts, IteratorMode::From(&start, Direction::Forward));
        let mut entries = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for (expected, item) in (low..high).zip(iter) {
            let (key, value) = item.map_err(|e| store_err(e.into()))?;
            if key.as_ref() != log_key(expected) {
                return Err(store_err(corrupt("raft log", format!("entry {expected} missing"))));
            }
            let entry = Entry::parse_from_bytes(&value).map_err(raft::Error::CodecError)?;
            size += u64::from(entry.compute_size());
            // Like raft-rs's limit_size: always at least one entry.
            if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            entries.push(entry);
        }
        if entries.is_empty() && low < high {
            return Err(store_err(corrupt("raft log", format!("entry {low} missing"))));
        }
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_meta.index {
            return Ok(self.snapshot_meta.term);
        }
        if idx < self.first_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        match self.cache.get(idx) {
            Some(entry) => Ok(entry.term),
            None => Ok(self.read_entry(idx)?.term),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if let Some(files) = &self.snapshots {
            return files.for_peer(self.first_index, request_index);
        }
        if self.snapshot_meta.index < request_index || self.snapshot_meta.index == 0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(self.snapshot_meta.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    //! Property test: the same random operations on `RaftStorage` and raft-rs's `MemStorage`
    //! give the same answers, also after reopening the database.
    use super::*;
    use proptest::prelude::*;
    use raft::storage::MemStorage;
    use raft::Storage;

    #[derive(Clone, Debug)]
    enum Op {
        /// Append `len` entries of `term`, starting `back` entries before the end of the log.
        Append {
            back: u64,
            len: u64,
            term: u64,
        },
        /// Compact at `at` percent of the way from the first to the last index.
        Compact {
            at: u64,
        },
        /// Install a snapshot `ahead` entries past the last index, at `term`.
        Snapshot {
            ahead: u64,
            term: u64,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..4, 1u64..6, 1u64..4).prop_map(|(back, len, term)| Op::Append { back, len, term }),
            2 => (0u64..=100).prop_map(|at| Op::Compact { at }),
            1 => (0u64..5, 1u64..4).prop_map(|(ahead, term)| Op::Snapshot { ahead, term }),
            1 => Just(Op::Reopen),
        ]
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8; (index % 7) as usize].into(), ..Default::default() }
    }

    fn assert_same(ours: &RaftStorage, mem: &MemStorage) {
        let first = mem.first_index().unwrap();
        let last = mem.last_index().unwrap();
        assert_eq!(ours.first_index, first, "first_index");
        assert_eq!(ours.last_index, last, "last_index");
        let (a, b) = (ours.initial_state().unwrap(), mem.initial_state().unwrap());
        assert_eq!(a.hard_state, b.hard_state);
        assert_eq!(a.conf_state, b.conf_state);
        for idx in first.saturating_sub(2)..=last + 2 {
            let (a, b) = (raft::Storage::term(ours, idx), mem.term(idx));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "term({idx})");
        }
        for low in first.saturating_sub(1)..=last {
            for high in low + 1..=last + 1 {
                for max in [None, Some(0), Some(20), Some(u64::MAX)] {
                    let ctx = || GetEntriesContext::empty(false);
                    let a = raft::Storage::entries(ours, low, high, max, ctx());
                    let b = mem.entries(low, high, max, ctx());
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "entries({low}, {high}, {max:?})");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_like_mem_storage(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut db = Arc::new(Db::open(dir.path()).unwrap());
            let mut ours = RaftStorage::open(db.clone()).unwrap();
            // A tiny cache, so reads are served both from it and from RocksDB.
            let tiny = |mut s: RaftStorage| {
                s.cache = EntryCache::new(4, 64);
                s
            };
            ours = tiny(ours);
            let mem = MemStorage::new();
            for op in ops {
                let mut batch = WriteBatch::default();
                match op {
                    Op::Append { back, len, term } => {
                        let last = mem.last_index().unwrap();
                        let first = mem.first_index().unwrap();
                        let start = (last + 1).saturating_sub(back).max(first);
                        // Terms never decrease along a raft log.
                        let base = if start > first { mem.term(start - 1).unwrap_or(0) } else { 0 };
                        let ents: Vec<Entry> = (start..start + len).map(|i| entry(i, base + term)).collect();
                        mem.wl().append(&ents).unwrap();
                        ours.append(&mut batch, &ents).unwrap();
                    }
                    Op::Compact { at } => {
                        let (first, last) = (mem.first_index().unwrap(), mem.last_index().unwrap());
                        if last < first {
                            continue;
                        }
                        let idx = first + (last - first) * at / 100;
                        mem.wl().compact(idx).unwrap();
                        ours.compact(&mut batch, idx).unwrap();
                    }
                    Op::Snapshot { ahead, term } => {
                        let last = mem.last_index().unwrap();
                        let mut meta = SnapshotMetadata {
                            index: last + ahead,
                            term: mem.term(last).unwrap_or(0) + term,
                            ..Default::default()
                        };
                        meta.set_conf_state(ConfState::from((vec![1, 2], vec![])));
                        let mut snap = Snapshot::default();
                        snap.set_metadata(meta.clone());
                        let a = mem.wl().apply_snapshot(snap);
                        let b = ours.apply_snapshot(&mut batch, &meta);
                        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                    }
                    Op::Reopen => {
                        drop(ours);
                        drop(db);
                        db = Arc::new(Db::open(dir.path()).unwrap());
                        ours = tiny(RaftStorage::open(db.clone()).unwrap());
                    }
                }
                db.write(batch, false).unwrap();
                assert_same(&ours, &mem);
            }
        }
    }

    #[test]
    fn bad_appends_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let mut ours = RaftStorage::open(db.clone()).unwrap();
        let mut batch = WriteBatch::default();
        assert!(ours.append(&mut batch, &[entry(3, 1)]).is_err(), "gap after an empty log");
        ours.append(&mut batch, &[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        ours.compact(&mut batch, 3).unwrap();
        assert!(ours.append(&mut batch, &[entry(2, 2)]).is_err(), "overwrites compacted entries");
        assert!(ours.compact(&mut batch, 9).is_err(), "compacts past the end");
    }
}
