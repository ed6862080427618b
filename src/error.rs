//! The crate's public [`Error`] and the one table that maps it to etcd's wire errors.
//!
//! Client-visible variants display exactly as etcd's gRPC errors do
//! (`etcdserver: requested lease not found`, ...) and [`Error::code`] gives the gRPC status code
//! etcd returns with them; the HTTP gateway derives its status from that code. The other variants
//! are operational: they stop a node or fail its start, and are logged, not sent to clients
//! verbatim.

use crate::storage;

/// gRPC status codes used by etcd's errors (`google.golang.org/grpc/codes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    Unknown = 2,
    InvalidArgument = 3,
    NotFound = 5,
    FailedPrecondition = 9,
    ResourceExhausted = 8,
    OutOfRange = 11,
    Unavailable = 14,
    DataLoss = 15,
}

/// Everything a raftkv call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist, or an empty txn op.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn branch or compare list longer than `max_txn_ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// Two writes of one txn path touch the same key.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// An unknown `sort_order` or `sort_target`.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// The encoded request exceeds `max_request_bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Admission control: the applied index lags the committed index too far.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// The requested revision was discarded by a compaction.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the store.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A grant with the id of a live lease.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A grant with a TTL above 9e9 seconds.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// The request was proposed but not applied within the request timeout.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The member is stopping or stopped.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// A read could not be ordered because leadership moved.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: no leader")]
    NoLeader,
    /// An auth call while authentication is disabled (raftkv has no auth yet).
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,

    /// A proposal raft refused to take (no leader yet, or a leadership transfer in progress).
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// The request's entry was overwritten by a new leader, or its leader went away: the write
    /// did not happen.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// This member was removed from the cluster; it stops (etcd: "the member has been
    /// permanently removed from the cluster").
    #[error("the member has been permanently removed from the cluster")]
    MemberRemoved,

    /// An error a remote member answered with (its etcd message and gRPC code), seen by
    /// [`crate::Client`].
    #[error("{message}")]
    Remote { code: u32, message: String },
    /// No endpoint could be reached or it broke the protocol.
    #[error("{endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },

    /// The configuration cannot work; the message says which setting and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data dir holds a different member's or cluster's data, or is unusable.
    #[error("data dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    /// Reading or writing the database failed. On the write path this stops the node.
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    /// raft-rs refused an operation it should not have (a bug or a corrupt log).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A raft log entry or stored record could not be decoded.
    #[error("decode {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    /// A thread could not be started.
    #[error("spawn thread {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The gRPC code etcd answers this error with (the table of etcd's `toGRPCErrorMap`).
    pub fn code(&self) -> u32 {
        use Error::*;
        let code = match self {
            Remote { code, .. } => return *code,
            Unreachable { .. } => Code::Unavailable,
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey | InvalidSortOption
            | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRevision | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            MemberBadUrls => Code::InvalidArgument,
            AuthNotEnabled
            | LeaseExists
            | MemberExists
            | PeerUrlExists
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotEnoughStartedMembers
            | NotLeader
            | BadLeaderTransferee => Code::FailedPrecondition,
            TooManyRequests => Code::ResourceExhausted,
            Timeout
            | Stopped
            | LeaderChanged
            | NoLeader
            | TimeoutDueToLeaderFail
            | LeaderTransferTimeout
            | NotSupportedForLearner
            | MemberRemoved => Code::Unavailable,
            ProposalDropped => Code::Unknown,
            Decode { .. } => Code::DataLoss,
            Config(_) | DataDir { .. } | Storage(_) | Raft(_) | Spawn { .. } => Code::Unknown,
        };
        code as u32
    }

    /// True for the errors that mean "this member cannot go on" rather than "this request failed".
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Storage(_) | Error::Raft(_) | Error::Decode { .. } | Error::Spawn { .. })
    }
}
