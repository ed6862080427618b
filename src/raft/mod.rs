//! The raft layer: raft-rs's `RawNode` on its own thread ([`node`]) over a RocksDB-backed log
//! ([`storage`]).
//!
//! Everything that crosses into the raft thread is a message on one of its channels; everything
//! it produces leaves on the apply channel (committed entries and leadership changes, to the run
//! loop) or through the shared [`RaftStatus`] (term, leader, commit index) that request handlers
//! read for response headers and admission control.

pub mod metrics;
pub mod node;
pub mod storage;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam::channel::Sender;
use raft::prelude::{ConfChange, ConfState, Entry, SnapshotMetadata};

use crate::wait::Reply;
use crate::Result;

/// A client write on its way into the log.
pub struct Proposal {
    /// Request id, for logs: the waiter is registered by the proposer under the same id.
    pub id: u64,
    /// Encoded [`crate::pb::InternalRequest`].
    pub data: Vec<u8>,
    /// After this the caller has given up; a proposal still queued then is dropped.
    pub deadline: Instant,
    /// When it was queued for the raft thread (the queue stage of its timings).
    pub queued: Instant,
}

/// What client threads ask of the raft thread.
pub enum RaftRequest {
    Propose(Proposal),
    /// Linearizable read barrier: replies with an index; once the member has applied it, a
    /// local read reflects every write acknowledged before the request was made.
    ReadIndex {
        reply: Reply<u64>,
    },
    /// A membership change; the waiter is registered under the id in its context.
    ProposeConfChange(ConfChange),
    /// Hand leadership to `target` (etcd's MoveLeader); the caller watches [`RaftStatus`].
    TransferLeader {
        target: u64,
    },
    /// The progress of every member as the leader sees it: (id, matched index); empty when
    /// this member is not the leader.
    Progress {
        reply: Sender<(u64, Vec<(u64, u64)>)>,
    },
}

/// What the apply side reports back to the raft thread.
pub enum ApplyProgress {
    /// Every entry up to `index` is applied (and written to RocksDB).
    Applied { index: u64 },
    /// Record a snapshot of the applied state at `meta.index` and compact the log behind it.
    Snapshot { meta: SnapshotMetadata },
    /// A committed configuration change to apply to raft (only the raft thread may); `None`
    /// tells raft the change was refused. The reply is the configuration now in force.
    ConfChange { change: Option<ConfChange>, reply: Sender<Result<ConfState>> },
}

/// Work for the run loop: committed entries in log order, and leadership news.
pub struct Apply {
    /// A snapshot received from the leader, to install before `entries`.
    pub snapshot: Option<SnapshotMetadata>,
    pub entries: Vec<Entry>,
    /// Set when this Ready changed who leads (or the term).
    pub leader: Option<LeaderChange>,
    /// When the raft thread let go of it.
    pub handed_off: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderChange {
    /// The new leader's member id; 0 when there is none.
    pub leader_id: u64,
    pub term: u64,
    /// Whether this member is the new leader.
    pub is_self: bool,
}

/// The raft thread's latest view, readable by any thread without a lock.
#[derive(Default)]
pub struct RaftStatus {
    term: AtomicU64,
    leader_id: AtomicU64,
    commit_index: AtomicU64,
}

impl RaftStatus {
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub fn leader_id(&self) -> u64 {
        self.leader_id.load(Ordering::Acquire)
    }

    pub fn commit_index(&self) -> u64 {
        self.commit_index.load(Ordering::Acquire)
    }

    fn set(&self, term: u64, leader_id: u64, commit_index: u64) {
        self.term.store(term, Ordering::Release);
        self.leader_id.store(leader_id, Ordering::Release);
        self.commit_index.store(commit_index, Ordering::Release);
    }
}
