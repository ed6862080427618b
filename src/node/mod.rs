//! [`Node`]: a raftkv member embedded in a Rust program, with blocking etcd-style calls.
//!
//! Calls run on the caller's thread. Writes are checked (etcd's rules), encoded, proposed to the
//! raft thread through the [`Proposer`], and the caller blocks on its waiter until the entry is
//! applied or the request timeout passes. Linearizable reads ask the raft thread for a
//! ReadIndex, wait until that index is applied, then read the local store; serializable reads
//! skip the first two steps.
//!
//! The hot calls also come without the blocking (`put_then`, `read_barrier_then`, ...), for the
//! HTTP event loops: the caller passes a [`Reply`] that the apply or raft thread answers, and
//! gets a [`Ticket`] saying when to give up. The blocking calls are those plus a waiter.
//!
//! One file per concern: `kv`, `lease`, `watch`, `cluster`, `maintenance`, `auth`, and
//! [`checks`], etcd's checks of a request before it is proposed.
//!
//! Threads started here: `raftkv-run` (the run loop, under [`Node::start`]), `raftkv-publish`
//! (records this member's name and client URLs through raft until it is applied, retrying every
//! 500 ms or until stop), `raftkv-keepalive` (one per [`KeepAlive`] handle).

mod auth;
pub mod checks;
mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, RecvTimeoutError};
use parking_lot::{Mutex, RwLock};

use crate::alarm::{Alarms, Quota};
use crate::apply::{AppliedIndex, Response};
use crate::auth::{AuthInfo, AuthStore, Credentials};
use crate::cluster::Membership;
use crate::config::Config;
use crate::identity::Identity;
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::pb::internal_request::Request;
use crate::pb::{AlarmAction, AlarmRequest, AlarmType, Member, RequestHeader};
use crate::server::peer_service::PeerService;
use crate::server::propose::{wait_on, Proposer};
use crate::server::{NodeParts, Server};
use crate::snapshot::SnapshotFiles;
use crate::storage::Db;
use crate::transport::Transport;
use crate::wait::Reply;
use crate::watch::WatchHub;
use crate::{Error, Result};

pub use crate::server::propose::Ticket;
pub use lease::KeepAlive;
pub use watch::Watch;

/// How often a call whose simple token is ahead of this member looks at the applied index.
const TOKEN_INDEX_POLL: Duration = Duration::from_millis(2);

/// How long `raftkv-publish` waits between attempts.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);

/// A running member. Cloning gives another handle to the same member; it stops on
/// [`Node::stop`] or when the last handle of a member started with [`Node::start`] is dropped.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
    /// Who this handle's calls are from ([`Node::with_credentials`]); none for a handle that
    /// was given no credentials, whose calls are refused once auth is enabled.
    caller: Option<Arc<AuthInfo>>,
}

/// The caller of a handle without credentials (etcd's empty `AuthInfo`).
static NO_CALLER: AuthInfo = AuthInfo { username: String::new(), revision: 0 };

/// The handles the node API uses, and the threads it started.
struct Inner {
    cfg: Config,
    identity: Arc<Identity>,
    db: Arc<Db>,
    store: Arc<Store>,
    lessor: Arc<Lessor>,
    /// Changed only by the apply thread.
    auth: Arc<AuthStore>,
    /// Changed only by the apply thread.
    alarms: Arc<Alarms>,
    quota: Arc<Quota>,
    watches: Arc<WatchHub>,
    /// Changed only by the apply thread.
    membership: Arc<RwLock<Membership>>,
    applied: Arc<AppliedIndex>,
    proposer: Arc<Proposer>,
    /// What peers ask of this member; its lease calls are used here when this member leads,
    /// its HashKV always.
    peer_service: Arc<PeerService>,
    transport: Arc<Transport>,
    /// Where client snapshots are written before they are sent.
    snapshots: Arc<SnapshotFiles>,
    stop_tx: channel::Sender<()>,
    /// The `raftkv-run` thread when [`Node::start`] spawned the run loop.
    run_thread: Mutex<Option<JoinHandle<Result<()>>>>,
    /// `raftkv-publish` while this member's attributes are not recorded yet, and its stop.
    publisher: Mutex<Option<(channel::Sender<()>, JoinHandle<()>)>>,
    metrics: maintenance::NodeMetrics,
}

/// Who asks for a proposal: a client (refused on a learner, as etcd's) or the member itself
/// (a learner publishes its own attributes too).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Client,
    Member,
}

impl Node {
    /// Opens the member and runs it on a new thread (`raftkv-run`).
    pub fn start(cfg: Config) -> Result<Node> {
        let (server, node) = Node::open(cfg)?;
        let run_thread = crate::thread::spawn_named("raftkv-run", move || server.run())?;
        *node.inner.run_thread.lock() = Some(run_thread);
        Ok(node)
    }

    /// Opens the member without running its loop: the caller runs [`Server::run`] on a thread
    /// of its choice (the CLI uses the process main thread) and may call [`Node`] from others.
    pub fn open(cfg: Config) -> Result<(Server, Node)> {
        let (server, parts) = Server::open(cfg)?;
        let NodeParts {
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
            stop_tx,
            registry,
            grpc,
            stages,
        } = parts;
        let metrics = maintenance::NodeMetrics::new(registry, grpc, stages, identity.member_id);
        let inner = Inner {
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
            stop_tx,
            run_thread: Mutex::new(None),
            publisher: Mutex::new(None),
            metrics,
        };
        let node = Node { inner: Arc::new(inner), caller: None };
        node.publish_attributes()?;
        Ok((server, node))
    }

    /// Records this member's name and client URLs in the membership through raft, so every
    /// member lists them (etcd's `publish`). Retried from `raftkv-publish` until it is applied
    /// or the member stops; skipped when the record already says so.
    fn publish_attributes(&self) -> Result<()> {
        let cfg = &self.inner.cfg;
        let me = Member {
            id: self.member_id(),
            name: cfg.name.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
            ..Default::default()
        };
        fn published(node: &Node, me: &Member) -> bool {
            let membership = node.inner.membership.read();
            membership.get(me.id).is_some_and(|m| m.name == me.name && m.client_urls == me.client_urls)
        }
        if published(self, &me) {
            return Ok(());
        }
        let (stop_tx, stop_rx) = channel::bounded::<()>(1);
        // A weak handle, so the publisher never keeps a dropped member alive.
        let weak = Arc::downgrade(&self.inner);
        let thread = crate::thread::spawn_named("raftkv-publish", move || loop {
            let Some(node) = weak.upgrade().map(|inner| Node { inner, caller: None }) else { return };
            if published(&node, &me) {
                return;
            }
            match node.propose(Origin::Member, Request::MemberAttributes(me.clone())) {
                Ok(_) | Err(Error::Stopped) => return,
                Err(e) => log::info!("raftkv: publishing member attributes: {e}; retrying"),
            }
            drop(node);
            if stop_rx.recv_timeout(PUBLISH_RETRY) != Err(RecvTimeoutError::Timeout) {
                return;
            }
        })?;
        *self.inner.publisher.lock() = Some((stop_tx, thread));
        Ok(())
    }

    /// A handle to this member whose calls are made as the user `credentials` name (etcd's
    /// `AuthInfoFromCtx`): a token's user, else with `--client-cert-auth` the verified
    /// certificate's common name, else nobody. A token that names nobody (unknown, expired,
    /// garbage) is `invalid auth token`, whether or not auth is enabled, as in etcd.
    pub fn with_credentials(&self, credentials: &Credentials) -> Result<Node> {
        let auth = &self.inner.auth;
        let info = match (&credentials.token, &credentials.common_name) {
            (Some(token), _) => auth.info_from_token(token)?,
            (None, Some(name)) if self.inner.cfg.client_tls.client_cert_auth => auth.info_from_common_name(name),
            _ => return Ok(Node { inner: self.inner.clone(), caller: None }),
        };
        Ok(Node { inner: self.inner.clone(), caller: Some(Arc::new(info)) })
    }

    /// The raft index of a simple token's entry when this member has not applied it yet
    /// (the token may have been assigned a moment ago on another member).
    pub(crate) fn token_index_ahead(&self, credentials: &Credentials) -> Option<u64> {
        let mut parts = credentials.token.as_deref()?.split('.');
        let (_, index, None) = (parts.next()?, parts.next()?.parse::<u64>().ok()?, parts.next()) else { return None };
        (index > self.applied_index()).then_some(index)
    }

    /// etcd's `isValidSimpleToken` wait: until `index` is applied here, at most the request
    /// timeout. Polled rather than registered with the apply thread, so that a made-up index
    /// leaves nothing behind when the wait ends.
    pub(crate) fn wait_for_index(&self, index: u64) {
        let deadline = std::time::Instant::now() + self.inner.cfg.request_timeout();
        while self.applied_index() < index && std::time::Instant::now() < deadline && !self.is_stopped() {
            std::thread::sleep(TOKEN_INDEX_POLL);
        }
    }

    fn caller(&self) -> &AuthInfo {
        self.caller.as_deref().unwrap_or(&NO_CALLER)
    }

    /// etcd's last step of `doSerialize`: credentials checked at another auth revision than
    /// the store's now are old (the store changed while the read ran).
    fn check_auth_unchanged(&self) -> Result<()> {
        let revision = self.caller().revision;
        if revision != 0 && revision != self.inner.auth.revision() {
            return Err(Error::AuthOldRevision);
        }
        Ok(())
    }

    /// etcd's `IsAdminPermitted` for this handle's caller: the maintenance, membership and
    /// auth management calls etcd keeps for `root`.
    pub(crate) fn check_admin(&self) -> Result<()> {
        self.inner.auth.is_admin_permitted(self.caller())
    }

    /// etcd's `isWatchPermitted`: the range a watch would cover must be readable.
    pub(crate) fn check_watch(&self, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.inner.auth.is_range_permitted(self.caller(), key, range_end)
    }

    pub fn member_id(&self) -> u64 {
        self.inner.identity.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.identity.cluster_id
    }

    /// The member id of the current leader, 0 while there is none.
    pub fn leader_id(&self) -> u64 {
        self.inner.identity.raft().leader_id()
    }

    /// The store's current revision on this member.
    pub fn revision(&self) -> i64 {
        self.inner.store.current_revision()
    }

    /// Index of the last raft entry applied on this member.
    pub fn applied_index(&self) -> u64 {
        self.inner.applied.get()
    }

    /// Synced (fsynced) storage writes since start; with the number of writes it gives the
    /// group-commit ratio.
    pub fn storage_syncs(&self) -> u64 {
        self.inner.db.synced_writes()
    }

    /// The gRPC server's series, which the service layer counts every call in.
    pub fn grpc_metrics(&self) -> &crate::metrics::GrpcServer {
        &self.inner.metrics.grpc
    }

    /// The request stage timings, whose last stage (reply) the service layer observes.
    pub fn stages(&self) -> &crate::metrics::Stages {
        &self.inner.metrics.stages
    }

    /// Stops the member: signals its run loop and, if this handle's [`Node::start`] spawned
    /// it, waits until every thread has exited and returns how the loop ended. Later calls
    /// (from any handle) return `Ok(())`.
    pub fn stop(&self) -> Result<()> {
        let _ = self.inner.stop_tx.try_send(());
        let run_thread = self.inner.run_thread.lock().take();
        let outcome = match run_thread.map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => {
                Err(Error::Spawn { name: "raftkv-run".into(), source: std::io::Error::other("run loop panicked") })
            }
        };
        let publisher = self.inner.publisher.lock().take();
        if let Some((stop_tx, thread)) = publisher {
            let _ = stop_tx.try_send(());
            let _ = thread.join();
        }
        outcome
    }

    /// Whether the member has stopped (its calls answer `etcdserver: server stopped`): for
    /// callers that wait on something else, such as a watch, which stopping does not end.
    pub fn is_stopped(&self) -> bool {
        self.inner.proposer.is_stopped()
    }

    /// Proposes `request` and waits for the outcome of applying it.
    fn propose(&self, origin: Origin, request: Request) -> Result<Response> {
        wait_on(|reply| self.propose_response(origin, request, reply))
    }

    /// Proposes `request` without blocking; `reply` gets the typed outcome.
    fn propose_then<T: TryFrom<Response, Error = Response> + 'static>(
        &self,
        origin: Origin,
        request: Request,
        reply: Reply<T>,
    ) -> Ticket {
        let reply = reply.map(|response: Response| T::try_from(response).map_err(unexpected));
        self.propose_response(origin, request, reply)
    }

    fn propose_response(&self, origin: Origin, request: Request, reply: Reply<Response>) -> Ticket {
        if origin == Origin::Client && self.is_learner() {
            return self.inner.proposer.refuse(reply, Error::NotSupportedForLearner);
        }
        // etcd's quota servers: a write that would not fit raises NOSPACE, and is refused once
        // the alarm is applied (or failed to be), so whoever is told NOSPACE can list it.
        if origin == Origin::Client && !self.inner.quota.available(&request) {
            let alarm = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id(),
                alarm: AlarmType::Nospace as i32,
            };
            let raised = Reply::new(move |_: Result<Response>| reply.send(Err(Error::NoSpace)));
            return self.inner.proposer.propose(None, Request::Alarm(alarm), raised);
        }
        let header = (origin == Origin::Client).then(|| {
            let caller = self.caller();
            RequestHeader { id: 0, username: caller.username.clone(), auth_revision: caller.revision }
        });
        self.inner.proposer.propose(header, request, reply)
    }

    fn is_learner(&self) -> bool {
        self.inner.membership.read().get(self.member_id()).is_some_and(|m| m.is_learner)
    }

    /// etcd's checks at the start of a stream (watch, lease keepalive, snapshot): a learner
    /// serves none, and a client that requires a leader (gRPC's `hasleader` metadata) is
    /// refused while there is none.
    pub fn check_stream(&self, require_leader: bool) -> Result<()> {
        self.refuse_learner()?;
        if require_leader && self.leader_id() == 0 {
            return Err(Error::NoLeader);
        }
        Ok(())
    }

    /// The configuration the member was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Test hook (fault injection): drops the peer traffic between this member and `peers` in
    /// `direction` (to them, from them, or both: a network partition), until
    /// [`Node::heal_partition`].
    #[doc(hidden)]
    pub fn partition_from(&self, peers: &[u64], direction: crate::transport::Direction) {
        self.inner.transport.isolate(peers, direction);
    }

    #[doc(hidden)]
    pub fn heal_partition(&self) {
        self.inner.transport.heal();
    }

    /// The address this member accepts peer connections on, if it listens.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.transport.local_addr()
    }

    /// Answers `ready` with `value` once this member has applied every write acknowledged
    /// before the call (etcd's linearizable read): after a ReadIndex round, when that index is
    /// applied. A serializable read needs no barrier and is answered at once. The answer comes
    /// from the raft or the apply thread, so whatever `ready` does must be short: hand the
    /// read itself to another thread.
    pub fn read_barrier_then<T: Send + 'static>(&self, serializable: bool, value: T, ready: Reply<T>) -> Ticket {
        let proposer = &self.inner.proposer;
        if serializable {
            ready.send(Ok(value));
            return proposer.ticket();
        }
        // etcd: a learner answers serializable reads only.
        if self.is_learner() {
            return proposer.refuse(ready, Error::NotSupportedForLearner);
        }
        proposer.read_index_then(value, ready)
    }
}

fn unexpected(response: Response) -> Error {
    Error::Decode { what: "apply response", detail: format!("unexpected {response:?}") }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(thread) = self.run_thread.lock().take() {
            let _ = self.stop_tx.try_send(());
            let _ = thread.join();
        }
    }
}
