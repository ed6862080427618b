//! The server: start-up, the run loop (etcd's `EtcdServer.run`) and shutdown.
//!
//! [`Server::run`] is the run loop. It runs on the thread that calls it (the process main thread
//! in the CLI, `raftkv-run` under [`crate::Node::start`]) and is one `select!` over four
//! channels:
//! - **apply** (from the raft thread): leadership news is handled at once; committed entries
//!   become a job on the FIFO apply thread ([`fifo`]), so the loop never blocks on disk;
//! - **expired leases**: lease ids the `raftkv-lessor` thread found expired, proposed as
//!   revokes without waiting;
//! - **error**: a fatal error from any thread; logged, then the member stops;
//! - **stop**: [`crate::Node::stop`].
//!
//! Shutdown order (written once, in `Server::shutdown`): stop the lessor and the compactor
//! (they propose); stop the raft thread so no new entries are committed; the peer transport;
//! then the FIFO thread (the running job finishes, queued ones are dropped: they are in the
//! durable log and are re-applied on restart); then fail every remaining waiter with
//! `etcdserver: server stopped`; flush the memtables.

pub mod fifo;
pub mod wait;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{self, select, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use raft::prelude::SnapshotMetadata;
use raft::RawNode;
use rocksdb::WriteBatch;
use slog::Drain as _;

use prost::Message as _;

use crate::apply::{AppliedIndex, Applier, Progress, Response};
use crate::cluster::Membership;
use crate::compactor;
use crate::config::{ClusterState, Config};
use crate::lease::{self, Lessor};
use crate::mvcc;
use crate::pb::internal_request::Request;
use crate::pb::ResponseHeader;
use crate::pb::{CompactionRequest, InternalRequest, LeaseCheckpointRequest, LeaseRevokeRequest};
use crate::raft::node::{RaftChannels, RaftNode, RaftParts};
use crate::raft::storage::RaftStorage;
use crate::raft::{Apply, LeaderChange, Proposal, RaftRequest, RaftStatus};
use crate::snapshot::SnapshotFiles;
use crate::storage::{self, meta, Db};
use crate::transport::Transport;
use crate::watch::WatchHub;
use crate::{Error, Result};
use fifo::Fifo;
use wait::Wait;

/// Admission control (etcd's `maxGapBetweenApplyAndCommitIndex`): new proposals are refused with
/// `etcdserver: too many requests` while more committed entries than this await apply. This is
/// the bound of the otherwise unbounded FIFO job queue.
pub const MAX_APPLY_LAG: u64 = 5000;

/// Client requests queued for the raft thread. A full queue blocks the caller (up to its
/// request timeout): backpressure on clients when raft cannot keep up.
const RAFT_REQUEST_QUEUE_MAX: usize = 8192;

/// Batches of committed entries between the raft thread and the run loop. The run loop only
/// moves them to the FIFO queue, so this rarely holds more than one.
const APPLY_QUEUE_MAX: usize = 64;

/// Expired lease ids waiting for the run loop (bounded like etcd's lessor expiredC).
const EXPIRED_LEASE_QUEUE_MAX: usize = 16;

/// Peer events (mostly raft messages) waiting for the raft thread. When it is full the
/// transport's readers stop reading and TCP pushes back on the senders.
const PEER_EVENT_QUEUE_MAX: usize = 4096;

/// The raft index and term a new cluster starts at: its initial configuration is a snapshot
/// there, so a member added later always starts from a snapshot that carries the whole
/// configuration, never from a log that lacks the initial members (TiKV starts regions the
/// same way).
const BOOTSTRAP_INDEX: u64 = 1;

/// State shared by every thread of one member.
pub struct Shared {
    pub cfg: Config,
    pub member_id: u64,
    pub cluster_id: u64,
    pub db: Arc<Db>,
    pub store: mvcc::Store,
    pub lessor: Lessor,
    pub watches: Arc<WatchHub>,
    pub wait: Wait<Response>,
    pub raft: Arc<RaftStatus>,
    pub applied: AppliedIndex,
    pub request_ids: RequestIds,
    /// Who is in the cluster; changed only by the apply thread.
    pub membership: RwLock<Membership>,
    pub transport: Arc<Transport>,
    pub snapshots: Arc<SnapshotFiles>,
    /// Into the raft thread: client proposals and reads, and the member's own proposals
    /// (lease checkpoints and revokes, compactions).
    pub request_tx: Sender<RaftRequest>,
}

impl Shared {
    /// Points the transport at the current members' peer URLs.
    pub fn set_peers(&self) {
        let peers: Vec<(u64, Vec<String>)> =
            self.membership.read().members().into_iter().map(|m| (m.id, m.peer_urls)).collect();
        self.transport.set_peers(&peers);
    }

    /// Whether this member is the raft leader now.
    pub fn is_leader(&self) -> bool {
        self.raft.leader_id() == self.member_id
    }

    /// Proposes `request` without waiting for its outcome (lease revokes and checkpoints: if
    /// one is lost, the lessor asks again). Never blocks: a full queue drops it.
    pub fn propose_nowait(&self, request: Request) {
        let id = self.request_ids.next();
        let data = InternalRequest { id, request: Some(request) }.encode_to_vec();
        let deadline = Instant::now() + self.cfg.request_timeout();
        if self.request_tx.try_send(RaftRequest::Propose(Proposal { id, data, deadline })).is_err() {
            log::debug!("raftkv: request queue full; internal proposal {id:x} dropped");
        }
    }

    /// A response header at `revision` from this member.
    pub fn header_at(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader { revision, ..Default::default() });
        self.fill_header(&mut header);
        header
    }

    /// Completes a response header with this member's identity and the raft term.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id;
        h.member_id = self.member_id;
        h.raft_term = self.raft.term();
    }
}

/// Unique request ids (etcd's `idutil.Generator`): the member id's low 16 bits, then 48 bits
/// seeded from the start time in milliseconds and counted up, so ids do not repeat across
/// restarts of one member or between members.
pub struct RequestIds {
    prefix: u64,
    suffix: AtomicU64,
}

impl RequestIds {
    fn new(member_id: u64) -> RequestIds {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        RequestIds { prefix: (member_id & 0xffff) << 48, suffix: AtomicU64::new(millis << 8) }
    }

    pub fn next(&self) -> u64 {
        self.prefix | (self.suffix.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1))
    }
}

/// The handles a [`crate::Node`] uses to talk to a running server.
pub struct Handles {
    pub shared: Arc<Shared>,
    pub stop_tx: Sender<()>,
}

/// A started member whose run loop has not been entered yet.
pub struct Server {
    shared: Arc<Shared>,
    apply_rx: Receiver<Apply>,
    expired_rx: Receiver<Vec<i64>>,
    error_rx: Receiver<Error>,
    /// For apply jobs to report a fatal error; the raft thread has its own clone.
    error_tx: Sender<Error>,
    stop_rx: Receiver<()>,
    raft_stop_tx: Sender<()>,
    raft_thread: Option<JoinHandle<()>>,
    lessor_stop_tx: Sender<()>,
    lessor_thread: Option<JoinHandle<()>>,
    /// Opened while this member leads (etcd's compactor Resume/Pause).
    compactor_gate: Arc<compactor::Gate>,
    compactor_stop_tx: Sender<()>,
    compactor_thread: Option<JoinHandle<()>>,
    watch_stop_tx: Sender<()>,
    watch_thread: Option<JoinHandle<()>>,
    fifo: Fifo,
    applier: Arc<Applier>,
}

impl Server {
    /// Opens (or bootstraps) the member's data, starts its raft and apply threads, and returns
    /// the server, whose [`Server::run`] must then be called, and handles for its clients.
    pub fn open(cfg: Config) -> Result<(Server, Handles)> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| Error::DataDir { path: cfg.data_dir.display().to_string(), reason: e.to_string() })?;
        let db = Arc::new(
            Db::open(&cfg.data_dir)
                .map_err(|e| Error::DataDir { path: cfg.data_dir.display().to_string(), reason: e.to_string() })?,
        );
        let mut raft_storage = RaftStorage::open(db.clone())?;
        let (member_id, cluster_id) = identity(&cfg, &db, &mut raft_storage)?;
        let snapshots = SnapshotFiles::open(cfg.data_dir.join("snap"), db.clone())?;
        recover_snapshot(&db, &raft_storage, &snapshots)?;
        snapshots.prune();
        raft_storage.set_snapshot_files(snapshots.clone());
        let membership = Membership::load(&db)?;
        if membership.is_removed(member_id) {
            return Err(Error::MemberRemoved);
        }
        let applied_index = db.get_meta_u64(meta::APPLIED_INDEX)?;
        let applied_term = db.get_meta_u64(meta::APPLIED_TERM)?;
        check_recovered_state(&raft_storage, applied_index)?;
        let store = mvcc::Store::open(db.clone())?;
        let lessor = Lessor::open(&db, cfg.min_lease_ttl(), store.take_restored_leases())?;
        log::info!(
            "raftkv: member {member_id:x} of cluster {cluster_id:x} opened {} (applied index {applied_index}, revision {})",
            cfg.data_dir.display(),
            store.current_revision()
        );

        let raft_cfg = raft::Config {
            id: member_id,
            election_tick: cfg.election_ticks(),
            heartbeat_tick: 1,
            applied: applied_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            // Bounds one Apply (and so one apply batch) to 64 MiB of entries.
            max_committed_size_per_ready: 64 << 20,
            ..Default::default()
        };
        let progress = Progress {
            applied_index,
            applied_term,
            snapshot_index: raft_storage.snapshot_metadata().index,
            conf_state: raft_storage.conf_state().clone(),
        };
        let logger = slog::Logger::root(slog_stdlog::StdLog.fuse(), slog::o!());
        let raw = RawNode::new(&raft_cfg, raft_storage, &logger)?;

        let (request_tx, request_rx) = channel::bounded(RAFT_REQUEST_QUEUE_MAX);
        let (peer_tx, peer_rx) = channel::bounded(PEER_EVENT_QUEUE_MAX);
        let listener = match cfg.listen_peer_urls.first() {
            None => None,
            Some(url) => Some(bind_peer_url(url)?),
        };
        let transport = Transport::start(member_id, cluster_id, listener, peer_tx, snapshots.clone())?;
        // One report per apply job; jobs are bounded by admission control.
        let (progress_tx, progress_rx) = channel::unbounded();
        let (apply_tx, apply_rx) = channel::bounded(APPLY_QUEUE_MAX);
        let (error_tx, error_rx) = channel::bounded(1);
        let (expired_tx, expired_rx) = channel::bounded(EXPIRED_LEASE_QUEUE_MAX);
        let (stop_tx, stop_rx) = channel::bounded(1);
        let (raft_stop_tx, raft_stop_rx) = channel::bounded(1);
        let (lessor_stop_tx, lessor_stop_rx) = channel::bounded::<()>(1);
        let (compactor_stop_tx, compactor_stop_rx) = channel::bounded::<()>(1);
        let (watch_stop_tx, watch_stop_rx) = channel::bounded::<()>(1);

        let raft_status = Arc::new(RaftStatus::default());
        let shared = Arc::new(Shared {
            applied: AppliedIndex::default(),
            cfg,
            member_id,
            cluster_id,
            db: db.clone(),
            store,
            lessor,
            watches: Arc::new(WatchHub::default()),
            wait: Wait::default(),
            raft: raft_status.clone(),
            request_ids: RequestIds::new(member_id),
            membership: RwLock::new(membership),
            transport: transport.clone(),
            snapshots,
            request_tx: request_tx.clone(),
        });
        shared.applied.set(applied_index);
        transport.set_services(Arc::new(crate::node::PeerService::new(&shared)));
        shared.set_peers();

        let fail_request = {
            let shared = shared.clone();
            Box::new(move |id, e| shared.wait.trigger([(id, Err(e))]))
        };
        let node = RaftNode::new(
            raw,
            RaftParts {
                db,
                channels: RaftChannels {
                    request_rx,
                    peer_rx,
                    progress_rx,
                    stop_rx: raft_stop_rx,
                    apply_tx,
                    error_tx: error_tx.clone(),
                },
                status: raft_status,
                transport,
                fail_request,
                tick_interval: shared.cfg.tick_interval(),
                catchup_entries: shared.cfg.snapshot_catchup_entries,
            },
        );
        let raft_thread = spawn("raftkv-raft", move || node.run())?;
        let lessor_thread = {
            let shared = shared.clone();
            spawn("raftkv-lessor", move || {
                lease::run(
                    &shared.lessor,
                    shared.cfg.lease_checkpoint_interval(),
                    &expired_tx,
                    &lessor_stop_rx,
                    |checkpoints| {
                        shared.propose_nowait(Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints }))
                    },
                )
            })?
        };
        let compactor_gate = Arc::new(compactor::Gate::default());
        let compactor_thread = match shared.cfg.auto_compaction {
            None => None,
            Some(mode) => {
                let (shared, gate) = (shared.clone(), compactor_gate.clone());
                Some(spawn("raftkv-compactor", move || {
                    compactor::run(
                        mode,
                        &gate,
                        &compactor_stop_rx,
                        || shared.store.current_revision(),
                        || shared.store.compact_revision(),
                        |revision| {
                            let request = CompactionRequest { revision, physical: false };
                            shared.propose_nowait(Request::Compaction(request))
                        },
                    )
                })?)
            }
        };
        let watch_thread = {
            let shared = shared.clone();
            spawn("raftkv-watch-sync", move || {
                shared.watches.run_sync(&shared.store, &watch_stop_rx, &|h| shared.fill_header(h))
            })?
        };
        let fifo = Fifo::start("raftkv-apply")?;
        let applier = Arc::new(Applier::new(shared.clone(), Arc::new(Mutex::new(progress)), progress_tx));
        let server = Server {
            shared: shared.clone(),
            apply_rx,
            expired_rx,
            error_rx,
            error_tx,
            stop_rx,
            raft_stop_tx,
            raft_thread: Some(raft_thread),
            lessor_stop_tx,
            lessor_thread: Some(lessor_thread),
            compactor_gate,
            compactor_stop_tx,
            compactor_thread,
            watch_stop_tx,
            watch_thread: Some(watch_thread),
            fifo,
            applier,
        };
        Ok((server, Handles { shared, stop_tx }))
    }

    /// The run loop. Returns when stopped (`Ok`) or after a fatal error (`Err`), with every
    /// thread of the member joined either way.
    pub fn run(mut self) -> Result<()> {
        let outcome = loop {
            select! {
                recv(self.apply_rx) -> apply => match apply {
                    Ok(apply) => self.on_apply(apply),
                    // The raft thread is gone; its error (if any) is on the error channel.
                    Err(_) => break self.error_rx.try_recv().map_or(Ok(()), Err),
                },
                recv(self.expired_rx) -> ids => {
                    if let Ok(ids) = ids {
                        self.on_expired_leases(ids);
                    }
                }
                recv(self.error_rx) -> err => {
                    if let Ok(err) = err {
                        break Err(err);
                    }
                }
                recv(self.stop_rx) -> _ => break Ok(()),
            }
        };
        if let Err(e) = &outcome {
            log::error!("raftkv: member {:x} stopping after fatal error: {e}", self.shared.member_id);
        }
        self.shutdown();
        outcome
    }

    fn on_apply(&mut self, apply: Apply) {
        if let Some(change) = apply.leader {
            self.on_leader_change(change);
        }
        if apply.entries.is_empty() && apply.snapshot.is_none() {
            return;
        }
        let applier = self.applier.clone();
        let error_tx = self.error_tx.clone();
        self.fifo.schedule(move || {
            if let Err(e) = applier.apply(apply.snapshot, apply.entries) {
                let _ = error_tx.try_send(e);
            }
        });
    }

    /// Leadership moved: the leader's lessor counts leases down, followers' never expire, and
    /// only the leader's compactor runs (etcd's `raftReadyHandler.updateLeadership`).
    fn on_leader_change(&mut self, change: LeaderChange) {
        if change.is_self {
            self.shared.lessor.promote();
            self.compactor_gate.resume();
        } else {
            self.shared.lessor.demote();
            self.compactor_gate.pause();
        }
        if change.leader_id == 0 {
            log::warn!("raftkv: member {:x} lost its leader (term {})", self.shared.member_id, change.term);
        } else if change.is_self {
            log::info!("raftkv: member {:x} became leader at term {}", self.shared.member_id, change.term);
        } else {
            log::info!(
                "raftkv: member {:x} follows leader {:x} at term {}",
                self.shared.member_id,
                change.leader_id,
                change.term
            );
        }
    }

    /// Revokes expired leases through raft, without waiting: the loop must not block, and a
    /// revoke that gets lost is reported again by the lessor.
    fn on_expired_leases(&mut self, ids: Vec<i64>) {
        for id in ids {
            self.shared.propose_nowait(Request::LeaseRevoke(LeaseRevokeRequest { id }));
        }
    }

    fn shutdown(&mut self) {
        // The lessor first: it proposes, and nothing should be proposed while raft stops.
        let _ = self.lessor_stop_tx.try_send(());
        let _ = self.compactor_stop_tx.try_send(());
        for (name, thread) in [("lessor", self.lessor_thread.take()), ("compactor", self.compactor_thread.take())] {
            if thread.is_some_and(|t| t.join().is_err()) {
                log::error!("{name} thread panicked");
            }
        }
        let _ = self.raft_stop_tx.try_send(());
        if let Some(thread) = self.raft_thread.take() {
            if thread.join().is_err() {
                log::error!("raft thread panicked");
            }
        }
        // With raft gone, peers' messages have nowhere to go.
        self.shared.transport.stop();
        self.fifo.stop();
        // After apply: nothing new to deliver. Watchers stay registered; their receivers see
        // no more events and the member reports stopped.
        let _ = self.watch_stop_tx.try_send(());
        if let Some(thread) = self.watch_thread.take() {
            if thread.join().is_err() {
                log::error!("watch sync thread panicked");
            }
        }
        self.shared.wait.close();
        self.shared.applied.close();
        // Nothing writes any more: leave no WAL for the next start to replay.
        if let Err(e) = self.shared.db.flush() {
            log::warn!("raftkv: flushing memtables at stop: {e}");
        }
        log::info!("raftkv: member {:x} stopped", self.shared.member_id);
    }
}

/// Reads this member's identity. On first start it bootstraps a new cluster from
/// `--initial-cluster`, or, with `--initial-cluster-state existing`, asks the cluster's members
/// who it is (it must have been added with `member add`); later starts ignore those flags.
fn identity(cfg: &Config, db: &Db, raft_storage: &mut RaftStorage) -> Result<(u64, u64)> {
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
            let (cluster_id, record) = crate::transport::query_membership(&others)?;
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

/// A crash between raft persisting a received snapshot and apply installing it leaves the
/// snapshot's file behind: install it now, before anything reads the state.
fn recover_snapshot(db: &Db, raft_storage: &RaftStorage, snapshots: &SnapshotFiles) -> Result<()> {
    let meta = raft_storage.snapshot_metadata();
    if meta.index <= db.get_meta_u64(meta::APPLIED_INDEX)? {
        return Ok(());
    }
    log::info!("raftkv: installing snapshot at index {} that a crash left uninstalled", meta.index);
    snapshots.install_received(meta)
}

fn bind_peer_url(url: &str) -> Result<std::net::TcpListener> {
    let addr = crate::transport::url_addr(url)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| Error::Config(format!("--listen-peer-urls {url:?}: not http://host:port")))?;
    std::net::TcpListener::bind(addr).map_err(|e| Error::Config(format!("listen tcp {addr}: {e}")))
}

/// The invariants a reopened member must satisfy before raft starts:
/// applied ≤ committed ≤ last index, and nothing applied is missing from the log's start.
fn check_recovered_state(raft_storage: &RaftStorage, applied: u64) -> Result<()> {
    let commit = raft_storage.hard_state().commit;
    let last = raft_storage.last_index();
    let snapshot = raft_storage.snapshot_metadata().index;
    let corrupt =
        |detail: String| Error::Storage(storage::Error::Corrupt { what: "recovered raft state".into(), detail });
    if commit > last {
        return Err(corrupt(format!("commit index {commit} beyond last log index {last}")));
    }
    // The commit index is written before the entries it covers are handed to apply, and both
    // share one WAL, so a recovered applied index can never be ahead of it.
    if applied > commit.max(snapshot) {
        return Err(corrupt(format!("applied index {applied} beyond commit index {commit}")));
    }
    if applied + 1 < raft_storage.first_index() {
        return Err(corrupt(format!(
            "applied index {applied} but the log starts at {}: entries in between are lost",
            raft_storage.first_index()
        )));
    }
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|source| Error::Spawn { name: name.to_string(), source })
}
