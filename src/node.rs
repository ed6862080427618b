//! [`Node`]: a raftkv member embedded in a Rust program, with blocking etcd-style calls.
//!
//! Calls run on the caller's thread. Writes are checked (etcd's rules), encoded, proposed to the
//! raft thread, and the caller blocks on its waiter until the entry is applied or the request
//! timeout passes. Linearizable reads ask the raft thread for a ReadIndex, wait until that index
//! is applied, then read the local store; serializable reads skip the first two steps.
//!
//! The hot calls also come without the blocking (`put_then`, `read_barrier_then`, ...), for the
//! HTTP event loops: the caller passes a [`Reply`] that the apply or raft thread answers, and
//! gets a [`Ticket`] saying when to give up. The blocking calls are those plus a waiter.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::{self, RecvTimeoutError, SendTimeoutError};
use parking_lot::Mutex;
use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType};

use crate::apply::{kv, Response};
use crate::cluster::Change;
use crate::config::Config;
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::raft::{Proposal, RaftRequest};
use crate::server::wait::{oneshot, Reply};
use crate::server::{Server, Shared, MAX_APPLY_LAG};
use crate::watch::{channel_sink, Sink, WatchHub, WatchSpec};
use crate::{Error, Result};

/// A running member. Cloning gives another handle to the same member; it stops on
/// [`Node::stop`] or when the last handle of a member started with [`Node::start`] is dropped.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    stop_tx: channel::Sender<()>,
    /// The `raftkv-run` thread when [`Node::start`] spawned the run loop.
    run_thread: Mutex<Option<JoinHandle<Result<()>>>>,
    /// `raftkv-publish` while this member's attributes are not recorded yet.
    publisher: Mutex<Option<JoinHandle<()>>>,
}

impl Node {
    /// Opens the member and runs it on a new thread (`raftkv-run`).
    pub fn start(cfg: Config) -> Result<Node> {
        let (server, node) = Node::open(cfg)?;
        let run_thread = std::thread::Builder::new()
            .name("raftkv-run".into())
            .spawn(move || server.run())
            .map_err(|source| Error::Spawn { name: "raftkv-run".into(), source })?;
        *node.inner.run_thread.lock() = Some(run_thread);
        Ok(node)
    }

    /// Opens the member without running its loop: the caller runs [`Server::run`] on a thread
    /// of its choice (the CLI uses the process main thread) and may call [`Node`] from others.
    pub fn open(cfg: Config) -> Result<(Server, Node)> {
        let (server, handles) = Server::open(cfg)?;
        let inner = Inner {
            shared: handles.shared,
            stop_tx: handles.stop_tx,
            run_thread: Mutex::new(None),
            publisher: Mutex::new(None),
        };
        let node = Node { inner: Arc::new(inner) };
        node.publish_attributes()?;
        Ok((server, node))
    }

    /// Records this member's name and client URLs in the membership through raft, so every
    /// member lists them (etcd's `publish`). Retried from `raftkv-publish` until it is applied
    /// or the member stops; skipped when the record already says so.
    fn publish_attributes(&self) -> Result<()> {
        let shared = &self.inner.shared;
        let cfg = &shared.cfg;
        let me = Member {
            id: shared.member_id,
            name: cfg.name.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
            ..Default::default()
        };
        fn published(node: &Node, me: &Member) -> bool {
            let membership = node.inner.shared.membership.read();
            membership.get(me.id).is_some_and(|m| m.name == me.name && m.client_urls == me.client_urls)
        }
        if published(self, &me) {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        let thread = std::thread::Builder::new()
            .name("raftkv-publish".into())
            .spawn(move || loop {
                // A weak handle, so the publisher never keeps a dropped member alive.
                let Some(node) = weak.upgrade().map(|inner| Node { inner }) else { return };
                if published(&node, &me) || node.inner.shared.wait.is_closed() {
                    return;
                }
                match node.propose_internal(Request::MemberAttributes(me.clone())) {
                    Ok(_) | Err(Error::Stopped) => return,
                    Err(e) => log::info!("raftkv: publishing member attributes: {e}; retrying"),
                }
                drop(node);
                std::thread::sleep(std::time::Duration::from_millis(500));
            })
            .map_err(|source| Error::Spawn { name: "raftkv-publish".into(), source })?;
        *self.inner.publisher.lock() = Some(thread);
        Ok(())
    }

    pub fn member_id(&self) -> u64 {
        self.inner.shared.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.shared.cluster_id
    }

    /// The member id of the current leader, 0 while there is none.
    pub fn leader_id(&self) -> u64 {
        self.inner.shared.raft.leader_id()
    }

    /// The store's current revision on this member.
    pub fn revision(&self) -> i64 {
        self.inner.shared.store.current_revision()
    }

    /// Index of the last raft entry applied on this member.
    pub fn applied_index(&self) -> u64 {
        self.inner.shared.applied.get()
    }

    /// Synced (fsynced) storage writes since start; with the number of writes it gives the
    /// group-commit ratio.
    pub fn storage_syncs(&self) -> u64 {
        self.inner.shared.db.synced_writes()
    }

    /// Reads keys (etcd `Range`).
    pub fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.check_range(&req)?;
        let req = wait_on(|ready| self.read_barrier_then(req.serializable, req, ready))?;
        self.range_local(req)
    }

    /// The checks [`Node::range`] makes before reading.
    pub fn check_range(&self, req: &RangeRequest) -> Result<()> {
        kv::check_range(req)
    }

    /// Reads a checked range from what this member has applied: the end of a [`Node::range`]
    /// whose barrier passed in [`Node::read_barrier_then`].
    pub fn range_local(&self, req: RangeRequest) -> Result<RangeResponse> {
        let mut resp = kv::range(&self.inner.shared.store, &req)?;
        self.inner.shared.fill_header(&mut resp.header);
        Ok(resp)
    }

    /// Writes one key (etcd `Put`).
    pub fn put(&self, req: PutRequest) -> Result<PutResponse> {
        wait_on(|reply| self.put_then(req, reply))
    }

    /// [`Node::put`] without blocking: `reply` is answered once the write is applied (on the
    /// apply thread) or refused (maybe at once, on this thread).
    pub fn put_then(&self, req: PutRequest, reply: Reply<PutResponse>) -> Ticket {
        if let Err(e) = kv::check_put(&req) {
            return self.refuse(reply, e);
        }
        let reply = reply.map(|response| match response {
            Response::Put(resp) => Ok(resp),
            other => Err(unexpected(other)),
        });
        self.propose_then(Request::Put(req), reply)
    }

    /// Deletes a key or a range (etcd `DeleteRange`).
    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        wait_on(|reply| self.delete_range_then(req, reply))
    }

    /// [`Node::delete_range`] without blocking, answered as [`Node::put_then`] is.
    pub fn delete_range_then(&self, req: DeleteRangeRequest, reply: Reply<DeleteRangeResponse>) -> Ticket {
        if let Err(e) = kv::check_delete(&req) {
            return self.refuse(reply, e);
        }
        let reply = reply.map(|response| match response {
            Response::DeleteRange(resp) => Ok(resp),
            other => Err(unexpected(other)),
        });
        self.propose_then(Request::DeleteRange(req), reply)
    }

    /// Runs a transaction (etcd `Txn`). A read-only one is served locally after the read
    /// barrier, on one revision, without going through raft (etcd's `isTxnReadonly`).
    pub fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        self.check_txn(&req)?;
        if kv::is_read_only(&req) {
            let req = wait_on(|ready| self.read_barrier_then(kv::is_serializable(&req), req, ready))?;
            return self.txn_local(req);
        }
        wait_on(|reply| self.txn_then(req, reply))
    }

    /// The checks [`Node::txn`] makes first.
    pub fn check_txn(&self, req: &TxnRequest) -> Result<()> {
        kv::check_txn(req, self.inner.shared.cfg.max_txn_ops)
    }

    /// Whether a transaction only reads: [`Node::txn_local`] may run it after the read barrier
    /// ([`Node::read_barrier_then`], serializable if [`Node::txn_is_serializable`]).
    pub fn txn_is_read_only(req: &TxnRequest) -> bool {
        kv::is_read_only(req)
    }

    pub fn txn_is_serializable(req: &TxnRequest) -> bool {
        kv::is_serializable(req)
    }

    /// Runs a checked read-only transaction on what this member has applied, on one revision.
    pub fn txn_local(&self, req: TxnRequest) -> Result<TxnResponse> {
        let shared = &self.inner.shared;
        let mut resp = kv::txn(&mut shared.store.pinned(), &req, &shared.lessor)?;
        shared.fill_header(&mut resp.header);
        Ok(resp)
    }

    /// Proposes a transaction without blocking, answered as [`Node::put_then`] is (read-only
    /// ones too, through raft; [`Node::txn`] serves those locally).
    pub fn txn_then(&self, req: TxnRequest, reply: Reply<TxnResponse>) -> Ticket {
        if let Err(e) = self.check_txn(&req) {
            return self.refuse(reply, e);
        }
        let reply = reply.map(|response| match response {
            Response::Txn(resp) => Ok(resp),
            other => Err(unexpected(other)),
        });
        self.propose_then(Request::Txn(req), reply)
    }

    /// Discards the history before a revision (etcd `Compact`). Returns once the old revisions
    /// are physically gone.
    pub fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse> {
        match self.propose(Request::Compaction(req))? {
            Response::Compaction(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a lease (etcd `LeaseGrant`). With `id` 0 the server picks a positive id.
    pub fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if req.ttl > crate::lease::MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        if req.id == 0 {
            // Chosen before proposing, so every member applies the same id (etcd's rule).
            req.id = (self.inner.shared.request_ids.next() & (i64::MAX as u64)) as i64;
        }
        match self.propose(Request::LeaseGrant(req))? {
            Response::LeaseGrant(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a lease and its keys (etcd `LeaseRevoke`). An unknown lease is found out when
    /// the revoke is applied: this member may not have applied a grant made elsewhere yet.
    pub fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        match self.propose(Request::LeaseRevoke(req))? {
            Response::LeaseRevoke(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    /// Restarts a lease's countdown (etcd `LeaseKeepAlive`, one message). An unknown lease
    /// answers TTL 0, as etcd does. Only the leader counts leases down, so a follower forwards
    /// the call to it.
    pub fn lease_keep_alive(&self, req: LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        match self.forward_to_leader(PeerRequest { request: Some(peer_request::Request::KeepAlive(req.clone())) })? {
            None => local_keep_alive(&self.inner.shared, &req),
            Some(peer_response::Response::KeepAlive(resp)) => Ok(resp),
            Some(other) => Err(peer_error(other)),
        }
    }

    /// Keeps lease `id` alive from a named thread (`raftkv-keepalive`) that renews it every
    /// third of its TTL, as etcd's client does, until the returned handle is dropped or the
    /// lease is gone (revoked or expired). [`KeepAlive::ttl`] reports the last renewal.
    pub fn keep_alive(&self, id: i64) -> Result<KeepAlive> {
        let first = self.lease_keep_alive(LeaseKeepAliveRequest { id })?;
        if first.ttl <= 0 {
            return Err(Error::LeaseNotFound);
        }
        let (stop_tx, stop_rx) = channel::bounded::<()>(1);
        let ttl = Arc::new(std::sync::atomic::AtomicI64::new(first.ttl));
        let (node, last) = (self.clone(), ttl.clone());
        let thread = std::thread::Builder::new()
            .name("raftkv-keepalive".into())
            .spawn(move || loop {
                let period = std::time::Duration::from_millis(
                    (last.load(std::sync::atomic::Ordering::Relaxed).max(1) as u64 * 1000) / 3,
                );
                if stop_rx.recv_timeout(period) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                match node.lease_keep_alive(LeaseKeepAliveRequest { id }) {
                    Ok(resp) if resp.ttl > 0 => last.store(resp.ttl, std::sync::atomic::Ordering::Relaxed),
                    // The lease is gone (or the member stopped): nothing left to keep alive.
                    _ => {
                        last.store(0, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                }
            })
            .map_err(|source| Error::Spawn { name: "raftkv-keepalive".into(), source })?;
        Ok(KeepAlive { ttl, stop_tx, thread: Some(thread) })
    }

    /// A lease's remaining and granted TTL (etcd `LeaseTimeToLive`); TTL -1 if it is unknown.
    /// The remaining time is the leader's, so a follower asks the leader.
    pub fn lease_time_to_live(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        match self.forward_to_leader(PeerRequest { request: Some(peer_request::Request::TimeToLive(req.clone())) })? {
            None => local_time_to_live(&self.inner.shared, &req),
            Some(peer_response::Response::TimeToLive(resp)) => Ok(resp),
            Some(other) => Err(peer_error(other)),
        }
    }

    /// `None` when this member answers itself (it leads, or the request is not for a leader);
    /// otherwise the leader's answer.
    fn forward_to_leader(&self, request: PeerRequest) -> Result<Option<peer_response::Response>> {
        let shared = &self.inner.shared;
        if shared.is_leader() {
            return Ok(None);
        }
        let leader = shared.raft.leader_id();
        if leader == 0 {
            return Err(Error::NoLeader);
        }
        let response = shared.transport.call(leader, &request, shared.cfg.request_timeout())?;
        Ok(Some(response.response.ok_or(Error::LeaderChanged)?))
    }

    /// Every lease, soonest to expire first (etcd `LeaseLeases`).
    pub fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        let shared = &self.inner.shared;
        let leases = shared.lessor.leases().into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(LeaseLeasesResponse { header: shared.header_at(shared.store.current_revision()), leases })
    }

    /// Starts a watch (etcd `Watch`, one create request). Responses — `created` first, then
    /// events in revision order, or a cancellation if the start revision was compacted —
    /// arrive on the returned [`Watch`]; dropping it cancels the watch. A receiver that stops
    /// reading does not slow writes: its watch falls behind and catches up from disk later.
    pub fn watch(&self, req: WatchCreateRequest) -> Result<Watch> {
        let (tx, responses) = channel::bounded(WATCH_QUEUE_MAX);
        let mut watch = self.watch_into(req, channel_sink(tx));
        watch.responses = responses;
        Ok(watch)
    }

    /// Starts a watch whose responses go to `sink` (the gateway's streams); the returned
    /// handle's `responses` is unused.
    pub fn watch_into(&self, req: WatchCreateRequest, sink: Sink) -> Watch {
        let shared = &self.inner.shared;
        let spec = WatchSpec::new(&req, req.watch_id);
        let id = shared.watches.watch(&shared.store, spec, req.start_revision, sink, &|h| shared.fill_header(h));
        Watch { id, hub: shared.watches.clone(), responses: channel::never() }
    }

    /// Watchers registered on this member (library and gateway).
    pub fn watcher_count(&self) -> usize {
        self.inner.shared.watches.len()
    }

    /// A header at the current revision.
    pub fn header_now(&self) -> Option<ResponseHeader> {
        let shared = &self.inner.shared;
        shared.header_at(shared.store.current_revision())
    }

    /// Prometheus text exposition of the member's main counters, under etcd's metric names
    /// where one exists (so etcd dashboards and the shared bench scripts read them).
    pub fn metrics(&self) -> String {
        let shared = &self.inner.shared;
        let has_leader = u8::from(shared.raft.leader_id() != 0);
        let (block_cache, memtables) = shared.db.memory_bytes();
        let metrics = [
            (
                "etcd_disk_wal_fsync_duration_seconds_count",
                "counter",
                "Synced raft log writes.",
                shared.db.synced_writes().to_string(),
            ),
            (
                "etcd_disk_wal_fsync_duration_seconds_sum",
                "counter",
                "Seconds spent in synced raft log writes.",
                format!("{:.6}", shared.db.synced_seconds()),
            ),
            ("etcd_server_has_leader", "gauge", "Whether a leader exists.", has_leader.to_string()),
            (
                "etcd_server_proposals_committed_total",
                "gauge",
                "The raft commit index.",
                shared.raft.commit_index().to_string(),
            ),
            (
                "etcd_server_proposals_applied_total",
                "gauge",
                "The applied raft index.",
                shared.applied.get().to_string(),
            ),
            ("etcd_mvcc_db_total_size_in_bytes", "gauge", "Database size on disk.", shared.db.size_bytes().to_string()),
            (
                "etcd_debugging_mvcc_current_revision",
                "gauge",
                "The store's current revision.",
                shared.store.current_revision().to_string(),
            ),
            ("etcd_debugging_mvcc_watcher_total", "gauge", "Registered watchers.", shared.watches.len().to_string()),
            ("etcd_debugging_mvcc_keys_total", "gauge", "Keys in the index.", shared.store.key_count().to_string()),
            ("raftkv_rocksdb_block_cache_bytes", "gauge", "RocksDB block cache in use.", block_cache.to_string()),
            ("raftkv_rocksdb_memtable_bytes", "gauge", "RocksDB memtables, all families.", memtables.to_string()),
        ];
        metrics
            .iter()
            .map(|(name, kind, help, value)| format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"))
            .collect()
    }

    /// A response carrying only a header at the current revision (what etcd answers for auth
    /// listings while auth is disabled).
    pub fn header_only(&self) -> CompactionResponse {
        let shared = &self.inner.shared;
        let header = shared.header_at(shared.store.current_revision());
        CompactionResponse { header }
    }

    /// This member's view of itself (etcd `Status`).
    pub fn status(&self) -> Result<StatusResponse> {
        let shared = &self.inner.shared;
        let header = shared.header_at(shared.store.current_revision());
        Ok(StatusResponse {
            header,
            version: crate::api::ETCD_VERSION.to_string(),
            db_size: shared.db.size_bytes() as i64,
            leader: shared.raft.leader_id(),
            raft_index: shared.raft.commit_index(),
            raft_term: shared.raft.term(),
            raft_applied_index: shared.applied.get(),
            db_size_in_use: shared.db.live_bytes() as i64,
            is_learner: self.is_learner(),
            ..Default::default()
        })
    }

    /// A checksum of the key-value history held by this member (etcd `Hash`); members that
    /// applied the same entries and compactions agree on it.
    pub fn hash(&self) -> Result<HashResponse> {
        let shared = &self.inner.shared;
        let header = shared.header_at(shared.store.current_revision());
        Ok(HashResponse { header, hash: shared.db.hash(crate::storage::Cf::Kv)? })
    }

    /// The members of the cluster (etcd `MemberList`). The header has no revision, as etcd's.
    pub fn member_list(&self) -> MemberListResponse {
        MemberListResponse { header: self.bare_header(), members: self.inner.shared.membership.read().members() }
    }

    fn bare_header(&self) -> Option<ResponseHeader> {
        let mut header = None;
        self.inner.shared.fill_header(&mut header);
        header
    }

    /// Adds a member (etcd `MemberAdd`); it then starts with `--initial-cluster-state existing`.
    /// Its id comes from its peer URLs and the time, as etcd's, so a removed member's URLs can
    /// be used again by a new member.
    pub fn member_add(&self, req: MemberAddRequest) -> Result<MemberAddResponse> {
        crate::cluster::check_urls(&req.peer_urls)?;
        // etcd mixes in the time in seconds; nanoseconds keep two adds in one second apart.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let member = Member {
            id: Config::member_id_for(&req.peer_urls, &now.to_string()),
            peer_urls: req.peer_urls,
            is_learner: req.is_learner,
            ..Default::default()
        };
        let (change, cc_type) = if req.is_learner {
            (Change::AddLearner, ConfChangeType::AddLearnerNode)
        } else {
            (Change::AddVoter, ConfChangeType::AddNode)
        };
        let (member, members) = self.change_membership(change, cc_type, member)?;
        Ok(MemberAddResponse { header: self.bare_header(), member, members })
    }

    /// Removes a member (etcd `MemberRemove`). A removed member stops, and its id is never
    /// accepted again.
    pub fn member_remove(&self, req: MemberRemoveRequest) -> Result<MemberListResponse> {
        let member = Member { id: req.id, ..Default::default() };
        let (_, members) = self.change_membership(Change::Remove, ConfChangeType::RemoveNode, member)?;
        Ok(MemberListResponse { header: self.bare_header(), members })
    }

    /// Makes a learner a voter (etcd `MemberPromote`) once it has caught up with the leader.
    pub fn member_promote(&self, req: MemberPromoteRequest) -> Result<MemberListResponse> {
        self.check_learner_ready(req.id)?;
        let member = Member { id: req.id, ..Default::default() };
        let (_, members) = self.change_membership(Change::Promote, ConfChangeType::AddNode, member)?;
        Ok(MemberListResponse { header: self.bare_header(), members })
    }

    /// Changes a member's peer URLs (etcd `MemberUpdate`).
    pub fn member_update(&self, req: MemberUpdateRequest) -> Result<MemberListResponse> {
        self.inner.shared.membership.read().check_update(req.id, &req.peer_urls)?;
        match self.propose(Request::MemberUpdate(req))? {
            Response::Members { members, .. } => Ok(MemberListResponse { header: self.bare_header(), members }),
            other => Err(unexpected(other)),
        }
    }

    /// Hands leadership to `target_id` (etcd `MoveLeader`); only the leader can, and it answers
    /// once the target leads.
    pub fn move_leader(&self, req: MoveLeaderRequest) -> Result<MoveLeaderResponse> {
        let shared = &self.inner.shared;
        if !shared.is_leader() {
            return Err(Error::NotLeader);
        }
        let is_voter = shared.membership.read().get(req.target_id).is_some_and(|m| !m.is_learner);
        if !is_voter {
            return Err(Error::BadLeaderTransferee);
        }
        let deadline = self.deadline();
        while shared.raft.leader_id() != req.target_id {
            if Instant::now() >= deadline {
                return Err(Error::LeaderTransferTimeout);
            }
            // Repeated each round: raft-rs forgets a transfer that did not finish within an
            // election timeout.
            let _ = self.inner.shared.request_tx.try_send(RaftRequest::TransferLeader { target: req.target_id });
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(MoveLeaderResponse { header: self.bare_header() })
    }

    /// etcd's `isLearnerReady`: a learner may be promoted once it has at least 90% of the
    /// leader's log. Only the leader knows; elsewhere the check is left to the leader's
    /// apply-time rules.
    fn check_learner_ready(&self, id: u64) -> Result<()> {
        let (reply, progress) = channel::bounded(1);
        if self.inner.shared.request_tx.send_deadline(RaftRequest::Progress { reply }, self.deadline()).is_err() {
            return Err(Error::Stopped);
        }
        let (_, matched) = progress.recv_deadline(self.deadline()).map_err(|_| Error::Timeout)?;
        let leader_match = matched.iter().find(|(m, _)| *m == self.member_id()).map(|(_, i)| *i);
        let learner_match = matched.iter().find(|(m, _)| *m == id).map(|(_, i)| *i);
        match (leader_match, learner_match) {
            (Some(leader), Some(learner)) if (learner as f64) < leader as f64 * 0.9 => Err(Error::LearnerNotReady),
            _ => Ok(()),
        }
    }

    /// Checks and proposes a raft configuration change, and waits until it is applied.
    fn change_membership(
        &self,
        change: Change,
        cc_type: ConfChangeType,
        member: Member,
    ) -> Result<(Option<Member>, Vec<Member>)> {
        let shared = &self.inner.shared;
        // Check against every change already committed: a member add that returned through a
        // follower may not be applied on the leader yet, and its duplicate must still be refused.
        wait_applied(shared)?;
        shared.membership.read().check(change, &member)?;
        let id = shared.request_ids.next();
        let mut cc = ConfChange::default();
        cc.set_change_type(cc_type);
        cc.node_id = member.id;
        cc.context = ConfChangeContext { request_id: id, member: Some(member) }.encode_to_vec().into();
        match self.submit(id, RaftRequest::ProposeConfChange(cc))? {
            Response::Members { member, members } => Ok((member, members)),
            other => Err(unexpected(other)),
        }
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
        // It sees the member stopped (its proposal fails) and exits.
        let publisher = self.inner.publisher.lock().take();
        if let Some(publisher) = publisher {
            let _ = publisher.join();
        }
        outcome
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.shared.cfg.request_timeout()
    }

    /// Proposes a client's write and waits for the outcome of applying it.
    fn propose(&self, request: Request) -> Result<Response> {
        wait_on(|reply| self.propose_then(request, reply))
    }

    fn propose_then(&self, request: Request, reply: Reply<Response>) -> Ticket {
        if self.is_learner() {
            return self.refuse(reply, Error::NotSupportedForLearner);
        }
        self.propose_internal_then(request, reply)
    }

    /// Proposes a write, also from a learner (its own published attributes).
    fn propose_internal(&self, request: Request) -> Result<Response> {
        wait_on(|reply| self.propose_internal_then(request, reply))
    }

    fn propose_internal_then(&self, request: Request, reply: Reply<Response>) -> Ticket {
        let shared = &self.inner.shared;
        if shared.raft.commit_index().saturating_sub(shared.applied.get()) > MAX_APPLY_LAG {
            return self.refuse(reply, Error::TooManyRequests);
        }
        let id = shared.request_ids.next();
        let data = InternalRequest { id, request: Some(request) }.encode_to_vec();
        if data.len() > shared.cfg.max_request_bytes {
            return self.refuse(reply, Error::RequestTooLarge);
        }
        let deadline = self.deadline();
        self.submit_then(id, RaftRequest::Propose(Proposal { id, data, deadline }), deadline, reply)
    }

    /// Hands `request` (registered as `id`) to the raft thread and waits for its outcome.
    fn submit(&self, id: u64, request: RaftRequest) -> Result<Response> {
        wait_on(|reply| self.submit_then(id, request, self.deadline(), reply))
    }

    fn submit_then(&self, id: u64, request: RaftRequest, deadline: Instant, reply: Reply<Response>) -> Ticket {
        let shared = &self.inner.shared;
        let ticket = Ticket { shared: shared.clone(), id: Some(id), term: Some(shared.raft.term()), deadline };
        shared.wait.register(id, reply);
        if let Err(e) = shared.request_tx.send_deadline(request, deadline) {
            let error = match e {
                SendTimeoutError::Timeout(_) => Error::Timeout,
                SendTimeoutError::Disconnected(_) => Error::Stopped,
            };
            if let Some(reply) = shared.wait.take(id) {
                reply.send(Err(error));
            }
        }
        ticket
    }

    /// A ticket for a call that registers nothing.
    fn ticket(&self) -> Ticket {
        Ticket { shared: self.inner.shared.clone(), id: None, term: None, deadline: self.deadline() }
    }

    /// Answers `reply` with `error` now, for a call refused before it started.
    fn refuse<T: 'static>(&self, reply: Reply<T>, error: Error) -> Ticket {
        reply.send(Err(error));
        self.ticket()
    }

    fn is_learner(&self) -> bool {
        let shared = &self.inner.shared;
        shared.membership.read().get(shared.member_id).is_some_and(|m| m.is_learner)
    }

    /// Test hook (fault injection): drops all peer traffic between this member and `peers`,
    /// as a network partition would, until [`Node::heal_partition`].
    #[doc(hidden)]
    pub fn partition_from(&self, peers: &[u64]) {
        self.inner.shared.transport.isolate(peers);
    }

    #[doc(hidden)]
    pub fn heal_partition(&self) {
        self.inner.shared.transport.heal();
    }

    /// The address this member accepts peer connections on, if it listens.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.shared.transport.local_addr()
    }

    /// Answers `ready` with `value` once this member has applied every write acknowledged
    /// before the call (etcd's linearizable read): after a ReadIndex round, when that index is
    /// applied. A serializable read needs no barrier and is answered at once. The answer comes
    /// from the raft or the apply thread, so whatever `ready` does must be short: hand the
    /// read itself to another thread.
    pub fn read_barrier_then<T: Send + 'static>(&self, serializable: bool, value: T, ready: Reply<T>) -> Ticket {
        if serializable {
            ready.send(Ok(value));
            return self.ticket();
        }
        // etcd: a learner answers serializable reads only.
        if self.is_learner() {
            return self.refuse(ready, Error::NotSupportedForLearner);
        }
        let ticket = self.ticket();
        let shared = self.inner.shared.clone();
        let on_index = Reply::new(move |index: Result<u64>| match index {
            Ok(index) => shared.applied.when_applied(index, Box::new(move || ready.send(Ok(value)))),
            Err(e) => ready.send(Err(e)),
        });
        let asked =
            self.inner.shared.request_tx.send_deadline(RaftRequest::ReadIndex { reply: on_index }, ticket.deadline);
        // Disconnected: dropping the reply answers `server stopped`.
        if let Err(SendTimeoutError::Timeout(RaftRequest::ReadIndex { reply })) = asked {
            reply.send(Err(Error::Timeout));
        }
        ticket
    }
}

/// A call started with one of [`Node`]'s `_then` methods: when its caller should give up,
/// and how.
pub struct Ticket {
    shared: Arc<Shared>,
    /// The proposal's request id, registered in `Shared::wait`.
    id: Option<u64>,
    /// The raft term when a proposal started: a timeout after it moved says the leader failed.
    term: Option<u64>,
    deadline: Instant,
}

impl Ticket {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Gives up on the call (its reply will not be answered) and returns the error its caller
    /// should see: etcd's leader-failure message if the term moved since a proposal started.
    pub fn expire(self) -> Error {
        if let Some(id) = self.id {
            self.shared.wait.cancel(id);
        }
        match self.term {
            Some(term) if term != self.shared.raft.term() => Error::TimeoutDueToLeaderFail,
            _ => Error::Timeout,
        }
    }
}

/// Blocks on a call started with a `_then` method until it is answered or due.
fn wait_on<T: Send + 'static>(start: impl FnOnce(Reply<T>) -> Ticket) -> Result<T> {
    let (reply, waiter) = oneshot();
    let ticket = start(reply);
    match waiter.wait_until(ticket.deadline()) {
        Some(outcome) => outcome,
        None => Err(ticket.expire()),
    }
}

/// A lease kept alive by [`Node::keep_alive`]; dropping it stops the renewals (the lease then
/// expires after its TTL unless renewed elsewhere).
pub struct KeepAlive {
    ttl: Arc<std::sync::atomic::AtomicI64>,
    stop_tx: channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl KeepAlive {
    /// The TTL granted by the last renewal; 0 once the lease is gone.
    pub fn ttl(&self) -> i64 {
        self.ttl.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.stop_tx.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Responses buffered per library watch before it falls back to catching up from disk.
const WATCH_QUEUE_MAX: usize = 1024;

/// A running watch from [`Node::watch`]. Dropping it cancels the watch.
pub struct Watch {
    id: Option<u64>,
    hub: Arc<WatchHub>,
    /// The watch's responses, in order.
    pub responses: channel::Receiver<WatchResponse>,
}

impl Watch {
    /// Stops the watch (as dropping it does).
    pub fn cancel(self) {}
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.hub.cancel(id);
        }
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

/// etcd's `waitAppliedIndex` before the leader answers a lease call (or checks a membership
/// change): what another member wrote is committed, but maybe not yet applied here.
fn wait_applied(shared: &Shared) -> Result<()> {
    let deadline = Instant::now() + shared.cfg.request_timeout();
    let (reply, waiter) = oneshot();
    shared.applied.when_applied(shared.raft.commit_index(), Box::new(move || reply.send(Ok(()))));
    waiter.wait_until(deadline).unwrap_or(Err(Error::Timeout))
}

fn local_keep_alive(shared: &Shared, req: &LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
    wait_applied(shared)?;
    let ttl = match shared.lessor.renew(req.id) {
        Some((ttl, checkpointed)) => {
            if checkpointed {
                // The stored remaining TTL is stale now; a restart must not resume from it.
                let checkpoints = vec![LeaseCheckpoint { id: req.id, remaining_ttl: 0 }];
                shared.propose_nowait(Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints }));
            }
            ttl
        }
        None => 0,
    };
    Ok(LeaseKeepAliveResponse { header: shared.header_at(shared.store.current_revision()), id: req.id, ttl })
}

fn local_time_to_live(shared: &Shared, req: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
    wait_applied(shared)?;
    let header = shared.header_at(shared.store.current_revision());
    Ok(match shared.lessor.time_to_live(req.id, req.keys) {
        Some(t) => {
            LeaseTimeToLiveResponse { header, id: req.id, ttl: t.remaining, granted_ttl: t.granted, keys: t.keys }
        }
        None => LeaseTimeToLiveResponse { header, id: req.id, ttl: -1, ..Default::default() },
    })
}

fn peer_error(response: peer_response::Response) -> Error {
    match response {
        peer_response::Response::Error(e) => Error::Remote { code: e.code, message: e.message },
        other => Error::Decode { what: "leader's answer", detail: format!("unexpected {other:?}") },
    }
}

/// What this member answers its peers (see [`crate::transport::PeerServices`]): forwarded
/// lease calls, which only the leader may answer, and the membership for joining members.
pub struct PeerService {
    /// Weak: the transport that holds this service is itself held by `Shared`.
    shared: std::sync::Weak<Shared>,
}

impl PeerService {
    pub fn new(shared: &Arc<Shared>) -> PeerService {
        PeerService { shared: Arc::downgrade(shared) }
    }
}

impl crate::transport::PeerServices for PeerService {
    fn handle(&self, from: u64, request: PeerRequest) -> PeerResponse {
        let Some(shared) = self.shared.upgrade() else { return PeerResponse::default() };
        let shared = &*shared;
        let response = if !shared.is_leader() {
            log::debug!("forwarded request from {from:x} reached a non-leader");
            let e = Error::LeaderChanged;
            peer_response::Response::Error(PeerError { code: e.code(), message: e.to_string() })
        } else {
            let answer = match request.request {
                Some(peer_request::Request::KeepAlive(req)) => {
                    local_keep_alive(shared, &req).map(peer_response::Response::KeepAlive)
                }
                Some(peer_request::Request::TimeToLive(req)) => {
                    local_time_to_live(shared, &req).map(peer_response::Response::TimeToLive)
                }
                None => Err(Error::Decode { what: "peer request", detail: "empty".into() }),
            };
            answer.unwrap_or_else(|e| {
                peer_response::Response::Error(PeerError { code: e.code(), message: e.to_string() })
            })
        };
        PeerResponse { response: Some(response) }
    }

    fn membership(&self) -> MembershipRecord {
        self.shared.upgrade().map(|shared| shared.membership.read().record()).unwrap_or_default()
    }
}
