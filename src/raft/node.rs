//! The raft thread (`raftkv-raft`), etcd's `raftNode.start`.
//!
//! Owns: the `RawNode` (only this thread touches it), and with it the raft log in RocksDB.
//! Blocks in one `select!` on: the ticker (every heartbeat interval), client requests
//! (proposals, conf changes, ReadIndex, leader transfer), peer events from the transport
//! (messages to step, unreachable peers, snapshot outcomes), apply progress (including conf
//! changes, which only this thread may apply to raft), and stop. After each event it drains every
//! client request and peer message already queued, so all proposals (and, on a follower, all
//! appends) that arrived during the previous fsync share the next Ready and its one synced
//! `WriteBatch` (group commit); a leader under load also waits up to one sync time for more
//! proposals before writing (`widen_group_commit`).
//!
//! Ready handling follows raft-rs's documented order (DESIGN §2): leader messages, persist
//! (snapshot, entries, hard state) in one batch synced when `must_sync`, persisted messages,
//! committed entries to the run loop's apply channel, `advance_append`, then the light ready.
//! A failed persist is fatal: the error goes to the error channel and the thread exits.
//!
//! No proposal is lost silently: one raft refuses fails its caller at once
//! (`raft proposal dropped`), and on the leader every proposal's log position is remembered,
//! so an entry a new leader overwrote fails its caller as soon as that index commits with
//! another term. A proposal forwarded by a follower that the leader never got ends in the
//! request timeout, as in etcd.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender};
use prost::Message as _;
use raft::prelude::{ConfChange, Entry, Message, MessageType, Ready, SnapshotMetadata};
use raft::{RawNode, SnapshotStatus, StateRole, Storage as _};
use rocksdb::WriteBatch;

use super::metrics::RaftMetrics;
use super::storage::RaftStorage;
use super::{Apply, ApplyProgress, LeaderChange, Proposal, RaftRequest, RaftStatus};
use crate::logging::GoDuration;
use crate::pb::ConfChangeContext;
use crate::storage::Db;
use crate::transport::{PeerEvent, Transport};
use crate::wait::Reply;
use crate::{Error, Result};

/// Most client requests folded into one Ready. Bounds the Ready's size (and so the latency of
/// the requests at its end) while still letting one fsync cover hundreds of proposals.
const REQUESTS_PER_READY_MAX: usize = 4096;

/// Most peer events (mostly raft messages) stepped before one Ready.
const PEER_EVENTS_PER_READY_MAX: usize = 4096;

/// Proposals held while there is no leader. Beyond this, new ones are dropped and their callers
/// time out, as they would waiting for a leader anyway.
const PROPOSALS_WITHOUT_LEADER_MAX: usize = 10_000;

/// A ReadIndex round that got no answer is retried after this long (etcd's readIndexRetryTime).
/// etcd's `warnSyncDuration`: a log write slower than this is reported as a slow fdatasync.
const SLOW_FSYNC: Duration = Duration::from_secs(1);

const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// The channels and shared state the raft thread is wired to.
pub struct RaftChannels {
    pub request_rx: Receiver<RaftRequest>,
    pub peer_rx: Receiver<PeerEvent>,
    pub progress_rx: Receiver<ApplyProgress>,
    pub stop_rx: Receiver<()>,
    pub apply_tx: Sender<Apply>,
    pub error_tx: Sender<Error>,
}

pub struct RaftNode {
    raw: RawNode<RaftStorage>,
    db: Arc<Db>,
    id: u64,
    ch: RaftChannels,
    status: Arc<RaftStatus>,
    tick_interval: Duration,
    catchup_entries: u64,
    reads: ReadIndexQueue,
    waiting_for_leader: VecDeque<Proposal>,
    /// Proposals appended by this member as leader, in log order: (index, term, request id).
    appended: VecDeque<(u64, u64, u64)>,
    last_leader: LeaderChange,
    group: GroupCommit,
    transport: Arc<Transport>,
    /// Fails the waiter of a request whose proposal is gone.
    fail_request: Box<dyn Fn(u64, Error) + Send>,
    metrics: RaftMetrics,
}

/// The wiring of a [`RaftNode`] beyond its log.
pub struct RaftParts {
    pub db: Arc<Db>,
    pub channels: RaftChannels,
    pub status: Arc<RaftStatus>,
    pub transport: Arc<Transport>,
    pub fail_request: Box<dyn Fn(u64, Error) + Send>,
    pub tick_interval: Duration,
    pub catchup_entries: u64,
    pub metrics: RaftMetrics,
}

impl RaftNode {
    pub fn new(raw: RawNode<RaftStorage>, parts: RaftParts) -> RaftNode {
        let id = raw.raft.id;
        let last_leader = LeaderChange { leader_id: 0, term: raw.raft.term, is_self: false };
        RaftNode {
            raw,
            db: parts.db,
            id,
            ch: parts.channels,
            status: parts.status,
            tick_interval: parts.tick_interval,
            catchup_entries: parts.catchup_entries,
            reads: ReadIndexQueue::default(),
            waiting_for_leader: VecDeque::new(),
            appended: VecDeque::new(),
            last_leader,
            group: GroupCommit::default(),
            transport: parts.transport,
            fail_request: parts.fail_request,
            metrics: parts.metrics,
        }
    }

    /// The thread body: runs until stopped or a fatal error.
    pub fn run(mut self) {
        // A cluster whose only voter is this member need not wait out an election timeout.
        let voters = self.raw.raft.prs().conf().voters().ids().iter().collect::<Vec<_>>();
        if voters == [self.id] && self.raw.raft.state != StateRole::Leader {
            if let Err(e) = self.raw.campaign() {
                log::warn!("raft: campaign at start failed: {e}");
            }
        }
        let ticker = channel::tick(self.tick_interval);
        loop {
            select! {
                recv(ticker) -> _ => self.on_tick(),
                recv(self.ch.request_rx) -> req => match req {
                    Ok(req) => self.on_request(req),
                    Err(_) => return,
                },
                recv(self.ch.peer_rx) -> event => match event {
                    Ok(event) => {
                        if let Err(e) = self.on_peer_event(event) {
                            return self.fail(e);
                        }
                    }
                    Err(_) => return,
                },
                recv(self.ch.progress_rx) -> progress => match progress {
                    Ok(progress) => {
                        if let Err(e) = self.on_apply_progress(progress) {
                            return self.fail(e);
                        }
                    }
                    Err(_) => return,
                },
                recv(self.ch.stop_rx) -> _ => return,
            }
            // Everything already queued joins this Ready: proposals share its fsync, and a
            // follower persists every append that arrived meanwhile with one fsync instead
            // of one each.
            let queued: Vec<RaftRequest> = self.ch.request_rx.try_iter().take(REQUESTS_PER_READY_MAX).collect();
            for req in queued {
                self.on_request(req);
            }
            let events: Vec<PeerEvent> = self.ch.peer_rx.try_iter().take(PEER_EVENTS_PER_READY_MAX).collect();
            for event in events {
                if let Err(e) = self.on_peer_event(event) {
                    return self.fail(e);
                }
            }
            self.widen_group_commit();
            self.reads.start_round(&mut self.raw);
            if let Err(e) = self.on_ready() {
                return self.fail(e);
            }
        }
    }

    /// Group commit under load: a leader whose last synced write carried several proposals
    /// (so clients are many) waits a little for more before writing, up to its recent sync
    /// time. Each fsync costs CPU in the kernel as well as time (about 0.18 of its 0.27 ms
    /// on these VMs), so fewer, fuller syncs leave more CPU to everyone; a lone client
    /// (one proposal a sync) never waits. TiKV's `raft-write-wait-duration` does the same.
    fn widen_group_commit(&mut self) {
        let Some(window) = self.group.window(self.raw.raft.state == StateRole::Leader) else { return };
        let deadline = Instant::now() + window;
        while self.group.proposed < REQUESTS_PER_READY_MAX {
            match self.ch.request_rx.recv_deadline(deadline) {
                Ok(req) => self.on_request(req),
                // The deadline, or a closed channel, which the loop's next select! sees.
                Err(_) => return,
            }
        }
    }

    fn fail(&self, e: Error) {
        log::error!("raft thread stopping on fatal error: {e}");
        let _ = self.ch.error_tx.send(e);
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        if self.reads.retry_stale(&mut self.raw) {
            self.metrics.read_index_retried();
        }
        let now = Instant::now();
        self.waiting_for_leader.retain(|p| p.deadline > now);
    }

    fn on_request(&mut self, req: RaftRequest) {
        match req {
            RaftRequest::Propose(p) => {
                self.metrics.proposal_taken(p.queued);
                self.propose(p)
            }
            RaftRequest::ReadIndex { reply } => self.reads.pending.push(reply),
            RaftRequest::ProposeConfChange(cc) => self.propose_conf_change(cc),
            RaftRequest::TransferLeader { target } => {
                if self.raw.raft.state == StateRole::Leader {
                    self.raw.transfer_leader(target);
                }
            }
            RaftRequest::Progress { reply } => {
                let raft = &self.raw.raft;
                let progress = if raft.state == StateRole::Leader {
                    raft.prs().iter().map(|(id, pr)| (*id, pr.matched)).collect()
                } else {
                    Vec::new()
                };
                let _ = reply.send((raft.raft_log.committed, progress));
            }
        }
    }

    fn on_peer_event(&mut self, event: PeerEvent) -> Result<()> {
        match event {
            PeerEvent::Step(msg) => {
                let (from, kind) = (msg.from, msg.get_msg_type());
                if kind == MessageType::MsgHeartbeatResponse {
                    self.metrics.heartbeat_answered(from);
                }
                if let Err(e) = self.raw.step(msg) {
                    log::debug!("raft: {kind:?} from {from:x} not stepped: {e}");
                }
            }
            PeerEvent::Unreachable(id) => self.raw.report_unreachable(id),
            PeerEvent::SnapshotStatus { to, ok } => {
                let status = if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                self.raw.report_snapshot(to, status);
            }
            PeerEvent::Removed { by } => {
                log::error!("raft: member {by:x} says this member was removed from the cluster");
                return Err(Error::MemberRemoved);
            }
        }
        Ok(())
    }

    fn propose_conf_change(&mut self, cc: ConfChange) {
        let id = ConfChangeContext::decode(cc.get_context()).map_or(0, |c| c.request_id);
        match self.raw.propose_conf_change(Vec::new(), cc) {
            Ok(()) => self.note_appended(id),
            Err(e) => {
                log::info!("raft: conf change {id:x} refused: {e}");
                (self.fail_request)(id, Error::ProposalDropped);
            }
        }
    }

    /// Remembers where the leader put request `id`, to notice if a later leader overwrites it.
    fn note_appended(&mut self, id: u64) {
        if self.raw.raft.state == StateRole::Leader {
            let raft = &self.raw.raft;
            self.appended.push_back((raft.raft_log.last_index(), raft.term, id));
        }
    }

    /// Fails the callers of proposals whose log position now holds another entry.
    fn settle_appended(&mut self, committed: &[Entry]) {
        for entry in committed {
            while let Some(&(index, term, id)) = self.appended.front() {
                if index > entry.index {
                    break;
                }
                self.appended.pop_front();
                if index != entry.index {
                    continue;
                }
                if term != entry.term {
                    (self.fail_request)(id, Error::TimeoutDueToLeaderFail);
                } else if entry.data.is_empty() {
                    // raft-rs put an empty entry in place of a conf change proposed while
                    // another was pending.
                    (self.fail_request)(id, Error::ProposalDropped);
                }
            }
        }
    }

    fn propose(&mut self, p: Proposal) {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            // etcd blocks proposals until a leader is known; hold them for the same effect.
            if self.waiting_for_leader.len() >= PROPOSALS_WITHOUT_LEADER_MAX {
                log::warn!(
                    "raft: no leader and {PROPOSALS_WITHOUT_LEADER_MAX} proposals held; dropping request {:x}",
                    p.id
                );
            } else {
                self.waiting_for_leader.push_back(p);
            }
            return;
        }
        match self.raw.propose(Vec::new(), p.data) {
            Ok(()) => {
                self.note_appended(p.id);
                self.group.proposed += 1;
            }
            Err(e) => {
                // e.g. a leadership transfer in progress: etcd answers the same error.
                log::debug!("raft: proposal {:x} dropped: {e}", p.id);
                (self.fail_request)(p.id, Error::ProposalDropped);
            }
        }
    }

    fn on_apply_progress(&mut self, progress: ApplyProgress) -> Result<()> {
        match progress {
            ApplyProgress::Applied { index } => self.raw.advance_apply_to(index),
            ApplyProgress::Snapshot { meta } => self.record_snapshot(meta)?,
            ApplyProgress::ConfChange { change, reply } => {
                let outcome = match change {
                    Some(cc) => self.raw.apply_conf_change(&cc).map_err(Error::from),
                    // Refused at apply: raft's configuration stays as it is.
                    None => Ok(self.raw.raft.prs().conf().to_conf_state()),
                };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// Records that the applied state at `meta.index` is a snapshot and drops the log before
    /// it, keeping `catchup_entries` for followers that are only a little behind.
    fn record_snapshot(&mut self, mut meta: SnapshotMetadata) -> Result<()> {
        let store = self.raw.mut_store();
        if meta.index <= store.snapshot_metadata().index {
            return Ok(());
        }
        meta.term = store.term(meta.index)?;
        let mut batch = WriteBatch::default();
        store.set_snapshot_metadata(&mut batch, &meta);
        let compact_to = meta.index.saturating_sub(self.catchup_entries);
        store.compact(&mut batch, compact_to)?;
        self.db.write(batch, false)?;
        log::info!(
            "raft: snapshot at index {} (term {}); log now starts at {}",
            meta.index,
            meta.term,
            self.raw.store().first_index()
        );
        Ok(())
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        let leader = self.leader_change(&rd);
        self.send(rd.take_messages());
        self.persist(&rd)?;
        for rs in rd.take_read_states() {
            self.reads.on_read_state(&rs.request_ctx, rs.index);
        }
        self.send(rd.take_persisted_messages());
        // Before handing entries off: a client told "done" must already see this leader/term.
        self.publish_status();
        let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().get_metadata().clone());
        self.hand_off(snapshot, rd.take_committed_entries(), leader)?;
        let mut light = self.raw.advance_append(rd);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().hard_state().clone();
            hs.commit = commit;
            let mut batch = WriteBatch::default();
            self.raw.mut_store().set_hard_state(&mut batch, &hs);
            // The commit index is not needed for safety (raft re-learns it), so no fsync.
            self.db.write(batch, false)?;
        }
        self.send(light.take_messages());
        self.publish_status();
        self.hand_off(None, light.take_committed_entries(), None)?;
        if leader.is_some_and(|l| l.leader_id != 0) {
            for p in std::mem::take(&mut self.waiting_for_leader) {
                self.propose(p);
            }
        }
        Ok(())
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        self.status.set(raft.term, raft.leader_id, raft.raft_log.committed);
    }

    /// Reports a change of leader or term, failing the ReadIndex round in flight: its answer
    /// would come from a leader that may no longer be one.
    fn leader_change(&mut self, rd: &Ready) -> Option<LeaderChange> {
        let ss = rd.ss()?;
        let change = LeaderChange {
            leader_id: ss.leader_id,
            term: self.raw.raft.term,
            is_self: ss.raft_state == StateRole::Leader,
        };
        if change == self.last_leader {
            return None;
        }
        if change.leader_id != self.last_leader.leader_id {
            self.metrics.leader_changed(change.leader_id);
        }
        self.reads.abort_round_unless_led_by(change.leader_id);
        // etcd's raft node words for it, which runbooks and alerts grep for.
        let (id, before, after, term) = (self.id, self.last_leader.leader_id, change.leader_id, change.term);
        match (before, after) {
            (0, 0) => {}
            (_, 0) => log::warn!("raft.node: {id:x} lost leader {before:x} at term {term}"),
            (0, _) => log::info!("raft.node: {id:x} elected leader {after:x} at term {term}"),
            (before, after) if before != after => {
                log::info!("raft.node: {id:x} changed leader from {before:x} to {after:x} at term {term}")
            }
            _ => {}
        }
        self.last_leader = change;
        Some(change)
    }

    fn persist(&mut self, rd: &Ready) -> Result<()> {
        let mut batch = WriteBatch::default();
        let store = self.raw.mut_store();
        if !rd.snapshot().is_empty() {
            store.apply_snapshot(&mut batch, rd.snapshot().get_metadata())?;
        }
        store.append(&mut batch, rd.entries())?;
        if let Some(hs) = rd.hs() {
            store.set_hard_state(&mut batch, hs);
        }
        if !batch.is_empty() {
            // Timed from before the failpoint: its stall stands for a slow disk.
            let started = Instant::now();
            crate::failpoint::check("raft_before_save")?;
            // This fsync is the group commit of every proposal in the Ready.
            self.db.write(batch, rd.must_sync())?;
            let took = started.elapsed();
            if rd.must_sync() {
                self.group.synced(took);
                self.metrics.synced(started, rd.entries().last().map(|e| e.index));
            }
            if took > SLOW_FSYNC {
                log::warn!(
                    took:% = GoDuration(took), "expected-duration":% = GoDuration(SLOW_FSYNC);
                    "slow fdatasync"
                );
            }
            crate::failpoint::check("raft_after_save")?;
        }
        Ok(())
    }

    fn hand_off(
        &mut self,
        snapshot: Option<SnapshotMetadata>,
        entries: Vec<Entry>,
        leader: Option<LeaderChange>,
    ) -> Result<()> {
        if snapshot.is_none() && entries.is_empty() && leader.is_none() {
            return Ok(());
        }
        self.settle_appended(&entries);
        if let Some(last) = entries.last() {
            self.metrics.committed(last.index);
        }
        // Blocks only if the run loop is this far behind; it moves work on at once, so this is
        // backpressure from a stalled apply thread, as etcd's unbuffered applyc gives.
        self.ch
            .apply_tx
            .send(Apply { snapshot, entries, leader, handed_off: Instant::now() })
            .map_err(|_| Error::Stopped)
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for msg in msgs.iter().filter(|m| m.get_msg_type() == MessageType::MsgHeartbeat) {
            self.metrics.heartbeat_sent(msg.to, self.tick_interval);
        }
        for to in self.transport.send(msgs) {
            self.raw.report_unreachable(to);
        }
    }
}

/// What [`RaftNode::widen_group_commit`] decides by: proposals since the last synced write,
/// how many the last one carried, and how long syncs take lately.
#[derive(Default)]
struct GroupCommit {
    proposed: usize,
    last_batch: usize,
    sync_time: Duration,
}

impl GroupCommit {
    /// The longest wait worth making: past it, the latency added outweighs a sync saved.
    const WINDOW_MAX: Duration = Duration::from_micros(500);

    /// As long as a sync takes lately. A/B on put loads (docs/performance.md): half a sync
    /// saved fewer syncs; twice one saved a few more at up to twice the added wait.
    fn window(&self, leader: bool) -> Option<Duration> {
        (leader && self.proposed > 0 && self.last_batch > 1).then(|| self.sync_time.min(Self::WINDOW_MAX))
    }

    /// A synced write of what was proposed since the last one took `took`.
    fn synced(&mut self, took: Duration) {
        self.last_batch = std::mem::take(&mut self.proposed);
        // A moving average over about eight syncs: one slow sync must not open the window wide.
        self.sync_time = (self.sync_time * 7 + took) / 8;
    }
}

/// ReadIndex requests, batched: every request that arrives while a round is in flight joins
/// the next round, so one raft round-trip serves any number of concurrent readers.
#[derive(Default)]
struct ReadIndexQueue {
    next_ctx: u64,
    pending: Vec<Reply<u64>>,
    inflight: Option<ReadRound>,
}

struct ReadRound {
    ctx: u64,
    /// The leader when the round started: its answer is only good while that one leads.
    leader_id: u64,
    started: Instant,
    waiters: Vec<Reply<u64>>,
}

impl ReadIndexQueue {
    fn start_round(&mut self, raw: &mut RawNode<RaftStorage>) {
        if self.inflight.is_some() || self.pending.is_empty() || raw.raft.leader_id == raft::INVALID_ID {
            return;
        }
        let waiters = std::mem::take(&mut self.pending);
        self.issue(raw, waiters);
    }

    fn issue(&mut self, raw: &mut RawNode<RaftStorage>, waiters: Vec<Reply<u64>>) {
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        raw.read_index(ctx.to_be_bytes().to_vec());
        let leader_id = raw.raft.leader_id;
        self.inflight = Some(ReadRound { ctx, leader_id, started: Instant::now(), waiters });
    }

    /// Issues again a round that got no answer in time; returns whether it did (etcd's
    /// slow read index).
    fn retry_stale(&mut self, raw: &mut RawNode<RaftStorage>) -> bool {
        let Some(round) = self.inflight.take_if(|r| r.started.elapsed() >= READ_INDEX_RETRY) else { return false };
        self.issue(raw, round.waiters);
        true
    }

    fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        if let Some(round) = self.inflight.take_if(|r| ctx == r.ctx.to_be_bytes()) {
            for waiter in round.waiters {
                waiter.send(Ok(index));
            }
        }
    }

    fn abort_round_unless_led_by(&mut self, leader_id: u64) {
        if let Some(round) = self.inflight.take_if(|r| r.leader_id != leader_id) {
            for waiter in round.waiters {
                waiter.send(Err(Error::LeaderChanged));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::ConfState;

    /// A single-voter raft node that leads: its ReadIndex answers come back in its next Ready.
    fn leader(dir: &std::path::Path) -> (RawNode<RaftStorage>, Arc<Db>) {
        let db = Arc::new(Db::open(dir).unwrap());
        let mut storage = RaftStorage::open(db.clone()).unwrap();
        let mut batch = WriteBatch::default();
        let mut meta = SnapshotMetadata { index: 1, term: 1, ..Default::default() };
        meta.set_conf_state(ConfState::from((vec![1], vec![])));
        storage.apply_snapshot(&mut batch, &meta).unwrap();
        db.write(batch, true).unwrap();
        let cfg = raft::Config { id: 1, applied: 1, ..Default::default() };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&cfg, storage, &logger).unwrap();
        raw.campaign().unwrap();
        assert_eq!(raw.raft.state, StateRole::Leader);
        // Commit the new term's empty entry: a leader answers ReadIndex only after that.
        handle_ready(&mut raw, &db, &mut ReadIndexQueue::default());
        assert_eq!(raw.raft.raft_log.committed, 2);
        (raw, db)
    }

    /// One Ready as `on_ready` handles it, reduced to what reads need: persist, hand the
    /// read states on, advance.
    fn handle_ready(raw: &mut RawNode<RaftStorage>, db: &Db, reads: &mut ReadIndexQueue) {
        let mut rd = raw.ready();
        let mut batch = WriteBatch::default();
        raw.mut_store().append(&mut batch, rd.entries()).unwrap();
        if let Some(hs) = rd.hs() {
            raw.mut_store().set_hard_state(&mut batch, hs);
        }
        db.write(batch, true).unwrap();
        for rs in rd.take_read_states() {
            reads.on_read_state(&rs.request_ctx, rs.index);
        }
        raw.advance(rd);
        raw.advance_apply();
    }

    /// A reply that reports into `outcomes` under `name`.
    fn waiter(name: &'static str, outcomes: &Sender<(&'static str, Result<u64>)>) -> Reply<u64> {
        let outcomes = outcomes.clone();
        Reply::new(move |outcome| outcomes.send((name, outcome)).unwrap())
    }

    fn drain(rx: &Receiver<(&'static str, Result<u64>)>) -> Vec<String> {
        rx.try_iter().map(|(name, outcome)| format!("{name}:{outcome:?}")).collect()
    }

    #[test]
    fn reads_are_batched_into_one_round_at_a_time_and_answered_by_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut raw, db) = leader(dir.path());
        let (tx, rx) = channel::unbounded();
        let mut reads = ReadIndexQueue::default();

        reads.pending.extend([waiter("a", &tx), waiter("b", &tx)]);
        reads.start_round(&mut raw);
        // Arriving while a round is in flight: the next round's.
        reads.pending.push(waiter("c", &tx));
        reads.start_round(&mut raw);
        assert_eq!(reads.inflight.as_ref().map(|r| (r.ctx, r.waiters.len())), Some((1, 2)));
        // An answer to a context no round has (a late answer to a retried round) is ignored.
        reads.on_read_state(&99u64.to_be_bytes(), 5);
        assert!(reads.inflight.is_some());
        handle_ready(&mut raw, &db, &mut reads);
        assert_eq!(drain(&rx), ["a:Ok(2)", "b:Ok(2)"]);

        reads.start_round(&mut raw);
        handle_ready(&mut raw, &db, &mut reads);
        assert_eq!(drain(&rx), ["c:Ok(2)"]);
        assert!(reads.inflight.is_none() && reads.pending.is_empty());
    }

    #[test]
    fn a_round_is_retried_when_stale_and_failed_when_its_leader_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut raw, _db) = leader(dir.path());
        let (tx, rx) = channel::unbounded();
        let mut reads = ReadIndexQueue::default();

        reads.pending.push(waiter("a", &tx));
        reads.start_round(&mut raw);
        // Round 1's answer never arrives (no Ready is handled).
        reads.retry_stale(&mut raw);
        assert_eq!(reads.inflight.as_ref().map(|r| r.ctx), Some(1), "not stale yet");
        reads.inflight.as_mut().unwrap().started -= READ_INDEX_RETRY;
        reads.retry_stale(&mut raw);
        assert_eq!(reads.inflight.as_ref().map(|r| (r.ctx, r.waiters.len())), Some((2, 1)));
        // The same leader: the round stands.
        reads.abort_round_unless_led_by(1);
        assert!(reads.inflight.is_some() && drain(&rx).is_empty());
        // Another leader: its answer would not be linearizable.
        reads.abort_round_unless_led_by(2);
        assert!(reads.inflight.is_none());
        assert_eq!(drain(&rx), [format!("a:Err({:?})", Error::LeaderChanged)]);
    }

    #[test]
    fn group_commit_waits_only_for_a_leader_under_load_and_at_most_a_sync() {
        let mut group = GroupCommit { proposed: 1, ..GroupCommit::default() };
        group.synced(Duration::from_micros(800));
        group.proposed = 1;
        assert_eq!(group.window(true), None, "a lone client's proposal never waits");
        group.proposed = 3;
        group.synced(Duration::from_micros(800));
        group.proposed = 1;
        assert_eq!(group.window(false), None, "a follower has nothing to gather");
        // Two 800 µs syncs into the moving average: 100 µs, then (7 × 100 + 800) / 8.
        assert_eq!(group.window(true), Some(Duration::from_nanos(187_500)));
        for _ in 0..50 {
            group.proposed = 4;
            group.synced(Duration::from_millis(3));
        }
        group.proposed = 1;
        assert_eq!(group.window(true), Some(GroupCommit::WINDOW_MAX));
    }

    #[test]
    fn no_round_starts_without_a_leader() {
        let dir = tempfile::tempdir().unwrap();
        let (mut raw, _db) = leader(dir.path());
        raw.raft.become_follower(3, raft::INVALID_ID);
        let (tx, _rx) = channel::unbounded();
        let mut reads = ReadIndexQueue::default();
        reads.pending.push(waiter("a", &tx));
        reads.start_round(&mut raw);
        assert!(reads.inflight.is_none() && reads.pending.len() == 1);
    }
}
