//! The maintenance calls (status, hash, hash of the key-value history, snapshot), gRPC's
//! health check, the response headers the other calls share, and the Prometheus text of
//! `/metrics`.
//!
//! Like etcd's unary interceptor, a learner answers none of these but `Status`.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::{Node, Origin};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::version::ETCD_VERSION;
use crate::{Error, Result};

/// etcd's `snapshotSendBufferSize`: the blob of each snapshot message.
const SNAPSHOT_CHUNK: usize = 32 * 1024;
/// Between two slices of a defragment's rewrite: the load it runs beside gets the machine back.
const DEFRAG_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

impl Node {
    /// A header at the current revision.
    pub fn header_now(&self) -> Option<ResponseHeader> {
        let inner = &self.inner;
        inner.identity.header_at(inner.store.current_revision())
    }

    /// Prometheus text exposition of the member's main counters, under etcd's metric names
    /// where one exists (so etcd dashboards and the shared bench scripts read them).
    pub fn metrics(&self) -> String {
        let inner = &self.inner;
        let has_leader = u8::from(inner.identity.raft().leader_id() != 0);
        let (block_cache, memtables) = inner.db.memory_bytes();
        let metrics = [
            (
                "etcd_disk_wal_fsync_duration_seconds_count",
                "counter",
                "Synced raft log writes.",
                inner.db.synced_writes().to_string(),
            ),
            (
                "etcd_disk_wal_fsync_duration_seconds_sum",
                "counter",
                "Seconds spent in synced raft log writes.",
                format!("{:.6}", inner.db.synced_seconds()),
            ),
            ("etcd_server_has_leader", "gauge", "Whether a leader exists.", has_leader.to_string()),
            (
                "etcd_server_proposals_committed_total",
                "gauge",
                "The raft commit index.",
                inner.identity.raft().commit_index().to_string(),
            ),
            (
                "etcd_server_proposals_applied_total",
                "gauge",
                "The applied raft index.",
                inner.applied.get().to_string(),
            ),
            ("etcd_mvcc_db_total_size_in_bytes", "gauge", "Database size on disk.", inner.db.size_bytes().to_string()),
            (
                "etcd_server_quota_backend_bytes",
                "gauge",
                "Current backend storage quota size in bytes.",
                inner.quota.bytes().map_or(inner.cfg.quota_backend_bytes, |b| b as i64).to_string(),
            ),
            (
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "gauge",
                "Live data the quota is checked against.",
                inner.quota.size().to_string(),
            ),
            (
                "etcd_debugging_mvcc_current_revision",
                "gauge",
                "The store's current revision.",
                inner.store.current_revision().to_string(),
            ),
            ("etcd_debugging_mvcc_watcher_total", "gauge", "Registered watchers.", inner.watches.len().to_string()),
            ("etcd_debugging_mvcc_keys_total", "gauge", "Keys in the index.", inner.store.key_count().to_string()),
            ("raftkv_rocksdb_block_cache_bytes", "gauge", "RocksDB block cache in use.", block_cache.to_string()),
            ("raftkv_rocksdb_memtable_bytes", "gauge", "RocksDB memtables, all families.", memtables.to_string()),
        ];
        let mut text: String =
            metrics.iter().map(|(name, kind, help, value)| series_text(name, kind, help, value)).collect();
        let (pause, total, removed) = inner.store.removal_metrics();
        for (name, help, histogram) in [
            (
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration.",
                pause,
            ),
            (
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration.",
                total,
            ),
        ] {
            text.push_str(&histogram_text(name, help, &histogram));
        }
        let name = "etcd_debugging_mvcc_db_compaction_keys_total";
        text.push_str(&series_text(name, "counter", "Total number of db keys compacted.", &removed.to_string()));
        text.push_str(&process_text());
        text
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
    /// overwritten (a flush, then a manual compaction of the whole key range, in slices with
    /// `DEFRAG_PAUSE` (50 ms) between them, at the compaction threads' low priority), waited for on
    /// the calling thread, while the member keeps serving: RocksDB's compactions never block
    /// its readers and writers. Then the quota sees the smaller size at once.
    pub fn defragment(&self) -> Result<DefragmentResponse> {
        // etcd's `authMaintenanceServer`: root only, its error unconverted.
        self.check_admin().map_err(Error::unconverted)?;
        let started = std::time::Instant::now();
        let before = self.inner.db.state_bytes();
        self.inner.db.compact_all(DEFRAG_PAUSE)?;
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
        let io = |source| crate::storage::Error::Io { path: file.path.display().to_string(), source };
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

/// A histogram in Prometheus' text format: cumulative `_bucket` lines by `le`, `_sum`, `_count`.
fn histogram_text(name: &str, help: &str, h: &crate::mvcc::HistogramSnapshot) -> String {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
    for (bound, count) in &h.buckets {
        text.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {count}\n"));
    }
    text.push_str(&format!(
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}\n",
        h.count, h.sum_ms, h.count
    ));
    text
}

/// The process collector's series, as Prometheus' Go client writes them for etcd (etcdctl's
/// `check datascale` reads `process_resident_memory_bytes`), from `/proc/self`. A series
/// whose file cannot be read is left out rather than reported as 0.
fn process_text() -> String {
    // USER_HZ: fixed at 100 in the Linux ABI, whatever the kernel's tick.
    const TICKS: f64 = 100.0;
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let status_kib = |status: &str, field: &str| {
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse::<u64>().ok().map(|kib| kib * 1024)
    };
    let mut series: Vec<(&str, &str, &str, String)> = Vec::new();
    // /proc/self/stat: the fields after the command's closing parenthesis, from field 3 on.
    let stat = read("/proc/self/stat");
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let cpu = format!("{}", (utime + stime) / TICKS);
        series.push(("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu));
    }
    let limits = read("/proc/self/limits");
    let max_fds = limits.as_deref().and_then(|l| {
        let line = l.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..].split_whitespace().next()?.parse::<u64>().ok()
    });
    if let Some(max) = max_fds {
        series.push(("process_max_fds", "gauge", "Maximum number of open file descriptors.", max.to_string()));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // Less the one read_dir holds open.
        let open = fds.count().saturating_sub(1);
        series.push(("process_open_fds", "gauge", "Number of open file descriptors.", open.to_string()));
    }
    let status = read("/proc/self/status").unwrap_or_default();
    if let Some(rss) = status_kib(&status, "VmRSS:") {
        series.push(("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss.to_string()));
    }
    let boot =
        read("/proc/stat").and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()));
    if let (Some(boot), Some(started)) = (boot, field(22)) {
        let start = format!("{}", boot + started / TICKS);
        series.push((
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start,
        ));
    }
    if let Some(vsize) = status_kib(&status, "VmSize:") {
        series.push(("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize.to_string()));
    }
    series.iter().map(|(name, kind, help, value)| series_text(name, kind, help, value)).collect()
}

/// One series without labels in Prometheus' text format, with its help and type.
fn series_text(name: &str, kind: &str, help: &str, value: &str) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n")
}
