//! Snapshot files: the member's whole applied state at one raft index, written from one
//! consistent RocksDB snapshot, sent to a follower that is too far behind, and installed there
//! in one `WriteBatch` with the applied index it describes.
//!
//! Thread use: the leader's raft thread asks [`SnapshotFiles::for_peer`] for a snapshot; the
//! first ask starts `raftkv-snap-gen`, which writes the file, and raft-rs retries on the next
//! heartbeat (`SnapshotTemporarilyUnavailable` meanwhile). A `raftkv-snap-send` thread of the
//! transport streams the file. On the follower, the transport writes the stream to
//! `*.tmp`, checks it, renames it, and steps the raft message; the apply thread
//! [`install`]s it when raft hands the snapshot over. A file is removed when nothing uses it
//! any more (the last `Arc<SnapFile>` drops).
//!
//! File format: records `tag (u8) | key length (u32 BE) | key | value length (u32 BE) | value`,
//! tag 1 = `kv`, 2 = `lease`, 3 = `meta`, 4 = `raft` (its `conf_state` only), 5 = `auth`; then tag 0 and
//! the CRC-32 (IEEE) of everything before it. The applied index and term are the `meta` rows.
//! A client's download ([`SnapshotFiles::for_client`]) is the same file padded with zeros to
//! a multiple of 512 bytes, followed by the SHA-256 of all of that; [`read_download`] and
//! [`download_status`] read one back for a restore (`crate::server::restore`).
//!
//! [`bbolt`] reads etcd's own snapshot files (its bbolt backend), for a restore from an etcd
//! backup and for `snapshot status`.

pub mod bbolt;

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::prelude::{ConfState, Snapshot, SnapshotMetadata};
use raft::StorageError;
use rocksdb::{IteratorMode, WriteBatch};

use crate::storage::{self, meta, Cf, Db};
use crate::{Error, Result};

use crate::storage::raft_keys::CONF_STATE;

/// What `etcdctl snapshot status` prints about a snapshot file (etcd's `snapshot.Status`:
/// the JSON fields `hash`, `revision`, `totalKey`, `totalSize`), so that a file can be
/// checked against what its writer reported. [`bbolt::etcd_status`] computes it for etcd's
/// files; the field notes say what each is there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStatus {
    /// etcd's: CRC-32C (Castagnoli) over each bucket's name, then its keys and values, in
    /// file order; raftkv's download: its records' own checksum (CRC-32).
    pub hash: u32,
    /// The newest main revision of a key-value row.
    pub revision: i64,
    /// Rows in the file (etcd's: the keys of every bucket, not only key-value rows).
    pub total_keys: u64,
    /// Bytes of the database (etcd's: pages in use × page size, without the SHA-256 trailer).
    pub total_size: u64,
}

/// What a backup reader ([`read_download`], [`bbolt::read_etcd`]) hands each row to:
/// `(family, key, value)`, in raftkv's layout.
pub type RowSink<'a> = dyn FnMut(Cf, &[u8], &[u8]) -> Result<()> + 'a;

/// Largest record (a key or a value) a snapshot file may hold. Nothing raftkv stores comes
/// near it; it bounds what a corrupt length field can make a reader allocate.
const RECORD_BYTES_MAX: usize = 64 << 20;

const TAG_END: u8 = 0;
/// Families in a snapshot and their tags. `member_id` is this member's own and never travels.
const FAMILIES: [(u8, Cf); 4] = [(1, Cf::Kv), (2, Cf::Lease), (3, Cf::Meta), (5, Cf::Auth)];
const TAG_RAFT: u8 = 4;
const LOCAL_META: [&[u8]; 1] = [meta::MEMBER_ID];

/// A snapshot file on disk, removed when the last user lets go of it.
pub struct SnapFile {
    pub path: PathBuf,
    pub meta: SnapshotMetadata,
}

impl Drop for SnapFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The member's snapshot directory and the newest snapshot it made for followers.
pub struct SnapshotFiles {
    dir: PathBuf,
    db: Arc<Db>,
    latest: Mutex<Option<Arc<SnapFile>>>,
    generating: AtomicBool,
}

impl SnapshotFiles {
    /// Opens `dir`, dropping leftovers of interrupted transfers and files made for followers
    /// (made again on demand). Received snapshots are kept until [`SnapshotFiles::prune`]:
    /// one that raft accepted but apply did not install yet is needed after a crash.
    pub fn open(dir: PathBuf, db: Arc<Db>) -> Result<Arc<SnapshotFiles>> {
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        for entry in fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?.flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "tmp" || ext == "gen" || ext == "sent") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(SnapshotFiles { dir, db, latest: Mutex::new(None), generating: AtomicBool::new(false) }))
    }

    /// Removes received snapshots once start-up recovery has installed what it needed: the
    /// rest are ones raft turned down.
    pub fn prune(&self) {
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|ext| ext == "snap") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// A snapshot for a follower (raft-rs's `Storage::snapshot`): the newest file if the log
    /// still holds the entries after it (`first_index`), else a new one is started and raft
    /// asks again later.
    pub fn for_peer(self: &Arc<Self>, first_index: u64, request_index: u64) -> raft::Result<Snapshot> {
        if let Some(file) = &*self.latest.lock() {
            if file.meta.index + 1 >= first_index && file.meta.index >= request_index {
                let mut snapshot = Snapshot::default();
                snapshot.set_metadata(file.meta.clone());
                return Ok(snapshot);
            }
        }
        if !self.generating.swap(true, Ordering::AcqRel) {
            let files = self.clone();
            let spawned = crate::thread::spawn_named("raftkv-snap-gen", move || {
                match files.generate() {
                    Ok(file) => {
                        log::info!(
                            "snapshot: wrote {} (index {}, term {})",
                            file.path.display(),
                            file.meta.index,
                            file.meta.term
                        );
                        *files.latest.lock() = Some(Arc::new(file));
                    }
                    Err(e) => log::error!("snapshot: cannot write a snapshot for a follower: {e}"),
                }
                files.generating.store(false, Ordering::Release);
            });
            if let Err(e) = spawned {
                log::error!("snapshot: cannot start raftkv-snap-gen: {e}");
                self.generating.store(false, Ordering::Release);
            }
        }
        Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
    }

    /// The file made for `meta`, for a sender to stream.
    pub fn made(&self, meta: &SnapshotMetadata) -> Option<Arc<SnapFile>> {
        self.latest.lock().as_ref().filter(|f| f.meta.index == meta.index && f.meta.term == meta.term).cloned()
    }

    /// Where a snapshot being received is written until it is complete.
    pub fn receiving_path(&self, meta: &SnapshotMetadata) -> PathBuf {
        self.dir.join(format!("{:016x}-{:016x}.tmp", meta.term, meta.index))
    }

    /// The path of the complete received snapshot for `meta`.
    pub fn received(&self, meta: &SnapshotMetadata) -> PathBuf {
        self.dir.join(format!("{:016x}-{:016x}.snap", meta.term, meta.index))
    }

    /// Installs the received snapshot for `meta` (see [`install`]) and removes its file.
    pub fn install_received(&self, meta: &SnapshotMetadata) -> Result<()> {
        let path = self.received(meta);
        install(&self.db, &path, meta)?;
        let _ = fs::remove_file(path);
        Ok(())
    }

    /// Checks a fully received file and gives it its final name.
    pub fn finish_receiving(&self, meta: &SnapshotMetadata) -> Result<PathBuf> {
        let tmp = self.receiving_path(meta);
        let found = read_meta(&tmp)?;
        if found.index != meta.index || found.term != meta.term {
            return Err(corrupt(
                &tmp,
                format!("holds index {} term {}, raft says {} {}", found.index, found.term, meta.index, meta.term),
            ));
        }
        let path = self.received(meta);
        fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        Ok(path)
    }

    /// Writes the applied state, as of one RocksDB snapshot, into a new file.
    fn generate(&self) -> Result<SnapFile> {
        let snap = self.db.raw().snapshot();
        let read_u64 = |key: &[u8]| -> Result<u64> {
            let value = snap.get_cf(self.db.cf(Cf::Meta), key).map_err(storage::Error::from)?;
            Ok(value.and_then(|v| storage::decode_u64(&v)).unwrap_or(0))
        };
        let (index, term) = (read_u64(meta::APPLIED_INDEX)?, read_u64(meta::APPLIED_TERM)?);
        let tmp = self.dir.join(format!("{term:016x}-{index:016x}.gen"));
        write_state(&self.db, &snap, &tmp)?;
        drop(snap);
        let path = self.dir.join(format!("{term:016x}-{index:016x}.sent"));
        fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        let meta = read_meta(&path)?;
        Ok(SnapFile { path, meta })
    }

    /// A snapshot for a client (etcd's `Maintenance.Snapshot`): the same records as a
    /// follower's, then zeros up to a multiple of 512 bytes, so that with the SHA-256 the
    /// sender appends the download has the size etcdctl expects of a bbolt file with its
    /// checksum (size mod 512 = 32). The file is removed when dropped.
    pub fn for_client(&self) -> Result<SnapFile> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("client-{}-{n}.tmp", std::process::id()));
        let snap = self.db.raw().snapshot();
        let file = SnapFile { path, meta: SnapshotMetadata::default() };
        write_state(&self.db, &snap, &file.path)?;
        let len = fs::metadata(&file.path).map_err(|e| io_error(&file.path, e))?.len();
        let padding = (512 - len % 512) % 512;
        let mut out = fs::OpenOptions::new().append(true).open(&file.path).map_err(|e| io_error(&file.path, e))?;
        out.write_all(&vec![0u8; padding as usize]).map_err(|e| io_error(&file.path, e))?;
        Ok(file)
    }
}

/// Writes every record of the applied state as `snap` sees it into a new file at `path`.
fn write_state(db: &Db, snap: &rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>, path: &Path) -> Result<()> {
    let mut out = RecordWriter::create(path)?;
    for (tag, cf) in FAMILIES {
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        for item in snap.iterator_cf_opt(db.cf(cf), opts, IteratorMode::Start) {
            let (key, value) = item.map_err(storage::Error::from)?;
            if cf == Cf::Meta && LOCAL_META.contains(&&*key) {
                continue;
            }
            out.record(tag, &key, &value)?;
        }
    }
    let conf_state = snap.get_cf(db.cf(Cf::Raft), CONF_STATE).map_err(storage::Error::from)?.unwrap_or_default();
    out.record(TAG_RAFT, CONF_STATE, &conf_state)?;
    out.finish()
}

struct RecordWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    path: PathBuf,
}

impl RecordWriter {
    fn create(path: &Path) -> Result<RecordWriter> {
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        Ok(RecordWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(|e| io_error(&self.path, e))
    }

    fn record(&mut self, tag: u8, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(&[tag])?;
        self.write(&(key.len() as u32).to_be_bytes())?;
        self.write(key)?;
        self.write(&(value.len() as u32).to_be_bytes())?;
        self.write(value)
    }

    fn finish(mut self) -> Result<()> {
        let crc = self.crc.clone().finalize();
        self.out
            .write_all(&[TAG_END])
            .and_then(|_| self.out.write_all(&crc.to_be_bytes()))
            .map_err(|e| io_error(&self.path, e))?;
        let file = self.out.into_inner().map_err(|e| io_error(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.path, e))
    }
}

/// Which bytes of a file hold records.
#[derive(Clone, Copy)]
enum Extent {
    /// All of it: a follower's snapshot.
    Whole,
    /// The first `len` bytes, records then zero padding: a client's download without its
    /// SHA-256 trailer.
    Download { len: u64 },
}

/// Reads every record of a snapshot file, checking its structure and CRC before handing out
/// anything: `f` only runs once the whole file is known to be good. Returns the CRC.
fn read_records(path: &Path, extent: Extent, mut f: impl FnMut(u8, Vec<u8>, Vec<u8>) -> Result<()>) -> Result<u32> {
    let mut checksum = 0;
    for pass in 0..2 {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let limit = match extent {
            Extent::Whole => u64::MAX,
            Extent::Download { len } => len,
        };
        let mut r = BufReader::with_capacity(1 << 20, file.take(limit));
        let mut crc = crc32fast::Hasher::new();
        loop {
            let mut tag = [0u8; 1];
            r.read_exact(&mut tag).map_err(|e| corrupt(path, format!("truncated: {e}")))?;
            if tag[0] == TAG_END {
                let mut want = [0u8; 4];
                r.read_exact(&mut want).map_err(|e| corrupt(path, format!("truncated checksum: {e}")))?;
                checksum = crc.clone().finalize();
                if checksum != u32::from_be_bytes(want) {
                    return Err(corrupt(path, "checksum mismatch".into()));
                }
                let mut rest = Vec::new();
                r.read_to_end(&mut rest).map_err(|e| io_error(path, e))?;
                let padding = matches!(extent, Extent::Download { .. }) && rest.len() < 512;
                if !(rest.is_empty() || padding && rest.iter().all(|b| *b == 0)) {
                    return Err(corrupt(path, "data after the checksum".into()));
                }
                break;
            }
            if tag[0] != TAG_RAFT && !FAMILIES.iter().any(|(t, _)| *t == tag[0]) {
                return Err(corrupt(path, format!("unknown record tag {}", tag[0])));
            }
            crc.update(&tag);
            let key = read_field(&mut r, &mut crc, path)?;
            let value = read_field(&mut r, &mut crc, path)?;
            if pass == 1 {
                f(tag[0], key, value)?;
            }
        }
    }
    Ok(checksum)
}

fn family(tag: u8) -> Cf {
    match tag {
        TAG_RAFT => Cf::Raft,
        tag => FAMILIES.iter().find(|(t, _)| *t == tag).map(|(_, cf)| *cf).expect("tags checked while reading"),
    }
}

/// Hands every row of a client's download to `row` (its first `len` bytes, the SHA-256
/// trailer already checked and cut off by the caller), once the whole file is known good.
pub fn read_download(path: &Path, len: u64, row: &mut RowSink<'_>) -> Result<()> {
    read_records(path, Extent::Download { len }, |tag, key, value| row(family(tag), &key, &value)).map(drop)
}

/// [`FileStatus`] of a client's download (`len` bytes before its trailer).
pub fn download_status(path: &Path, len: u64) -> Result<FileStatus> {
    let mut status = FileStatus { total_size: len, ..Default::default() };
    status.hash = read_records(path, Extent::Download { len }, |tag, key, _| {
        status.total_keys += 1;
        if family(tag) == Cf::Kv {
            if let Some((rev, _)) = crate::mvcc::Revision::from_key(&key) {
                status.revision = status.revision.max(rev.main);
            }
        }
        Ok(())
    })?;
    Ok(status)
}

fn read_field(r: &mut impl Read, crc: &mut crc32fast::Hasher, path: &Path) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| corrupt(path, format!("truncated: {e}")))?;
    crc.update(&len);
    let len = u32::from_be_bytes(len) as usize;
    if len > RECORD_BYTES_MAX {
        return Err(corrupt(path, format!("record of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes).map_err(|e| corrupt(path, format!("truncated: {e}")))?;
    crc.update(&bytes);
    Ok(bytes)
}

/// The raft metadata a (checked) snapshot file describes.
fn read_meta(path: &Path) -> Result<SnapshotMetadata> {
    let mut meta = SnapshotMetadata::default();
    read_records(path, Extent::Whole, |tag, key, value| {
        match (tag, &key[..]) {
            (3, k) if k == meta::APPLIED_INDEX => meta.index = storage::decode_u64(&value).unwrap_or(0),
            (3, k) if k == meta::APPLIED_TERM => meta.term = storage::decode_u64(&value).unwrap_or(0),
            (TAG_RAFT, _) => {
                let cs = ConfState::parse_from_bytes(&value).map_err(|e| corrupt(path, format!("conf state: {e}")))?;
                meta.set_conf_state(cs);
            }
            _ => {}
        }
        Ok(())
    })?;
    if meta.index == 0 {
        return Err(corrupt(path, "no applied index".into()));
    }
    Ok(meta)
}

/// Replaces the member's applied state by the snapshot in `path`, in one synced `WriteBatch`:
/// after it, the database holds exactly the snapshot's state and applied index, or (after a
/// crash) exactly what it held before.
pub fn install(db: &Db, path: &Path, meta: &SnapshotMetadata) -> Result<()> {
    let found = read_meta(path)?;
    if found.index != meta.index || found.term != meta.term {
        return Err(corrupt(
            path,
            format!("holds index {} term {}, want {} {}", found.index, found.term, meta.index, meta.term),
        ));
    }
    let mut batch = WriteBatch::default();
    // kv keys are revisions and lease keys ids, both shorter than this bound; auth keys
    // start with a letter.
    for cf in [Cf::Kv, Cf::Lease, Cf::Auth] {
        batch.delete_range_cf(db.cf(cf), &[][..], &[0xffu8; 32][..]);
    }
    for item in db.raw().iterator_cf(db.cf(Cf::Meta), IteratorMode::Start) {
        let (key, _) = item.map_err(storage::Error::from)?;
        if !LOCAL_META.contains(&&*key) {
            batch.delete_cf(db.cf(Cf::Meta), key);
        }
    }
    read_records(path, Extent::Whole, |tag, key, value| {
        batch.put_cf(db.cf(family(tag)), key, value);
        Ok(())
    })?;
    crate::failpoint::check("snapshot_before_install")?;
    db.write(batch, true)?;
    crate::failpoint::check("snapshot_after_install")?;
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    storage::Error::io(path, source).into()
}

fn corrupt(path: &Path, detail: String) -> Error {
    Error::Storage(storage::Error::Corrupt { what: format!("snapshot file {}", path.display()), detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A good file: the applied index and term, one kv row, one auth row, the conf state.
    fn good_file() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut w = RecordWriter::create(&path).unwrap();
        w.record(1, b"rev", b"kv row").unwrap();
        w.record(3, meta::APPLIED_INDEX, &7u64.to_be_bytes()).unwrap();
        w.record(3, meta::APPLIED_TERM, &2u64.to_be_bytes()).unwrap();
        w.record(5, b"user/amy", b"auth row").unwrap();
        let cs = ConfState { voters: vec![1, 2, 3], ..Default::default() };
        w.record(TAG_RAFT, CONF_STATE, &cs.write_to_bytes().unwrap()).unwrap();
        w.finish().unwrap();
        fs::read(&path).unwrap()
    }

    fn read(bytes: &[u8]) -> Result<SnapshotMetadata> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(&path, bytes).unwrap();
        read_meta(&path)
    }

    /// A file whose records are `records` and whose checksum is right for them: a structural
    /// error, not a flipped bit.
    fn with_checksum(records: &[u8]) -> Vec<u8> {
        let mut out = records.to_vec();
        out.push(TAG_END);
        out.extend_from_slice(&crc32fast::hash(records).to_be_bytes());
        out
    }

    #[test]
    fn a_good_file_gives_its_metadata() {
        let meta = read(&good_file()).unwrap();
        assert_eq!((meta.index, meta.term, meta.get_conf_state().voters.clone()), (7, 2, vec![1, 2, 3]));
    }

    #[test]
    fn every_damage_is_refused_before_anything_is_used() {
        let good = good_file();
        let body = &good[..good.len() - 5];
        let mut flipped = good.clone();
        flipped[13] ^= 0x40; // inside the first value
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut unknown_tag = body.to_vec();
        unknown_tag.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut huge = body.to_vec();
        huge.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff]);
        let no_index = with_checksum(&[1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']);
        let cases: [(&str, Vec<u8>, &str); 9] = [
            ("empty", Vec::new(), "truncated"),
            ("cut in a record", good[..20].to_vec(), "truncated"),
            ("cut in the checksum", good[..good.len() - 2].to_vec(), "truncated checksum"),
            ("a flipped bit", flipped, "checksum mismatch"),
            ("a wrong checksum", bad_crc, "checksum mismatch"),
            ("bytes after the checksum", [&good[..], b"x"].concat(), "data after the checksum"),
            ("an unknown tag", unknown_tag, "unknown record tag 9"),
            ("a length past the bound", huge, "record of 4294967295 bytes"),
            ("no applied index", no_index, "no applied index"),
        ];
        for (name, bytes, want) in cases {
            match read(&bytes) {
                Err(Error::Storage(storage::Error::Corrupt { detail, .. })) => {
                    assert!(detail.starts_with(want), "{name}: {detail:?}, want {want:?}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn install_refuses_a_file_for_another_index_or_term_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let path = dir.path().join("s");
        fs::write(&path, good_file()).unwrap();
        for (index, term) in [(8, 2), (7, 3)] {
            let want = SnapshotMetadata { index, term, ..Default::default() };
            match install(&db, &path, &want) {
                Err(Error::Storage(storage::Error::Corrupt { detail, .. })) => {
                    assert_eq!(detail, format!("holds index 7 term 2, want {index} {term}"))
                }
                other => panic!("{index}/{term}: {other:?}"),
            }
        }
        assert!(db.raw().get_cf(db.cf(Cf::Kv), b"rev").unwrap().is_none());
        install(&db, &path, &SnapshotMetadata { index: 7, term: 2, ..Default::default() }).unwrap();
        assert_eq!(db.raw().get_cf(db.cf(Cf::Kv), b"rev").unwrap().as_deref(), Some(&b"kv row"[..]));
        assert_eq!(db.raw().get_cf(db.cf(Cf::Auth), b"user/amy").unwrap().as_deref(), Some(&b"auth row"[..]));
    }

    #[test]
    fn a_snapshot_taken_mid_removal_resumes_it_where_installed() {
        use crate::mvcc::{RangeOptions, ReadView, RemovalCursor, Store};
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("leader")).unwrap());
        let store = Store::open(db.clone()).unwrap();
        for v in 0..6 {
            let mut batch = store.batch();
            let mut txn = batch.txn();
            for k in 0..5 {
                txn.put(format!("k{k}").as_bytes(), v.to_string().as_bytes(), 0).unwrap();
            }
            drop(txn);
            batch.commit().unwrap();
        }
        let at = store.current_revision() - 2;
        let mut batch = store.batch();
        batch.compact(at).unwrap();
        db.put_meta_u64(batch.write_batch(), meta::APPLIED_INDEX, 7);
        db.put_meta_u64(batch.write_batch(), meta::APPLIED_TERM, 2);
        batch.commit().unwrap();
        assert!(store.remove_batch(&mut RemovalCursor::default(), 4).unwrap(), "removal half done");
        let files = SnapshotFiles::open(dir.path().join("snap"), db.clone()).unwrap();
        let file = files.generate().unwrap();

        let follower_db = Arc::new(Db::open(&dir.path().join("follower")).unwrap());
        install(&follower_db, &file.path, &file.meta).unwrap();
        let follower = Store::open(follower_db.clone()).unwrap();
        assert_eq!((follower.compact_revision(), follower.removed_revision()), (at, crate::mvcc::NEVER_COMPACTED));
        let answers = |store: &Store| {
            let all = |rev| store.range(b"k", Some(b"l"), RangeOptions { rev, ..Default::default() }).unwrap();
            ((at..=store.current_revision()).map(all).collect::<Vec<_>>(), store.hash_kv(0).unwrap())
        };
        assert_eq!(answers(&follower), answers(&store));
        let mut cursor = RemovalCursor::default();
        while follower.remove_batch(&mut cursor, 4).unwrap() {}
        assert_eq!(follower.removed_revision(), at);
        assert_eq!(answers(&follower), answers(&store));
        let rows = follower_db.raw().iterator_cf(follower_db.cf(Cf::Kv), IteratorMode::Start).count() as i64;
        assert_eq!(rows, 5 + (store.current_revision() - at) * 5, "one kept row per key, and all above");
    }
}
