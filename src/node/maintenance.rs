//! The maintenance calls (status, hash, hash of the key-value history, snapshot), gRPC's
//! health check, the response headers the other calls share, and the member's metrics
//! ([`NodeMetrics`]: the registry every module registered its series in, and the gauges
//! sampled at a scrape).
//!
//! Like etcd's unary interceptor, a learner answers none of these but `Status`.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::{Node, Origin};
use crate::metrics::{GrpcServer, IntGauge, Registry, Stages};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::version::ETCD_VERSION;
use crate::{Error, Result};

/// etcd's `snapshotSendBufferSize`: the blob of each snapshot message.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

impl Node {
    /// A header at the current revision.
    pub fn header_now(&self) -> Option<ResponseHeader> {
        let inner = &self.inner;
        inner.identity.header_at(inner.store.current_revision())
    }

    /// Prometheus text exposition (format 0.0.4) of the member's series: etcd's names, types,
    /// labels and bucket layouts, then the process collector's. Reads atomics and a few
    /// RocksDB properties; call it where blocking briefly is fine (the gateway's pool).
    pub fn metrics(&self) -> String {
        self.inner.metrics.gauges.sample(self);
        self.inner.metrics.registry.text()
    }

    /// This member's view of itself (etcd `Status`).
    pub fn status(&self) -> Result<StatusResponse> {
        let inner = &self.inner;
        let header = inner.identity.header_at(inner.store.current_revision());
        // etcd's: no leader, then each alarm in Go's text form.
        let no_leader = (inner.identity.raft().leader_id() == 0).then(|| Error::NoLeader.to_string());
        let alarms = self.alarms_raised().into_iter().map(|a| crate::alarm::text(&a));
        Ok(StatusResponse {
            header,
            version: ETCD_VERSION.to_string(),
            db_size: inner.db.size_bytes() as i64,
            leader: inner.identity.raft().leader_id(),
            raft_index: inner.identity.raft().commit_index(),
            raft_term: inner.identity.raft().term(),
            raft_applied_index: inner.applied.get(),
            db_size_in_use: inner.db.state_bytes() as i64,
            is_learner: self.is_learner(),
            errors: no_leader.into_iter().chain(alarms).collect(),
        })
    }

    /// Lists, raises or clears alarms (etcd `Alarm`): every action goes through raft, as in
    /// etcd, so a list is linearizable and a change reaches every member.
    pub fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse> {
        wait_on(|reply| self.propose_then(Origin::Client, Request::Alarm(req), reply))
    }

    /// The alarms raised, as this member has applied them (for the health probes).
    pub fn alarms_raised(&self) -> Vec<AlarmMember> {
        self.inner.alarms.list(AlarmType::None as i32)
    }

    /// etcd `Defragment`: RocksDB rewrites every family without what was deleted or
    /// overwritten (a flush, then a manual compaction of the whole key range, at the compaction
    /// threads' idle priority), waited for on the calling thread, while the member keeps serving: RocksDB's compactions never block
    /// its readers and writers. Then the quota sees the smaller size at once.
    pub fn defragment(&self) -> Result<DefragmentResponse> {
        // etcd's `authMaintenanceServer`: root only, its error unconverted.
        self.check_admin().map_err(Error::unconverted)?;
        let started = std::time::Instant::now();
        let before = self.inner.db.state_bytes();
        self.inner.db.compact_all()?;
        self.inner.quota.resample();
        log::info!(
            "maintenance: defragmented in {:?}: live data {before} → {} bytes",
            started.elapsed(),
            self.inner.db.state_bytes()
        );
        Ok(DefragmentResponse::default())
    }

    /// A checksum of the key-value rows this member holds (etcd `Hash`); members that applied
    /// the same entries and compactions agree on it once their removal of the compacted rows
    /// is done (as etcd's, it hashes whatever is on disk: use [`Node::hash_kv`] to compare
    /// members at any moment).
    pub fn hash(&self) -> Result<HashResponse> {
        // etcd's `authMaintenanceServer`: root only, its error unconverted.
        self.check_admin().map_err(Error::unconverted)?;
        self.refuse_learner()?;
        let inner = &self.inner;
        let header = inner.identity.header_at(inner.store.current_revision());
        Ok(HashResponse { header, hash: inner.db.hash(crate::storage::Cf::Kv)? })
    }

    /// etcd's `Snapshot`: the member's state from one consistent RocksDB snapshot
    /// ([`crate::snapshot::SnapshotFiles::for_client`]'s format), handed to `send` in etcd's 32 KiB chunks with
    /// the bytes still to come, then a last chunk holding the SHA-256 of all before it. Stops
    /// early, with `Ok`, when `send` answers `false` (the client left).
    pub fn snapshot(&self, send: &mut dyn FnMut(SnapshotResponse) -> bool) -> Result<()> {
        // etcd's `authMaintenanceServer`: root only, its error unconverted.
        self.check_admin().map_err(Error::unconverted)?;
        let file = self.inner.snapshots.for_client()?;
        let io = |e| crate::storage::Error::io(&file.path, e);
        let mut reader = std::fs::File::open(&file.path).map_err(io)?;
        let size = reader.metadata().map_err(io)?.len();
        let mut hash = Sha256::new();
        let mut sent = 0u64;
        let mut chunk = vec![0u8; SNAPSHOT_CHUNK];
        while sent < size {
            let n = (size - sent).min(SNAPSHOT_CHUNK as u64) as usize;
            reader.read_exact(&mut chunk[..n]).map_err(io)?;
            hash.update(&chunk[..n]);
            sent += n as u64;
            let resp = SnapshotResponse { header: None, remaining_bytes: size - sent, blob: chunk[..n].to_vec() };
            if !send(resp) {
                return Ok(());
            }
        }
        send(SnapshotResponse { header: None, remaining_bytes: 0, blob: hash.finalize().to_vec() });
        Ok(())
    }

    /// A checksum of the key-value history up to `revision` (0 = now) and the compact revision
    /// it was taken at (etcd `HashKV`): members that applied the same history answer the same
    /// hash for the same revision and compact revision, across restarts and however much of
    /// the compacted history is still on disk. Errors as a range at that revision would.
    pub fn hash_kv(&self, req: HashKvRequest) -> Result<HashKvResponse> {
        // etcd's `authMaintenanceServer`: root only, its error unconverted.
        self.check_admin().map_err(Error::unconverted)?;
        self.refuse_learner()?;
        self.inner.peer_service.hash_kv(&req)
    }

    /// gRPC's health check (`grpc.health.v1.Health/Check`): the server as a whole (service
    /// `""`, the only name etcd registers) serves while this member knows a leader, as etcd
    /// 3.5 reports it (3.4 always says SERVING); any other name is [`Error::UnknownHealthService`].
    pub fn health_check(&self, req: &HealthCheckRequest) -> Result<HealthCheckResponse> {
        self.refuse_learner()?;
        if !req.service.is_empty() {
            return Err(Error::UnknownHealthService);
        }
        let status = if self.inner.identity.raft().leader_id() != 0 {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(HealthCheckResponse { status: status as i32 })
    }

    /// etcd's rule for learners (`isRPCSupportedForLearner`): every unary call but `Status`
    /// and serializable ranges is refused.
    pub fn refuse_learner(&self) -> Result<()> {
        if self.is_learner() {
            return Err(Error::NotSupportedForLearner);
        }
        Ok(())
    }

    /// A header without a revision (what etcd answers member calls with).
    pub(super) fn bare_header(&self) -> Option<ResponseHeader> {
        let mut header = None;
        self.inner.identity.fill_header(&mut header);
        header
    }
}

/// The member's registry and the series only the node can sample: gauges of state that
/// other threads own, read at each scrape (on the scraping thread) rather than kept up to date
/// on the hot path.
pub(super) struct NodeMetrics {
    pub registry: Registry,
    pub grpc: GrpcServer,
    pub stages: Stages,
    gauges: Gauges,
}

struct Gauges {
    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    committed: IntGauge,
    applied: IntGauge,
    pending: IntGauge,
    db_size: IntGauge,
    db_in_use: IntGauge,
    quota: IntGauge,
    revision: IntGauge,
    watchers: IntGauge,
    keys: IntGauge,
    block_cache: IntGauge,
    memtables: IntGauge,
}

impl NodeMetrics {
    /// The gauges registered in `registry`, and those set once: this member's id and versions,
    /// as etcd sets them at start.
    pub fn new(registry: Registry, grpc: GrpcServer, stages: Stages, member_id: u64) -> NodeMetrics {
        use crate::metrics::gauge;
        let gauges = Gauges {
            has_leader: gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."),
            is_leader: gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise."),
            is_learner: gauge(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            applied: gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied."),
            pending: gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit."),
            db_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            quota: gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes."),
            revision: gauge("etcd_debugging_mvcc_current_revision", "The current revision of store."),
            watchers: gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
            keys: gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."),
            block_cache: gauge("raftkv_rocksdb_block_cache_bytes", "RocksDB block cache in use."),
            memtables: gauge("raftkv_rocksdb_memtable_bytes", "RocksDB memtables, all families."),
        };
        let g = &gauges;
        for each in [
            &g.has_leader,
            &g.is_leader,
            &g.is_learner,
            &g.committed,
            &g.applied,
            &g.pending,
            &g.db_size,
            &g.db_in_use,
            &g.quota,
            &g.revision,
            &g.watchers,
            &g.keys,
            &g.block_cache,
            &g.memtables,
        ] {
            registry.register(each.clone());
        }
        use crate::metrics::gauge_vec;
        let labelled = [
            (
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                "server_id",
                format!("{member_id:x}"),
            ),
            (
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                "server_version",
                ETCD_VERSION.to_string(),
            ),
            (
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                "cluster_version",
                // etcd's `version.Cluster`: major.minor.
                crate::version::ETCD_CLUSTER_VERSION.rsplit_once('.').map_or("", |(minor, _)| minor).to_string(),
            ),
        ];
        for (name, help, label, value) in labelled {
            let vec = gauge_vec(name, help, &[label]);
            vec.with_label_values(&[&value]).set(1);
            registry.register(vec);
        }
        NodeMetrics { registry, grpc, stages, gauges }
    }
}

impl Gauges {
    fn sample(&self, node: &Node) {
        let inner = &node.inner;
        let raft = inner.identity.raft();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.has_leader.set(i64::from(raft.leader_id() != 0));
        self.is_leader.set(i64::from(raft.leader_id() == node.member_id()));
        self.is_learner.set(i64::from(node.is_learner()));
        self.committed.set(as_i64(raft.commit_index()));
        self.applied.set(as_i64(inner.applied.get()));
        self.pending.set(inner.proposer.pending() as i64);
        self.db_size.set(as_i64(inner.db.size_bytes()));
        self.db_in_use.set(as_i64(inner.quota.size()));
        self.quota.set(inner.quota.bytes().map_or(inner.cfg.quota_backend_bytes, |b| b as i64));
        self.revision.set(inner.store.current_revision());
        self.watchers.set(inner.watches.len() as i64);
        self.keys.set(inner.store.key_count() as i64);
        let (block_cache, memtables) = inner.db.memory_bytes();
        self.block_cache.set(as_i64(block_cache));
        self.memtables.set(as_i64(memtables));
    }
}
