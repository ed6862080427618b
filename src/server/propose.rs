//! [`Proposer`]: the one path from a caller into the raft log, and [`Ticket`], when a caller
//! started that way should give up.
//!
//! A proposal is checked against admission control (etcd's: refused while more than
//! [`MAX_APPLY_LAG`] committed entries await apply) and the request size limit, encoded as an
//! [`InternalRequest`] under a fresh request id, registered with its reply in the [`Wait`]
//! registry, and queued for the raft thread. The apply thread answers the reply. Runs on the
//! caller's thread (client threads, HTTP loops, the lessor and compactor threads); never blocks
//! beyond the raft queue's backpressure, bounded by the request's deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{SendTimeoutError, Sender};
use prost::Message as _;
use raft::prelude::ConfChange;

use crate::apply::{AppliedIndex, Response};
use crate::metrics::{IntCounter, Registry};
use crate::pb::internal_request::Request;
use crate::pb::{InternalRequest, RequestHeader};
use crate::raft::{Proposal, RaftRequest, RaftStatus};
use crate::wait::{oneshot, Reply, Wait};
use crate::{Error, Result};

/// Admission control (etcd's `maxGapBetweenApplyAndCommitIndex`): new proposals are refused with
/// `etcdserver: too many requests` while more committed entries than this await apply. This is
/// the bound of the otherwise unbounded FIFO job queue.
pub const MAX_APPLY_LAG: u64 = 5000;

/// Unique request ids (etcd's `idutil.Generator`): the member id's low 16 bits, then 48 bits
/// seeded from the start time in milliseconds and counted up, so ids do not repeat across
/// restarts of one member or between members.
pub struct RequestIds {
    prefix: u64,
    suffix: AtomicU64,
}

impl RequestIds {
    pub fn new(member_id: u64) -> RequestIds {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        RequestIds { prefix: (member_id & 0xffff) << 48, suffix: AtomicU64::new(millis << 8) }
    }

    pub fn next(&self) -> u64 {
        self.prefix | (self.suffix.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1))
    }
}

/// Proposes on behalf of callers and of the member itself.
pub struct Proposer {
    pub ids: RequestIds,
    request_tx: Sender<RaftRequest>,
    wait: Arc<Wait<Response>>,
    raft: Arc<RaftStatus>,
    applied: Arc<AppliedIndex>,
    request_timeout: Duration,
    max_request_bytes: usize,
    /// etcd's `proposals_failed_total`: proposals that never reached their outcome (refused
    /// by raft, overwritten by a new leader's log, or timed out). Counted by [`Ticket::expire`]
    /// and by the raft thread's [`Proposer::fail`].
    failed: IntCounter,
}

/// What a [`Proposer`] is wired to.
pub struct ProposerParts {
    pub ids: RequestIds,
    pub request_tx: Sender<RaftRequest>,
    pub wait: Arc<Wait<Response>>,
    pub raft: Arc<RaftStatus>,
    pub applied: Arc<AppliedIndex>,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
}

impl Proposer {
    pub fn new(parts: ProposerParts, registry: &Registry) -> Proposer {
        let ProposerParts { ids, request_tx, wait, raft, applied, request_timeout, max_request_bytes } = parts;
        let failed =
            crate::metrics::counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.");
        registry.register(failed.clone());
        Proposer { ids, request_tx, wait, raft, applied, request_timeout, max_request_bytes, failed }
    }

    /// Proposals waiting for their outcome (etcd's `proposals_pending`).
    pub fn pending(&self) -> usize {
        self.wait.len()
    }

    /// Fails the caller of proposal `id`, which will not be applied as proposed.
    pub fn fail(&self, id: u64, error: Error) {
        self.failed.inc();
        self.wait.trigger([(id, Err(error))]);
    }

    /// Whether the member stopped: every call is answered `etcdserver: server stopped`.
    pub fn is_stopped(&self) -> bool {
        self.wait.is_closed()
    }

    /// When a request started now gives up.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }

    /// Proposes `request` with its caller's `header` (none for the member's own); `reply` gets
    /// the outcome of applying it (or the refusal, maybe at once on this thread).
    pub fn propose(&self, header: Option<RequestHeader>, request: Request, reply: Reply<Response>) -> Ticket {
        if self.raft.commit_index().saturating_sub(self.applied.get()) > MAX_APPLY_LAG {
            return self.refuse(reply, Error::TooManyRequests);
        }
        let id = self.ids.next();
        let data = InternalRequest { id, header, request: Some(request) }.encode_to_vec();
        if data.len() > self.max_request_bytes {
            return self.refuse(reply, Error::RequestTooLarge);
        }
        let deadline = self.deadline();
        let proposal = Proposal { id, data, deadline, queued: Instant::now() };
        self.submit(id, RaftRequest::Propose(proposal), deadline, reply)
    }

    /// Proposes a configuration change whose context carries `id`, the id `reply` waits under.
    pub fn propose_conf_change(&self, id: u64, change: ConfChange, reply: Reply<Response>) -> Ticket {
        self.submit(id, RaftRequest::ProposeConfChange(change), self.deadline(), reply)
    }

    /// Proposes `request` without waiting for its outcome (lease revokes and checkpoints,
    /// compactions: if one is lost, its proposer asks again). Never blocks: a full queue
    /// drops it.
    pub fn propose_nowait(&self, request: Request) {
        let id = self.ids.next();
        let data = InternalRequest { id, header: None, request: Some(request) }.encode_to_vec();
        let deadline = self.deadline();
        let proposal = Proposal { id, data, deadline, queued: Instant::now() };
        if self.request_tx.try_send(RaftRequest::Propose(proposal)).is_err() {
            log::debug!("raftkv: request queue full; internal proposal {id:x} dropped");
        }
    }

    /// Hands `request` (registered as `id`) to the raft thread.
    fn submit(&self, id: u64, request: RaftRequest, deadline: Instant, reply: Reply<Response>) -> Ticket {
        let ticket = Ticket {
            wait: Some(self.wait.clone()),
            raft: self.raft.clone(),
            id: Some(id),
            term: Some(self.raft.term()),
            deadline,
            failed: Some(self.failed.clone()),
        };
        self.wait.register(id, reply);
        if let Err(e) = self.request_tx.send_deadline(request, deadline) {
            let error = match e {
                SendTimeoutError::Timeout(_) => Error::Timeout,
                SendTimeoutError::Disconnected(_) => Error::Stopped,
            };
            if let Some(reply) = self.wait.take(id) {
                self.failed.inc();
                reply.send(Err(error));
            }
        }
        ticket
    }

    /// Asks the raft thread for something that is not a proposal (a ReadIndex, a leadership
    /// transfer, the followers' progress), waiting at most until `deadline` for queue room.
    pub fn ask(
        &self,
        request: RaftRequest,
        deadline: Instant,
    ) -> std::result::Result<(), SendTimeoutError<RaftRequest>> {
        self.request_tx.send_deadline(request, deadline)
    }

    /// Like [`Proposer::ask`] without waiting: a full queue gives the request back.
    pub fn try_ask(&self, request: RaftRequest) -> std::result::Result<(), RaftRequest> {
        self.request_tx.try_send(request).map_err(|e| e.into_inner())
    }

    /// A ticket for a call that registers nothing.
    pub fn ticket(&self) -> Ticket {
        Ticket { wait: None, raft: self.raft.clone(), id: None, term: None, deadline: self.deadline(), failed: None }
    }

    /// Answers `reply` with `error` now, for a call refused before it started.
    pub fn refuse<T: 'static>(&self, reply: Reply<T>, error: Error) -> Ticket {
        reply.send(Err(error));
        self.ticket()
    }

    /// Answers `ready` with `value` once this member has applied the index of a ReadIndex
    /// round started now (etcd's `linearizableReadNotify`): every write acknowledged before
    /// the call is then visible locally. Answered from the raft or the apply thread.
    pub fn read_index_then<T: Send + 'static>(&self, value: T, ready: Reply<T>) -> Ticket {
        let ticket = self.ticket();
        let applied = self.applied.clone();
        let on_index = Reply::new(move |index: Result<u64>| match index {
            Ok(index) => applied.when_applied(index, Box::new(move || ready.send(Ok(value)))),
            Err(e) => ready.send(Err(e)),
        });
        let asked = self.ask(RaftRequest::ReadIndex { reply: on_index }, ticket.deadline());
        // Disconnected: dropping the reply answers `server stopped`.
        if let Err(SendTimeoutError::Timeout(RaftRequest::ReadIndex { reply })) = asked {
            reply.send(Err(Error::Timeout));
        }
        ticket
    }

    /// etcd's `waitAppliedIndex`: returns once this member applied everything committed now
    /// (a leader answering a lease call, or checking a membership change, must see what other
    /// members wrote).
    pub fn wait_applied(&self) -> Result<()> {
        let deadline = self.deadline();
        let (reply, waiter) = oneshot();
        self.applied.when_applied(self.raft.commit_index(), Box::new(move || reply.send(Ok(()))));
        waiter.wait_until(deadline).unwrap_or(Err(Error::Timeout))
    }
}

/// A call started with one of [`crate::Node`]'s `_then` methods: when its caller should give
/// up, and how.
pub struct Ticket {
    /// Where a proposal's reply is registered (under `id`).
    wait: Option<Arc<Wait<Response>>>,
    raft: Arc<RaftStatus>,
    id: Option<u64>,
    /// The raft term when a proposal started: a timeout after it moved says the leader failed.
    term: Option<u64>,
    deadline: Instant,
    /// A proposal's: counts its expiry as a failed proposal.
    failed: Option<IntCounter>,
}

impl Ticket {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Gives up on the call (its reply will not be answered) and returns the error its caller
    /// should see: etcd's leader-failure message if the term moved since a proposal started.
    pub fn expire(self) -> Error {
        if let (Some(wait), Some(id)) = (&self.wait, self.id) {
            if wait.cancel(id) {
                self.failed.iter().for_each(IntCounter::inc);
            }
        }
        match self.term {
            Some(term) if term != self.raft.term() => Error::TimeoutDueToLeaderFail,
            _ => Error::Timeout,
        }
    }
}

/// Blocks on a call started with a `_then` method until it is answered or due.
pub fn wait_on<T: Send + 'static>(start: impl FnOnce(Reply<T>) -> Ticket) -> Result<T> {
    let (reply, waiter) = oneshot();
    let ticket = start(reply);
    match waiter.wait_until(ticket.deadline()) {
        Some(outcome) => outcome,
        None => Err(ticket.expire()),
    }
}
