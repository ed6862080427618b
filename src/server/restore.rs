//! `snapshot restore`: a data dir for a member of a *new* cluster, made from a backup, as
//! `etcdctl snapshot restore` makes one. The backup is raftkv's own download
//! ([`crate::snapshot::read_download`]) or the bbolt file `etcdctl snapshot save` writes from
//! a real etcd ([`crate::snapshot::bbolt`]): the migration path from etcd.
//!
//! What a restore keeps: every `kv` row (so keys, values, create/mod revisions, versions and
//! the revision itself), leases (their countdown starts again when a leader takes them over),
//! users and roles, and the compaction state. What it makes new: the cluster and member ids and
//! the membership, from the flags, bootstrapped exactly as a first start of a new cluster would
//! (`bootstrap::identity`), so every member restored from the same file with the same
//! `--initial-cluster` holds the same state at the same raft index. What it drops: the old
//! membership, alarms (they name members of the old cluster) and the raft log.
//!
//! Runs offline on the caller's thread. The data dir is built beside its final path and renamed
//! into place when complete, so a restore that fails or is killed leaves no data dir that a
//! member would start from.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::WriteBatch;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::mvcc::Revision;
use crate::raft::storage::RaftStorage;
use crate::snapshot::{self, bbolt};
use crate::storage::{meta, Cf, Db};
use crate::{Error, Result};

/// `snapshot restore`'s flags.
#[derive(Clone, Debug)]
pub struct RestoreConfig {
    /// The backup file.
    pub snapshot: PathBuf,
    pub name: String,
    pub data_dir: PathBuf,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
    /// Restore a file without its SHA-256 trailer (a copy of a data file), or despite it.
    pub skip_hash_check: bool,
    /// Revisions to add to the newest one (etcd 3.5's `--bump-revision`), so that clients
    /// caching revisions of the old cluster never mistake the new one's for them.
    pub bump_revision: u64,
    /// Mark the bumped revision compacted (required with `bump_revision`): watches and reads of
    /// older revisions then fail as compacted, which makes such clients start over.
    pub mark_compacted: bool,
}

/// What a restore made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The restored store's revision.
    pub revision: i64,
    /// Rows written (keys of every family).
    pub rows: u64,
    /// Whether the backup was an etcd (bbolt) file.
    pub from_etcd: bool,
}

/// Writes rows in batches of about this many bytes: a large backup is never held in memory.
const BATCH_BYTES: usize = 32 << 20;

/// Makes `cfg.data_dir` from `cfg.snapshot`; the data dir must not exist.
pub fn restore(cfg: &RestoreConfig) -> Result<Restored> {
    if cfg.bump_revision > 0 && !cfg.mark_compacted {
        return Err(Error::Restore("--mark-compacted required if --bump-revision > 0".into()));
    }
    if cfg.mark_compacted && cfg.bump_revision == 0 {
        return Err(Error::Restore("--mark-compacted requires --bump-revision > 0".into()));
    }
    if cfg.data_dir.exists() {
        return Err(Error::Restore(format!("data-dir {:?} exists", cfg.data_dir.display().to_string())));
    }
    let member = Config {
        name: cfg.name.clone(),
        initial_cluster: cfg.initial_cluster.clone(),
        initial_cluster_token: cfg.initial_cluster_token.clone(),
        initial_advertise_peer_urls: cfg.initial_advertise_peer_urls.clone(),
        ..Config::new(&cfg.name, building_path(&cfg.data_dir))
    };
    member.validate()?;
    // The membership is checked before anything is read or written.
    crate::cluster::Membership::initial(&member)?;
    let len = checked_length(&cfg.snapshot, cfg.skip_hash_check)?;
    let from_etcd = bbolt::is_bbolt(&cfg.snapshot)?;

    let building = &member.data_dir;
    if building.exists() {
        fs::remove_dir_all(building).map_err(|e| data_dir_error(building, e))?;
    }
    let made = (|| {
        fs::create_dir_all(building).map_err(|e| data_dir_error(building, e))?;
        let db = Arc::new(Db::open(building)?);
        let mut rows = Rows { db: &db, batch: WriteBatch::default(), rows: 0, latest: 0, compacted: 0 };
        if from_etcd {
            let info = bbolt::read_etcd(&cfg.snapshot, &mut |cf, key, value| rows.add(cf, key, value))?;
            if info.auth_enabled {
                log::info!("restore: authentication was enabled in the etcd backup, and is on the restored member");
            }
        } else {
            snapshot::read_download(&cfg.snapshot, len, &mut |cf, key, value| rows.add(cf, key, value))?;
        }
        let Rows { mut batch, rows: row_count, latest, compacted, .. } = rows;
        let mut revision = latest.max(compacted);
        if cfg.bump_revision > 0 {
            revision = latest + cfg.bump_revision as i64;
            // A scheduled compaction at the bumped revision: the store starts there, refuses
            // older revisions, and the removal of everything below runs at first start.
            db.put_meta_u64(&mut batch, meta::SCHEDULED_COMPACT_REVISION, revision as u64);
        }
        // The bootstrap's synced write below makes every batch durable (one WAL for all
        // families).
        db.write(batch, false)?;
        let mut raft_storage = RaftStorage::open(db.clone())?;
        let (member_id, cluster_id) = super::bootstrap::identity(&member, &db, &mut raft_storage)?;
        Ok(Restored { member_id, cluster_id, revision, rows: row_count, from_etcd })
    })();
    match made {
        Ok(restored) => {
            fs::rename(building, &cfg.data_dir).map_err(|e| data_dir_error(&cfg.data_dir, e))?;
            log::info!(
                "restore: {} restored into {} (member {:x} of new cluster {:x}, revision {}, {} rows)",
                cfg.snapshot.display(),
                cfg.data_dir.display(),
                restored.member_id,
                restored.cluster_id,
                restored.revision,
                restored.rows
            );
            Ok(restored)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(building);
            Err(e)
        }
    }
}

/// The data dir's path while it is being built.
fn building_path(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".restoring");
    data_dir.with_file_name(name)
}

/// The bytes of state in `path`: all but the SHA-256 trailer when there is one (the file's
/// size is then 32 past a multiple of 512, etcd's rule), checked unless `skip`.
fn checked_length(path: &Path, skip: bool) -> Result<u64> {
    let io = |e| Error::from(crate::storage::Error::io(path, e));
    let size = fs::metadata(path).map_err(io)?.len();
    let has_hash = size % 512 == 32;
    if !has_hash {
        if !skip {
            return Err(Error::Restore("snapshot missing hash but --skip-hash-check=false".into()));
        }
        return Ok(size);
    }
    let len = size - 32;
    if !skip {
        let mut file = fs::File::open(path).map_err(io)?;
        let mut hash = Sha256::new();
        std::io::copy(&mut (&mut file).take(len), &mut hash).map_err(io)?;
        let mut want = [0u8; 32];
        file.read_exact(&mut want).map_err(io)?;
        let got = hash.finalize();
        if got[..] != want[..] {
            return Err(Error::Restore(format!("expected sha256 {}, got {}", go_bytes(&want), go_bytes(&got))));
        }
    }
    Ok(len)
}

/// The restored rows on their way into the new database.
struct Rows<'a> {
    db: &'a Db,
    batch: WriteBatch,
    rows: u64,
    /// The newest revision of the `kv` rows.
    latest: i64,
    /// The newest compaction (scheduled or finished) the rows record.
    compacted: i64,
}

impl Rows<'_> {
    /// Keeps the state a new cluster takes over and drops the rest (the old cluster's identity,
    /// membership, alarms, applied index and raft state).
    fn add(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> Result<()> {
        let keep = match cf {
            Cf::Kv => {
                let (rev, _) = Revision::from_key(key).ok_or_else(|| {
                    Error::Storage(crate::storage::Error::Corrupt {
                        what: "restored kv row".into(),
                        detail: format!("key {key:?} is not a revision"),
                    })
                })?;
                self.latest = self.latest.max(rev.main);
                true
            }
            Cf::Lease | Cf::Auth => true,
            Cf::Meta if key == meta::SCHEDULED_COMPACT_REVISION || key == meta::COMPACT_REVISION => {
                let rev = crate::storage::decode_u64(value).ok_or_else(|| {
                    Error::Storage(crate::storage::Error::Corrupt {
                        what: "restored compaction revision".into(),
                        detail: format!("{value:?}"),
                    })
                })?;
                self.compacted = self.compacted.max(rev as i64);
                true
            }
            Cf::Meta => false,
            Cf::Raft => false,
        };
        if keep {
            self.batch.put_cf(self.db.cf(cf), key, value);
            self.rows += 1;
            if self.batch.size_in_bytes() >= BATCH_BYTES {
                self.db.write(std::mem::take(&mut self.batch), false)?;
            }
        }
        Ok(())
    }
}

/// A byte slice as Go's `%v` prints it: `[1 2 3]`.
fn go_bytes(bytes: &[u8]) -> String {
    format!("[{}]", bytes.iter().map(u8::to_string).collect::<Vec<_>>().join(" "))
}

fn data_dir_error(path: &Path, e: std::io::Error) -> Error {
    Error::DataDir { path: path.display().to_string(), reason: e.to_string() }
}
