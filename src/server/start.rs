//! [`Server::open`] as the named steps of a member's start: open storage → identity
//! ([`super::bootstrap`]) → recover → raft config → wire → spawn → the initial corruption
//! check ([`super::corrupt`]). Runs once, on the thread that opens the member; every thread it
//! starts is stopped by `Server::shutdown`, also when the check refuses the start.

use std::sync::Arc;

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use raft::RawNode;
use slog::Drain as _;

use super::corrupt::Checker;
use super::peer_service::PeerService;
use super::propose::{Proposer, ProposerParts, RequestIds};
use super::{bootstrap, NodeParts, Server, Worker};
use super::{APPLY_QUEUE_MAX, EXPIRED_LEASE_QUEUE_MAX, PEER_EVENT_QUEUE_MAX, RAFT_REQUEST_QUEUE_MAX};
use crate::alarm::{Alarms, Quota};
use crate::apply::{follow_membership, AppliedIndex, Applier, ApplyContext, ApplyMetrics, Progress};
use crate::auth::AuthStore;
use crate::cluster::Membership;
use crate::compactor;
use crate::config::Config;
use crate::identity::Identity;
use crate::lease::{self, Lessor};
use crate::metrics::{GrpcServer, Registry, Stages};
use crate::mvcc::{RemovalPace, Store};
use crate::pb::internal_request::Request;
use crate::pb::{CompactionRequest, LeaseCheckpointRequest};
use crate::raft::metrics::RaftMetrics;
use crate::raft::node::{RaftChannels, RaftNode, RaftParts};
use crate::raft::storage::RaftStorage;
use crate::raft::RaftStatus;
use crate::snapshot::SnapshotFiles;
use crate::storage::{self, meta, Db};
use crate::thread::spawn_vital;
use crate::transport::Transport;
use crate::wait::Wait;
use crate::watch::WatchHub;
use crate::{Error, Result};

use super::fifo::Fifo;

/// The durable state of a member, read back and checked.
struct Recovered {
    /// Whether the data dir held this member before this start (etcd's `memberInitialized`).
    initialized: bool,
    db: Arc<Db>,
    raft_storage: RaftStorage,
    snapshots: Arc<SnapshotFiles>,
    member_id: u64,
    cluster_id: u64,
    membership: Membership,
    store: Store,
    lessor: Lessor,
    auth: AuthStore,
    alarms: Alarms,
    progress: Progress,
}

impl Server {
    /// Opens (or bootstraps) the member's data, starts its raft and apply threads, and returns
    /// the server, whose [`Server::run`] must then be called, and the parts of its
    /// [`crate::Node`].
    pub fn open(cfg: Config) -> Result<(Server, NodeParts)> {
        cfg.validate()?;
        let db = open_storage(&cfg)?;
        let recovered = recover(&cfg, db)?;
        let initialized = recovered.initialized;
        let (mut server, parts, checker) = wire_and_spawn(cfg, recovered)?;
        // As etcd: only a member that had data (a new one has nothing to compare yet), with
        // the transport up so peers answer it, before its run loop applies anything (its
        // revision holds still) and before `Node`/`embed` serve its clients.
        if parts.cfg.initial_corrupt_check && initialized {
            if let Err(e) = checker.check_initial() {
                server.shutdown();
                return Err(e);
            }
        }
        Ok((server, parts))
    }
}

fn open_storage(cfg: &Config) -> Result<Arc<Db>> {
    let data_dir = |e: String| Error::DataDir { path: cfg.data_dir.display().to_string(), reason: e };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| data_dir(e.to_string()))?;
    Ok(Arc::new(Db::open(&cfg.data_dir).map_err(|e| data_dir(e.to_string()))?))
}

/// Who this member is, and everything it had applied, checked against its raft log.
fn recover(cfg: &Config, db: Arc<Db>) -> Result<Recovered> {
    let initialized = db.get_meta_u64(meta::MEMBER_ID)? != 0;
    let mut raft_storage = RaftStorage::open(db.clone())?;
    let (member_id, cluster_id) = bootstrap::identity(cfg, &db, &mut raft_storage)?;
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
    let store = Store::open(db.clone())?;
    let lessor = Lessor::open(&db, cfg.min_lease_ttl(), store.take_restored_leases())?;
    let auth = AuthStore::open(&db, &cfg.auth_token, cfg.auth_token_ttl)?;
    let alarms = Alarms::open(&db)?;
    if cfg.quota_backend_bytes > crate::alarm::MAX_QUOTA_BYTES {
        log::warn!(
            "raftkv: --quota-backend-bytes {} exceeds the maximum etcd recommends ({})",
            cfg.quota_backend_bytes,
            crate::alarm::MAX_QUOTA_BYTES
        );
    }
    if cfg.bcrypt_cost() != cfg.bcrypt_cost {
        log::warn!(
            "raftkv: --bcrypt-cost {} is outside {:?}; using the default {} instead",
            cfg.bcrypt_cost,
            crate::auth::BCRYPT_COST_RANGE,
            cfg.bcrypt_cost()
        );
    }
    log::info!(
        "raftkv: member {member_id:x} of cluster {cluster_id:x} opened {} (applied index {applied_index}, revision {})",
        cfg.data_dir.display(),
        store.current_revision()
    );
    let progress = Progress {
        applied_index,
        applied_term,
        snapshot_index: raft_storage.snapshot_metadata().index,
        conf_state: raft_storage.conf_state().clone(),
    };
    Ok(Recovered {
        initialized,
        db,
        raft_storage,
        snapshots,
        member_id,
        cluster_id,
        membership,
        store,
        lessor,
        auth,
        alarms,
        progress,
    })
}

/// The channels between the member's threads.
struct Channels {
    request: (Sender<crate::raft::RaftRequest>, Receiver<crate::raft::RaftRequest>),
    peer: (Sender<crate::transport::PeerEvent>, Receiver<crate::transport::PeerEvent>),
    /// One report per apply job; jobs are bounded by admission control.
    progress: (Sender<crate::raft::ApplyProgress>, Receiver<crate::raft::ApplyProgress>),
    apply: (Sender<crate::raft::Apply>, Receiver<crate::raft::Apply>),
    error: (Sender<Error>, Receiver<Error>),
    expired: (Sender<Vec<i64>>, Receiver<Vec<i64>>),
    stop: (Sender<()>, Receiver<()>),
}

impl Channels {
    fn new() -> Channels {
        Channels {
            request: channel::bounded(RAFT_REQUEST_QUEUE_MAX),
            peer: channel::bounded(PEER_EVENT_QUEUE_MAX),
            progress: channel::unbounded(),
            apply: channel::bounded(APPLY_QUEUE_MAX),
            error: channel::bounded(1),
            expired: channel::bounded(EXPIRED_LEASE_QUEUE_MAX),
            stop: channel::bounded(1),
        }
    }
}

/// Builds the member's parts, each with the handles it uses, and starts its threads; the
/// corruption checker comes back for the initial check.
fn wire_and_spawn(cfg: Config, r: Recovered) -> Result<(Server, NodeParts, Arc<Checker>)> {
    let Recovered {
        initialized: _,
        db,
        raft_storage,
        snapshots,
        member_id,
        cluster_id,
        membership,
        store,
        lessor,
        auth,
        alarms,
        progress,
    } = r;
    let raft_cfg = cfg.raft_config(member_id, progress.applied_index);
    let logger = slog::Logger::root(slog_stdlog::StdLog.fuse(), slog::o!());
    let raw = RawNode::new(&raft_cfg, raft_storage, &logger)?;
    let ch = Channels::new();

    let registry = Registry::default();
    let stages = Stages::new(&registry);
    let raft_status = Arc::new(RaftStatus::default());
    let identity = Arc::new(Identity::new(member_id, cluster_id, raft_status.clone()));
    store.register_metrics(&registry);
    lessor.register_metrics(&registry);
    let store = Arc::new(store);
    let lessor = Arc::new(lessor);
    let auth = Arc::new(auth);
    let alarms = Arc::new(alarms);
    let quota = Arc::new(Quota::new(db.clone(), cfg.quota_backend_bytes));
    let membership = Arc::new(RwLock::new(membership));
    let watches = Arc::new(WatchHub::new(store.current_revision(), cfg.watch_progress_notify_interval));
    let wait = Arc::new(Wait::default());
    let applied = Arc::new(AppliedIndex::default());
    applied.set(progress.applied_index);
    let proposer = Arc::new(Proposer::new(
        ProposerParts {
            ids: RequestIds::new(member_id),
            request_tx: ch.request.0.clone(),
            wait: wait.clone(),
            raft: raft_status.clone(),
            applied: applied.clone(),
            request_timeout: cfg.request_timeout(),
            max_request_bytes: cfg.max_request_bytes,
        },
        &registry,
    ));
    let peer_service = Arc::new(PeerService::new(
        identity.clone(),
        lessor.clone(),
        store.clone(),
        membership.clone(),
        proposer.clone(),
    ));
    let listener = match cfg.listen_peer_urls.first() {
        None => None,
        Some(url) => Some(crate::config::bind("--listen-peer-urls", url)?),
    };
    let tls = crate::transport::PeerTls::from_config(&cfg)?;
    let transport = Transport::start(
        member_id,
        cluster_id,
        listener,
        ch.peer.0.clone(),
        snapshots.clone(),
        peer_service.clone(),
        tls,
    )?;
    transport.register_metrics(&registry);
    follow_membership(&transport, &membership.read());

    let fail_request = {
        let proposer = proposer.clone();
        Box::new(move |id, e| proposer.fail(id, e))
    };
    let (raft_stop_tx, raft_stop_rx) = channel::bounded(1);
    let node = RaftNode::new(
        raw,
        RaftParts {
            db: db.clone(),
            channels: RaftChannels {
                request_rx: ch.request.1,
                peer_rx: ch.peer.1,
                progress_rx: ch.progress.1,
                stop_rx: raft_stop_rx,
                apply_tx: ch.apply.0,
                error_tx: ch.error.0.clone(),
            },
            status: raft_status,
            transport: transport.clone(),
            fail_request,
            tick_interval: cfg.tick_interval(),
            catchup_entries: cfg.snapshot_catchup_entries,
            metrics: RaftMetrics::new(&registry, stages.clone()),
        },
    );
    // A panic on any of these threads stops the member (spawn_vital); the raft thread's
    // reports its own errors on the same channel.
    let fatal_tx = ch.error.0.clone();
    let raft =
        Worker { stop_tx: raft_stop_tx, thread: spawn_vital("raftkv-raft", fatal_tx.clone(), move || node.run())? };
    let lessor_worker = {
        let (stop_tx, stop_rx) = channel::bounded(1);
        let (lessor, proposer, expired_tx) = (lessor.clone(), proposer.clone(), ch.expired.0);
        let checkpoint_interval = cfg.lease_checkpoint_interval();
        let thread = spawn_vital("raftkv-lessor", fatal_tx.clone(), move || {
            lease::run(&lessor, checkpoint_interval, &expired_tx, &stop_rx, |checkpoints| {
                proposer.propose_nowait(Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints }))
            })
        })?;
        Worker { stop_tx, thread }
    };
    let compactor_gate = Arc::new(compactor::Gate::default());
    let compactor = match cfg.auto_compaction {
        None => None,
        Some(mode) => {
            let (stop_tx, stop_rx) = channel::bounded(1);
            let (gate, store, proposer) = (compactor_gate.clone(), store.clone(), proposer.clone());
            let thread = spawn_vital("raftkv-compactor", fatal_tx.clone(), move || {
                compactor::run(
                    mode,
                    &gate,
                    &stop_rx,
                    || store.current_revision(),
                    || store.compact_revision(),
                    |revision| {
                        proposer.propose_nowait(Request::Compaction(CompactionRequest { revision, physical: false }))
                    },
                )
            })?;
            Some(Worker { stop_tx, thread })
        }
    };
    let checker = Arc::new(Checker::new(
        identity.clone(),
        store.clone(),
        membership.clone(),
        transport.clone(),
        proposer.clone(),
        cfg.request_timeout(),
    ));
    let corrupt_check = if cfg.corrupt_check_time.is_zero() {
        None
    } else {
        let (stop_tx, stop_rx) = channel::bounded(1);
        let (checker, interval) = (checker.clone(), cfg.corrupt_check_time);
        let thread = spawn_vital("raftkv-corrupt-check", fatal_tx.clone(), move || checker.run(interval, &stop_rx))?;
        Some(Worker { stop_tx, thread })
    };
    let watch_sync = {
        let (stop_tx, stop_rx) = channel::bounded(1);
        let (watches, store, identity) = (watches.clone(), store.clone(), identity.clone());
        let thread = spawn_vital("raftkv-watch-sync", fatal_tx.clone(), move || {
            watches.run_sync(&store, &stop_rx, &|h| identity.fill_header(h))
        })?;
        Worker { stop_tx, thread }
    };
    let removal = {
        let (stop_tx, stop_rx) = channel::bounded(1);
        let (store, error_tx) = (store.clone(), ch.error.0.clone());
        let pace = RemovalPace { batch_rows_max: cfg.compaction_batch_limit, pause: cfg.compaction_sleep_interval };
        let thread = spawn_vital("raftkv-kv-compact", fatal_tx.clone(), move || {
            // Fatal, as a failed apply write: the run loop stops the member.
            store.run_removal(pace, &stop_rx, |e| drop(error_tx.try_send(e)))
        })?;
        Worker { stop_tx, thread }
    };
    let fifo = Fifo::start("raftkv-apply", fatal_tx)?;
    let apply_ctx = ApplyContext {
        identity: identity.clone(),
        db: db.clone(),
        store: store.clone(),
        lessor: lessor.clone(),
        auth: auth.clone(),
        alarms: alarms.clone(),
        quota: quota.clone(),
        membership: membership.clone(),
        watches: watches.clone(),
        wait: wait.clone(),
        applied: applied.clone(),
        snapshots: snapshots.clone(),
        transport: transport.clone(),
        snapshot_count: cfg.snapshot_count,
        warning_apply_duration: cfg.warning_apply_duration,
        metrics: ApplyMetrics::new(&registry, stages.clone()),
    };
    let applier = Arc::new(Applier::new(apply_ctx, Arc::new(Mutex::new(progress)), ch.progress.0));
    let server = Server {
        identity: identity.clone(),
        db: db.clone(),
        lessor: lessor.clone(),
        proposer: proposer.clone(),
        transport: transport.clone(),
        wait,
        applied: applied.clone(),
        apply_rx: ch.apply.1,
        expired_rx: ch.expired.1,
        error_rx: ch.error.1,
        error_tx: ch.error.0,
        stop_rx: ch.stop.1,
        raft: Some(raft),
        lessor_worker: Some(lessor_worker),
        compactor_gate,
        compactor,
        corrupt_check,
        watch_sync: Some(watch_sync),
        removal: Some(removal),
        fifo,
        applier,
    };
    let parts = NodeParts {
        cfg,
        identity,
        db,
        store,
        lessor,
        auth,
        alarms,
        quota,
        watches,
        membership,
        applied,
        proposer,
        peer_service,
        transport,
        snapshots,
        stop_tx: ch.stop.0,
        grpc: GrpcServer::new(&registry),
        stages,
        registry,
    };
    Ok((server, parts, checker))
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
