//! A member's identity: read back on restart, or made on first start, bootstrapping a new
//! cluster from `--initial-cluster` or asking an existing one who this member is. Runs once,
//! on the thread that opens the member.

use raft::prelude::SnapshotMetadata;
use rocksdb::WriteBatch;

use crate::cluster::Membership;
use crate::config::{ClusterState, Config};
use crate::raft::storage::RaftStorage;
use crate::storage::{meta, Db};
use crate::{Error, Result};

/// The raft index and term a new cluster starts at: its initial configuration is a snapshot
/// there, so a member added later always starts from a snapshot that carries the whole
/// configuration, never from a log that lacks the initial members (TiKV starts regions the
/// same way).
const BOOTSTRAP_INDEX: u64 = 1;

/// Reads this member's identity. On first start it bootstraps a new cluster from
/// `--initial-cluster`, or, with `--initial-cluster-state existing`, asks the cluster's members
/// who it is (it must have been added with `member add`); later starts ignore those flags.
pub(super) fn identity(cfg: &Config, db: &Db, raft_storage: &mut RaftStorage) -> Result<(u64, u64)> {
    let member_id = db.get_meta_u64(meta::MEMBER_ID)?;
    let cluster_id = db.get_meta_u64(meta::CLUSTER_ID)?;
    if member_id != 0 && cluster_id != 0 {
        return Ok((member_id, cluster_id));
    }
    if !raft_storage.is_empty() {
        return Err(Error::DataDir {
            path: cfg.data_dir.display().to_string(),
            reason: "raft log present but member identity missing".into(),
        });
    }
    let mut batch = WriteBatch::default();
    let (member_id, cluster_id, membership) = match cfg.initial_cluster_state {
        ClusterState::New => {
            let membership = Membership::initial(cfg)?;
            let member_id = cfg.member_id();
            let voters = membership.voters();
            let cluster_id = Config::cluster_id(&voters);
            let mut meta_at = SnapshotMetadata { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_INDEX, ..Default::default() };
            meta_at.set_conf_state(raft::prelude::ConfState::from((voters, vec![])));
            raft_storage.apply_snapshot(&mut batch, &meta_at)?;
            db.put_meta_u64(&mut batch, meta::APPLIED_INDEX, BOOTSTRAP_INDEX);
            db.put_meta_u64(&mut batch, meta::APPLIED_TERM, BOOTSTRAP_INDEX);
            log::info!("raftkv: bootstrapping cluster {cluster_id:x} with {} member(s)", membership.voters().len());
            (member_id, cluster_id, membership)
        }
        ClusterState::Existing => {
            let mine = {
                let mut urls = cfg.initial_advertise_peer_urls.clone();
                urls.sort();
                urls
            };
            let others: Vec<String> = cfg
                .initial_cluster()
                .into_iter()
                .filter(|(name, _)| *name != cfg.name)
                .flat_map(|(_, urls)| urls)
                .collect();
            let tls = crate::transport::PeerTls::from_config(cfg)?;
            let (cluster_id, record) = crate::transport::query_membership(&others, tls.as_ref())?;
            let membership = Membership::from_record(record);
            let me = membership.members().into_iter().find(|m| {
                let mut urls = m.peer_urls.clone();
                urls.sort();
                urls == mine
            });
            let Some(me) = me else {
                return Err(Error::Config(format!(
                    "cluster {cluster_id:x} has no member with peer URLs {}: add it with `member add` first",
                    mine.join(",")
                )));
            };
            log::info!("raftkv: joining cluster {cluster_id:x} as member {:x}", me.id);
            (me.id, cluster_id, membership)
        }
    };
    membership.save(db, &mut batch);
    db.put_meta_u64(&mut batch, meta::MEMBER_ID, member_id);
    db.put_meta_u64(&mut batch, meta::CLUSTER_ID, cluster_id);
    db.write(batch, true)?;
    Ok((member_id, cluster_id))
}
