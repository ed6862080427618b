//! The apply step: committed raft entries → mvcc writes → results for the waiting callers.
//!
//! [`Applier::apply`] is the body of every job the run loop schedules on the FIFO thread
//! (`raftkv-apply`), so it runs on that thread only, one batch of entries at a time, in log
//! order. For each batch it writes all mvcc changes and the applied index/term in **one
//! RocksDB `WriteBatch`**, and only after that write triggers the waiters, advances the applied
//! index readers wait on, and reports progress to the raft thread (apply progress channel).
//! A compaction is applied in a batch of its own (mvcc's rule) and only recorded there: its
//! dead rows are removed by mvcc's removal thread, off this one. Apply never does network I/O.
//!
//! Membership: a conf change entry is checked against the membership (etcd's rules), handed
//! to the raft thread to apply to raft (only it may touch the `RawNode`), and the new
//! membership and conf state go into the same batch as the applied index. A snapshot from the
//! leader replaces the whole state in one synced batch (see [`crate::snapshot`]); the store,
//! lessor, membership and watchers are then reloaded from it.

mod auth;
pub mod kv;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use parking_lot::Mutex;
use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, SnapshotMetadata};

use parking_lot::RwLock;

use crate::alarm::{Alarms, Quota};
use crate::auth::AuthStore;
use crate::cluster::{Change, Membership};
use crate::identity::Identity;
use crate::lease::Lessor;
use crate::logging::GoDuration;
use crate::metrics::{Histogram, IntCounter, Registry, Stages};
use crate::mvcc::{ApplyBatch, ReadView, Store};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::raft::ApplyProgress;
use crate::snapshot::SnapshotFiles;
use crate::storage::{meta, Cf, Db};
use crate::transport::Transport;
use crate::wait::Wait;
use crate::watch::WatchHub;
use crate::{Error, Result};

/// The result of one applied request, delivered to its waiter.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// Checkpoints are proposed by the lessor, which waits for nothing.
    LeaseCheckpoint,
    /// The alarms an `Alarm` entry listed, raised or cleared.
    Alarm(AlarmResponse),
    /// An auth store change (etcd's auth answers carry only a header).
    Auth(AuthHeaderResponse),
    /// The token an `Authenticate` entry assigned.
    Authenticate(AuthenticateResponse),
    /// A membership change or a member's published attributes: the member concerned (for
    /// member add) and every member after the change.
    Members {
        member: Option<Member>,
        members: Vec<Member>,
    },
}

/// What has been applied, and the raft facts that go with it: the run loop's progress record
/// (etcd's `etcdProgress`), advanced by apply jobs.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub applied_index: u64,
    pub applied_term: u64,
    /// Index of the last snapshot recorded in the raft log's storage.
    pub snapshot_index: u64,
    pub conf_state: ConfState,
}

/// The applied index, for readers that wait until a ReadIndex is applied: they leave a
/// callback that the apply thread runs (a blocking caller's wakes its waiter).
#[derive(Default)]
pub struct AppliedIndex {
    state: Mutex<Applied>,
}

type WhenApplied = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Applied {
    /// The highest applied raft index.
    index: u64,
    /// Callbacks by the index they wait for. Not bounded here: each belongs to a client request
    /// in flight, and those are bounded by the connections the HTTP loops serve.
    later: Vec<(u64, WhenApplied)>,
    closed: bool,
}

impl AppliedIndex {
    pub fn get(&self) -> u64 {
        self.state.lock().index
    }

    pub(crate) fn set(&self, index: u64) {
        let due = {
            let mut state = self.state.lock();
            state.index = index;
            if state.later.iter().any(|(i, _)| *i <= index) {
                let (due, later) = std::mem::take(&mut state.later).into_iter().partition(|(i, _)| *i <= index);
                state.later = later;
                due
            } else {
                Vec::new()
            }
        };
        for (_, callback) in due {
            callback();
        }
    }

    /// Runs `callback` once `index` is applied: now, on this thread, if it already is;
    /// otherwise on the apply thread. Once the member has stopped it is dropped unrun.
    pub fn when_applied(&self, index: u64, callback: WhenApplied) {
        let mut state = self.state.lock();
        if state.index >= index {
            drop(state);
            callback();
        } else if !state.closed {
            state.later.push((index, callback));
        }
    }

    /// The member stopped: drops every pending callback (their replies answer `server stopped`).
    pub(crate) fn close(&self) {
        let later = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.later)
        };
        drop(later);
    }
}

/// What the applier reads and changes: the state machine and those who wait on it.
pub struct ApplyContext {
    pub identity: Arc<Identity>,
    pub db: Arc<Db>,
    pub store: Arc<Store>,
    pub lessor: Arc<Lessor>,
    pub auth: Arc<AuthStore>,
    pub alarms: Arc<Alarms>,
    pub quota: Arc<Quota>,
    /// Changed only by the apply thread; read by client threads and the peer service.
    pub membership: Arc<RwLock<Membership>>,
    pub watches: Arc<WatchHub>,
    pub wait: Arc<Wait<Response>>,
    pub applied: Arc<AppliedIndex>,
    pub snapshots: Arc<SnapshotFiles>,
    /// Its address book follows the membership.
    pub transport: Arc<Transport>,
    /// Applied entries between two snapshots of the raft log.
    pub snapshot_count: u64,
    /// `--experimental-warning-apply-duration`.
    pub warning_apply_duration: Duration,
    pub metrics: ApplyMetrics,
}

/// What the apply thread observes: etcd's backend commit (here the batch's one RocksDB write)
/// and slow applies (over `--experimental-warning-apply-duration`), and the apply stage of a write.
pub struct ApplyMetrics {
    backend_commit: Histogram,
    slow_apply: IntCounter,
    stages: Stages,
}

impl ApplyMetrics {
    pub fn new(registry: &Registry, stages: Stages) -> ApplyMetrics {
        let m = ApplyMetrics {
            backend_commit: crate::metrics::histogram(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                crate::metrics::disk_buckets(),
            ),
            slow_apply: crate::metrics::counter(
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            stages,
        };
        registry.register(m.backend_commit.clone());
        registry.register(m.slow_apply.clone());
        m
    }
}

/// Points the transport at the members' current peer URLs.
pub fn follow_membership(transport: &Arc<Transport>, membership: &Membership) {
    let peers: Vec<(u64, Vec<String>)> = membership.members().into_iter().map(|m| (m.id, m.peer_urls)).collect();
    transport.set_peers(&peers);
}

pub struct Applier {
    ctx: ApplyContext,
    progress: Arc<Mutex<Progress>>,
    progress_tx: Sender<ApplyProgress>,
    /// Set when applied entries changed members' URLs: the transport's address book follows
    /// once the batch is written.
    peers_changed: AtomicBool,
    /// Set when this member applied its own removal: it stops after the batch.
    removed: AtomicBool,
    /// Set by the first failed batch: nothing is applied after it (see [`Applier::apply`]).
    failed: AtomicBool,
}

/// Requests applied in the current batch, answered once the batch is written.
type Outcomes = Vec<(u64, Result<Response>)>;

impl Applier {
    pub fn new(ctx: ApplyContext, progress: Arc<Mutex<Progress>>, progress_tx: Sender<ApplyProgress>) -> Applier {
        Applier {
            ctx,
            progress,
            progress_tx,
            peers_changed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    /// Installs `snapshot` if any, then applies `entries` (consecutive, in log order). An
    /// error is fatal for the member, and every batch after it is dropped unapplied: the
    /// member is stopping, and a later batch would move the applied index past the snapshot
    /// or entries that failed, so the restart that must redo them would skip them (a follower
    /// whose snapshot install failed came back at the cluster's applied index with none of the
    /// snapshot's data).
    /// `handed_off`: when the raft thread let go of the entries (the apply stage's start).
    pub fn apply(&self, snapshot: Option<SnapshotMetadata>, entries: Vec<Entry>, handed_off: Instant) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let outcome = self.apply_batch(snapshot, entries, handed_off);
        if outcome.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        crate::metrics::observe_since(&self.ctx.metrics.stages.apply, handed_off);
        outcome
    }

    fn apply_batch(&self, snapshot: Option<SnapshotMetadata>, entries: Vec<Entry>, handed_off: Instant) -> Result<()> {
        if let Some(meta) = snapshot {
            self.install_snapshot(meta)?;
        }
        let applied = self.progress.lock().applied_index;
        let store = &self.ctx.store;
        let mut batch = store.batch();
        let mut outcomes = Outcomes::new();
        let mut last: Option<(u64, u64)> = None;
        for entry in entries.into_iter().filter(|e| e.index > applied) {
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal => {
                    let req = InternalRequest::decode(&entry.data[..]).map_err(|e| Error::Decode {
                        what: "raft entry",
                        detail: format!("index {}: {e}", entry.index),
                    })?;
                    if let Some(request @ Request::Compaction(c)) = &req.request {
                        // Compaction needs a batch of its own: finish what came before.
                        if let Some((index, term)) = last.take() {
                            self.commit(batch, index, term, &mut outcomes)?;
                            batch = store.batch();
                        }
                        let outcome = match self.ctx.alarms.refuse(request) {
                            Some(refused) => Err(refused),
                            None => self.compact(&mut batch, c),
                        };
                        outcomes.push((req.id, outcome));
                        self.commit(batch, entry.index, entry.term, &mut outcomes)?;
                        batch = store.batch();
                        continue;
                    }
                    let started = Instant::now();
                    let outcome = match &req.request {
                        Some(request) => self.execute(&mut batch, req.header.as_ref(), request, entry.index),
                        None => Err(Error::Decode { what: "raft entry", detail: "no request".into() }),
                    };
                    self.warn_if_slow(handed_off, started, req.request.as_ref(), &outcome);
                    outcomes.push((req.id, outcome));
                }
                EntryType::EntryConfChange => {
                    let (id, outcome) = self.conf_change(&mut batch, &entry)?;
                    outcomes.push((id, outcome));
                }
                EntryType::EntryConfChangeV2 => {
                    // raftkv proposes only single-step changes (`ConfChange`).
                    log::warn!("apply: ignoring a joint conf change at index {}", entry.index);
                }
            }
            last = Some((entry.index, entry.term));
        }
        if let Some((index, term)) = last {
            self.commit(batch, index, term, &mut outcomes)?;
        }
        if self.removed.load(Ordering::Acquire) {
            return Err(Error::MemberRemoved);
        }
        Ok(())
    }

    /// Applies a membership change entry: etcd's checks, then raft (on the raft thread), then
    /// the membership record and conf state into `batch`. Returns the proposer's request id
    /// and the outcome for it.
    fn conf_change(&self, batch: &mut ApplyBatch, entry: &Entry) -> Result<(u64, Result<Response>)> {
        let decode_err =
            |e: String| Error::Decode { what: "conf change", detail: format!("index {}: {e}", entry.index) };
        let cc = ConfChange::parse_from_bytes(&entry.data).map_err(|e| decode_err(e.to_string()))?;
        let ctx = ConfChangeContext::decode(cc.get_context()).map_err(|e| decode_err(e.to_string()))?;
        let mut member = ctx.member.unwrap_or_default();
        member.id = cc.node_id;
        // Read now, written after raft's answer: only this thread changes the membership, and
        // client threads reading it must not wait out the round trip to the raft thread.
        let (change, check) = {
            let membership = self.ctx.membership.read();
            let change = match cc.get_change_type() {
                ConfChangeType::AddNode if membership.get(member.id).is_some_and(|m| m.is_learner) => Change::Promote,
                ConfChangeType::AddNode => Change::AddVoter,
                ConfChangeType::AddLearnerNode => Change::AddLearner,
                ConfChangeType::RemoveNode => Change::Remove,
            };
            (change, membership.check(change, &member))
        };
        let (reply_tx, reply_rx) = crossbeam::channel::bounded(1);
        let change_for_raft = check.is_ok().then(|| cc.clone());
        self.progress_tx
            .send(ApplyProgress::ConfChange { change: change_for_raft, reply: reply_tx })
            .map_err(|_| Error::Stopped)?;
        let conf_state = match reply_rx.recv().map_err(|_| Error::Stopped)? {
            Ok(cs) => cs,
            Err(e) => {
                log::warn!("apply: raft refused conf change {:?} of {:x}: {e}", change, member.id);
                return Ok((ctx.request_id, Err(Error::ProposalDropped)));
            }
        };
        let db = &*self.ctx.db;
        batch.write_batch().put_cf(
            db.cf(Cf::Raft),
            crate::storage::raft_keys::CONF_STATE,
            conf_state.write_to_bytes().map_err(|e| decode_err(e.to_string()))?,
        );
        self.progress.lock().conf_state = conf_state;
        if let Err(e) = check {
            return Ok((ctx.request_id, Err(e)));
        }
        if change != Change::Promote {
            member.is_learner = change == Change::AddLearner;
        }
        log::info!("apply: member {:x} {:?} (peer URLs {})", member.id, change, member.peer_urls.join(","));
        let mut membership = self.ctx.membership.write();
        membership.apply(change, member.clone());
        membership.save(db, batch.write_batch());
        self.peers_changed.store(true, Ordering::Release);
        if change == Change::Remove && member.id == self.ctx.identity.member_id {
            self.removed.store(true, Ordering::Release);
        }
        let member = (change != Change::Remove).then(|| membership.get(member.id).cloned().unwrap_or(member));
        Ok((ctx.request_id, Ok(Response::Members { member, members: membership.members() })))
    }

    /// Replaces the applied state by a snapshot the leader sent (its file was received and
    /// checked by the transport before raft accepted the snapshot).
    fn install_snapshot(&self, meta: SnapshotMetadata) -> Result<()> {
        if meta.index <= self.progress.lock().applied_index {
            return Ok(());
        }
        let ctx = &self.ctx;
        // The snapshot replaces the rows a removal batch works on: none may run in between,
        // and the one in progress is moot (reload schedules the snapshot's, if unfinished).
        let removal_paused = ctx.store.pause_removal();
        ctx.snapshots.install_received(&meta)?;
        self.reload(&meta)?;
        drop(removal_paused);
        let _ = self.progress_tx.send(ApplyProgress::Applied { index: meta.index });
        log::info!(
            "apply: installed snapshot at index {} (term {}), revision {}",
            meta.index,
            meta.term,
            ctx.store.current_revision()
        );
        Ok(())
    }

    /// Rebuilds every in-memory view of the applied state from the database (after a snapshot
    /// install).
    fn reload(&self, meta: &SnapshotMetadata) -> Result<()> {
        let ctx = &self.ctx;
        let leased = ctx.store.reload()?;
        ctx.lessor.reload(&ctx.db, leased)?;
        ctx.auth.reload(&ctx.db)?;
        ctx.alarms.reload(&ctx.db)?;
        *ctx.membership.write() = Membership::load(&ctx.db)?;
        follow_membership(&ctx.transport, &ctx.membership.read());
        {
            let mut progress = self.progress.lock();
            progress.applied_index = meta.index;
            progress.applied_term = meta.term;
            progress.snapshot_index = progress.snapshot_index.max(meta.index);
            progress.conf_state = meta.get_conf_state().clone();
        }
        ctx.applied.set(meta.index);
        ctx.watches.resync_all();
        Ok(())
    }

    /// etcd's `warnOfExpensiveRequest`: a request that took longer than
    /// `--experimental-warning-apply-duration` to apply is one warning line with etcd's words,
    /// counted in `etcd_server_slow_apply_total`. Beyond etcd's fields, `apply-wait`: how long
    /// its batch had waited since the raft thread handed it off, the stage before this one
    /// (a long wait means the apply thread is behind: big deletes or compactions ahead of it).
    fn warn_if_slow(
        &self,
        handed_off: Instant,
        started: Instant,
        request: Option<&Request>,
        outcome: &Result<Response>,
    ) {
        let took = started.elapsed();
        let expected = self.ctx.warning_apply_duration;
        if took <= expected {
            return;
        }
        let request = request.map(Request::summary).unwrap_or_default();
        let error = outcome.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let waited = started.saturating_duration_since(handed_off);
        self.ctx.metrics.slow_apply.inc();
        log::warn!(
            took:% = GoDuration(took), "expected-duration":% = GoDuration(expected), prefix = "",
            request = request, error = error, "apply-wait":% = GoDuration(waited);
            "apply request took too long"
        );
    }

    fn execute(
        &self,
        batch: &mut ApplyBatch,
        header: Option<&RequestHeader>,
        req: &Request,
        index: u64,
    ) -> Result<Response> {
        let (db, lessor) = (&*self.ctx.db, &self.ctx.lessor);
        // etcd's appliers nest as capped/corrupt(auth(quota(base))): an alarm refuses first,
        // then permissions.
        if let Some(refused) = self.ctx.alarms.refuse(req) {
            return Err(refused);
        }
        auth::check(&self.ctx.auth, lessor, header, req)?;
        // etcd's quota applier: a write that does not fit is applied all the same, and answered
        // NOSPACE (the proposing member checked before proposing; this member's size may differ).
        let fits = self.ctx.quota.available(req);
        let mut response = match req {
            Request::Put(r) => {
                self.ctx.store.ops.put.inc();
                Response::Put(kv::put(&mut batch.txn(), r, lessor)?)
            }
            Request::DeleteRange(r) => {
                self.ctx.store.ops.delete.inc();
                Response::DeleteRange(kv::delete_range(&mut batch.txn(), r, lessor)?)
            }
            Request::Txn(r) => {
                let resp = kv::txn(&mut batch.txn(), r, lessor)?;
                self.ctx.store.ops.txn_done(&resp);
                Response::Txn(resp)
            }
            Request::LeaseGrant(r) => {
                let ttl = lessor.grant(db, batch.write_batch(), r.id, r.ttl)?;
                let header = Some(ResponseHeader { revision: batch.rev(), ..Default::default() });
                Response::LeaseGrant(LeaseGrantResponse { header, id: r.id, ttl, error: String::new() })
            }
            Request::LeaseRevoke(r) => {
                // The lease's keys go in one revision, as etcd deletes them in one txn.
                let keys = lessor.revoke(db, batch.write_batch(), r.id)?;
                let mut txn = batch.txn();
                for key in keys {
                    txn.delete_range(&key, None)?;
                }
                let header = Some(ResponseHeader { revision: txn.rev(), ..Default::default() });
                Response::LeaseRevoke(LeaseRevokeResponse { header })
            }
            Request::LeaseCheckpoint(r) => {
                lessor.checkpoint(db, batch.write_batch(), &r.checkpoints);
                Response::LeaseCheckpoint
            }
            Request::Alarm(r) => Response::Alarm(self.ctx.alarms.apply(db, batch.write_batch(), r)),
            Request::Authenticate(r) => {
                let token = self.ctx.auth.authenticate(r, index)?;
                let header = Some(ResponseHeader { revision: batch.rev(), ..Default::default() });
                Response::Authenticate(AuthenticateResponse { header, token })
            }
            Request::MemberAttributes(m) => {
                let mut membership = self.ctx.membership.write();
                membership.set_attributes(m.id, m.name.clone(), m.client_urls.clone());
                membership.save(db, batch.write_batch());
                Response::Members { member: None, members: membership.members() }
            }
            Request::MemberUpdate(u) => {
                let mut membership = self.ctx.membership.write();
                match membership.check_update(u.id, &u.peer_urls) {
                    Err(e) => return Err(e),
                    Ok(()) => {
                        membership.update_peer_urls(u.id, u.peer_urls.clone());
                        membership.save(db, batch.write_batch());
                        self.peers_changed.store(true, Ordering::Release);
                        Response::Members { member: None, members: membership.members() }
                    }
                }
            }
            other => match self.ctx.auth.apply(db, batch.write_batch(), other) {
                Some(outcome) => {
                    outcome?;
                    let header = Some(ResponseHeader { revision: batch.rev(), ..Default::default() });
                    Response::Auth(AuthHeaderResponse { header })
                }
                // Compactions are applied in batches of their own, before this.
                None => {
                    return Err(Error::Decode { what: "raft entry", detail: format!("nothing to apply: {other:?}") })
                }
            },
        };
        if !fits {
            return Err(Error::NoSpace);
        }
        if let Some(header) = response.header_mut() {
            self.ctx.identity.fill_header(header);
        }
        Ok(response)
    }

    fn compact(&self, batch: &mut ApplyBatch, c: &CompactionRequest) -> Result<Response> {
        let store = &self.ctx.store;
        kv::check_compaction(store.current_revision(), store.compact_revision(), c.revision)?;
        batch.compact(c.revision)?;
        let header = self.ctx.identity.header_at(store.current_revision());
        Ok(Response::Compaction(CompactionResponse { header }))
    }

    /// Writes the batch with the applied index in it, then tells everyone who waits.
    fn commit(&self, mut batch: ApplyBatch, index: u64, term: u64, outcomes: &mut Outcomes) -> Result<()> {
        let db = &self.ctx.db;
        db.put_meta_u64(batch.write_batch(), meta::APPLIED_INDEX, index);
        db.put_meta_u64(batch.write_batch(), meta::APPLIED_TERM, term);
        // The write side of the invariant start-up checks on reload (applied ≤ committed ≤
        // last): the raft thread publishes its commit index before handing entries off, and
        // the applied index only grows.
        let committed = self.ctx.identity.raft().commit_index();
        assert!(index <= committed, "applying index {index} beyond the commit index {committed}");
        let applied = self.progress.lock().applied_index;
        assert!(index > applied, "applied index must grow: {index} after {applied}");
        // The failpoint stands for a stalled disk, so it is inside the timed write.
        let started = Instant::now();
        crate::failpoint::check("apply_before_commit")?;
        let revision = batch.rev();
        let changes = batch.commit()?;
        crate::metrics::observe_since(&self.ctx.metrics.backend_commit, started);
        crate::failpoint::check("apply_after_commit")?;
        // Progress first, so anyone told "done" below already sees it applied.
        let snapshot_due = {
            let mut progress = self.progress.lock();
            progress.applied_index = index;
            progress.applied_term = term;
            let due = index - progress.snapshot_index > self.ctx.snapshot_count;
            if due {
                progress.snapshot_index = index;
            }
            due.then(|| progress.conf_state.clone())
        };
        self.ctx.applied.set(index);
        if self.peers_changed.swap(false, Ordering::AcqRel) {
            follow_membership(&self.ctx.transport, &self.ctx.membership.read());
        }
        if !changes.is_empty() {
            let ctx = &self.ctx;
            ctx.watches.notify(&ctx.store, &changes, revision, &|h| ctx.identity.fill_header(h));
        }
        self.ctx.wait.trigger(outcomes.drain(..));
        // Fails only once the raft thread has stopped, when progress no longer matters.
        let _ = self.progress_tx.send(ApplyProgress::Applied { index });
        if let Some(conf_state) = snapshot_due {
            let mut meta = SnapshotMetadata { index, term, ..Default::default() };
            meta.set_conf_state(conf_state);
            let _ = self.progress_tx.send(ApplyProgress::Snapshot { meta });
        }
        Ok(())
    }
}

/// `PutResponse::try_from(response)` and the like: the typed answer a caller waits for, or the
/// response that came instead (a bug, reported as such).
macro_rules! typed_responses {
    ($($variant:ident($ty:ty)),*) => {$(
        impl TryFrom<Response> for $ty {
            type Error = Response;
            fn try_from(response: Response) -> std::result::Result<$ty, Response> {
                match response {
                    Response::$variant(r) => Ok(r),
                    other => Err(other),
                }
            }
        }
    )*};
}

typed_responses!(
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Auth(AuthHeaderResponse),
    Authenticate(AuthenticateResponse),
    Alarm(AlarmResponse)
);

impl Response {
    fn header_mut(&mut self) -> Option<&mut Option<ResponseHeader>> {
        match self {
            Response::Put(r) => Some(&mut r.header),
            Response::DeleteRange(r) => Some(&mut r.header),
            Response::Txn(r) => Some(&mut r.header),
            Response::Compaction(r) => Some(&mut r.header),
            Response::LeaseGrant(r) => Some(&mut r.header),
            Response::LeaseRevoke(r) => Some(&mut r.header),
            Response::Auth(r) => Some(&mut r.header),
            Response::Authenticate(r) => Some(&mut r.header),
            // etcd answers alarms without a header.
            Response::Members { .. } | Response::LeaseCheckpoint | Response::Alarm(_) => None,
        }
    }
}
