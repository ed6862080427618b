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
//! Start-up is `start`'s named steps; a new member's identity is `bootstrap`'s; a data dir
//! made offline from a backup is [`restore`]'s.
//!
//! Shutdown order (written once, in `Server::shutdown`): stop the lessor, the compactor and
//! the corruption check (they propose); stop the raft thread so no new entries are committed;
//! the peer transport; then the FIFO thread (the running job finishes, queued ones are dropped: they are in the
//! durable log and are re-applied on restart); the watch-sync and the kv-compact threads
//! (a removal left unfinished resumes at the next start); then fail every remaining waiter
//! with `etcdserver: server stopped`; flush the memtables.

mod bootstrap;
pub mod corrupt;
pub mod fifo;
pub mod peer_service;
pub mod propose;
pub mod restore;
mod start;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{select, Receiver, Sender};
use parking_lot::RwLock;

use crate::apply::{AppliedIndex, Applier, Response};
use crate::cluster::Membership;
use crate::compactor;
use crate::config::Config;
use crate::identity::Identity;
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::pb::internal_request::Request;
use crate::pb::LeaseRevokeRequest;
use crate::raft::{Apply, LeaderChange};
use crate::snapshot::SnapshotFiles;
use crate::storage::Db;
use crate::transport::Transport;
use crate::wait::Wait;
use crate::watch::WatchHub;
use crate::{Error, Result};
use fifo::Fifo;
use peer_service::PeerService;
use propose::Proposer;

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

/// How long the run loop waits for the raft thread's report once its channels closed.
const RAFT_EXIT_REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The handles a [`crate::Node`] is made of: what its calls read, and how they propose.
pub struct NodeParts {
    pub cfg: Config,
    pub identity: Arc<Identity>,
    pub db: Arc<Db>,
    pub store: Arc<Store>,
    pub lessor: Arc<Lessor>,
    pub auth: Arc<crate::auth::AuthStore>,
    pub alarms: Arc<crate::alarm::Alarms>,
    pub quota: Arc<crate::alarm::Quota>,
    pub watches: Arc<WatchHub>,
    pub membership: Arc<RwLock<Membership>>,
    pub applied: Arc<AppliedIndex>,
    pub proposer: Arc<Proposer>,
    pub peer_service: Arc<PeerService>,
    pub transport: Arc<Transport>,
    pub snapshots: Arc<SnapshotFiles>,
    pub stop_tx: Sender<()>,
    /// Every series of the member; the gRPC server's and the request stages' are observed
    /// above the node, by the service layer.
    pub registry: crate::metrics::Registry,
    pub grpc: crate::metrics::GrpcServer,
    pub stages: crate::metrics::Stages,
}

/// A thread of the member and the channel that stops it.
struct Worker {
    stop_tx: Sender<()>,
    thread: JoinHandle<()>,
}

impl Worker {
    fn stop(self, role: &str) {
        let _ = self.stop_tx.try_send(());
        if self.thread.join().is_err() {
            log::error!("raftkv: the {role} thread panicked");
        }
    }
}

/// A started member whose run loop has not been entered yet.
pub struct Server {
    identity: Arc<Identity>,
    db: Arc<Db>,
    lessor: Arc<Lessor>,
    proposer: Arc<Proposer>,
    transport: Arc<Transport>,
    wait: Arc<Wait<Response>>,
    applied: Arc<AppliedIndex>,
    apply_rx: Receiver<Apply>,
    expired_rx: Receiver<Vec<i64>>,
    error_rx: Receiver<Error>,
    /// For apply jobs to report a fatal error; the raft thread has its own clone.
    error_tx: Sender<Error>,
    stop_rx: Receiver<()>,
    raft: Option<Worker>,
    lessor_worker: Option<Worker>,
    /// Opened while this member leads (etcd's compactor Resume/Pause).
    compactor_gate: Arc<compactor::Gate>,
    compactor: Option<Worker>,
    /// `raftkv-corrupt-check`, with `--experimental-corrupt-check-time`.
    corrupt_check: Option<Worker>,
    watch_sync: Option<Worker>,
    /// `raftkv-kv-compact`: deletes compacted revisions off the apply thread.
    removal: Option<Worker>,
    fifo: Fifo,
    applier: Arc<Applier>,
}

impl Server {
    /// The run loop. Returns when stopped (`Ok`) or after a fatal error (`Err`), with every
    /// thread of the member joined either way.
    pub fn run(mut self) -> Result<()> {
        let outcome = loop {
            select! {
                recv(self.apply_rx) -> apply => match apply {
                    Ok(apply) => self.on_apply(apply),
                    // The raft thread is gone, which it never is before shutdown unless it
                    // failed: its error is on the error channel, or a panic's report is about
                    // to be (its channels close as it unwinds, before the report is sent).
                    Err(_) => {
                        break Err(self.error_rx.recv_timeout(RAFT_EXIT_REPORT_WAIT).unwrap_or_else(|_| {
                            Error::Panicked { thread: "raftkv-raft".into(), message: "ended without a report".into() }
                        }))
                    }
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
                // A fatal error reported before the stop wins: a caller released with
                // `Stopped` by that error must see it from `stop`.
                recv(self.stop_rx) -> _ => break self.error_rx.try_recv().map_or(Ok(()), Err),
            }
        };
        if let Err(e) = &outcome {
            log::error!("raftkv: member {:x} stopping after fatal error: {e}", self.identity.member_id);
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
            if let Err(e) = applier.apply(apply.snapshot, apply.entries, apply.handed_off) {
                let _ = error_tx.try_send(e);
            }
        });
    }

    /// Leadership moved: the leader's lessor counts leases down, followers' never expire, and
    /// only the leader's compactor runs (etcd's `raftReadyHandler.updateLeadership`).
    fn on_leader_change(&mut self, change: LeaderChange) {
        if change.is_self {
            self.lessor.promote();
            self.compactor_gate.resume();
        } else {
            self.lessor.demote();
            self.compactor_gate.pause();
        }
    }

    /// Revokes expired leases through raft, without waiting: the loop must not block, and a
    /// revoke that gets lost is reported again by the lessor.
    fn on_expired_leases(&mut self, ids: Vec<i64>) {
        for id in ids {
            self.proposer.propose_nowait(Request::LeaseRevoke(LeaseRevokeRequest { id }));
        }
    }

    fn shutdown(&mut self) {
        // The lessor, compactor and corruption check first: they propose, and nothing should
        // be proposed while raft stops.
        let proposers = [
            ("lessor", self.lessor_worker.take()),
            ("compactor", self.compactor.take()),
            ("corrupt check", self.corrupt_check.take()),
        ];
        for (role, worker) in proposers {
            if let Some(worker) = worker {
                worker.stop(role);
            }
        }
        // Raft next, so nothing new is committed.
        if let Some(raft) = self.raft.take() {
            raft.stop("raft");
        }
        // With raft gone, peers' messages have nowhere to go.
        self.transport.stop();
        self.fifo.stop();
        // After apply: nothing new to deliver. Watchers stay registered; their receivers see
        // no more events and the member reports stopped.
        if let Some(watch_sync) = self.watch_sync.take() {
            watch_sync.stop("watch sync");
        }
        // After apply: no new compaction to remove. The batch in progress finishes (the rest
        // resumes at the next start); physical compactions still waiting are told stopped.
        if let Some(removal) = self.removal.take() {
            removal.stop("kv compact");
        }
        self.wait.close();
        self.applied.close();
        // Nothing writes any more: leave no WAL for the next start to replay.
        if let Err(e) = self.db.flush() {
            log::warn!("raftkv: flushing memtables at stop: {e}");
        }
        log::info!("raftkv: member {:x} stopped", self.identity.member_id);
    }
}
