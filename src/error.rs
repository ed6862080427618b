//! The crate's public [`Error`] and the one table that maps it to etcd's wire errors.
//!
//! Client-visible variants display exactly as etcd's gRPC errors do
//! (`etcdserver: requested lease not found`, ...) and [`Error::code`] gives the gRPC [`Code`]
//! etcd returns with them; [`Code::http_status`] is the gateway's status for it. The other
//! variants are operational: they stop a node or fail its start, and are logged, not sent to
//! clients verbatim. A client's errors (the server's answer, an endpoint out of reach) are
//! [`crate::client::Error`].

use crate::storage;

/// gRPC status codes (`google.golang.org/grpc/codes`), with the HTTP status etcd's gateway
/// answers each with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Code {
    Ok = 0,
    Canceled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code with number `n`; an unknown number is `Unknown`, as grpc-go reads one.
    pub fn from_u32(n: u32) -> Code {
        Code::ALL.get(n as usize).copied().unwrap_or(Code::Unknown)
    }

    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// grpc-go's `Code.String()`: the `grpc_code` label of the gRPC server's series.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Canceled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }

    /// The HTTP status grpc-gateway's `HTTPStatusFromCode` gives the code, except
    /// FailedPrecondition: 400, as upstream etcd 3.4.23 (grpc-gateway ≥ 1.9.5) answers, where
    /// Debian's build (grpc-gateway 1.6) says 412.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Ok => 200,
            Code::Canceled => 408,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::Unauthenticated => 401,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
        }
    }

    /// Errors the client caused (a bad request, a missing key or lease): not worth a log line.
    pub fn is_client_fault(self) -> bool {
        matches!(self, Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::OutOfRange)
    }
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
    /// A put, revoke or keepalive named a lease that does not exist.
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
    /// The cluster has no leader now (an election is under way, or no quorum).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Authenticate while authentication is disabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// Authenticate with an unknown user or a wrong password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// Authenticate with a password as a user added with `--no-password`: a plain error in
    /// etcd (not in its gRPC error map), so its `auth:` text and code Unknown.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// The caller's user lacks the permission the call needs.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// A token that is unknown, expired, badly signed or garbage.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// Removing the `root` user or role, or `root`'s role from it, while auth is enabled.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// Credentials checked at an auth revision older than the store's.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// An auth error as etcd's maintenance calls (alarm, defragment, hash, hash of the
    /// history, snapshot) answer it: the `auth` package's own error, which their handlers
    /// return without the gRPC conversion, so with its `auth:` text and code Unknown.
    #[error("{}", .0.auth_package_text().unwrap_or_default())]
    Unconverted(Box<Error>),
    /// Auth enable without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// Auth enable while the `root` user lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// A user add naming a user that exists.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// A role add naming a role that exists.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// A role revoke of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// A permission revoke of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// A permission grant without the permission (etcd 3.5's check; 3.4 crashes).
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// A user add without a name.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// A user call naming a user that does not exist.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// A role add without a name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// A role call (or a grant) naming a role that does not exist.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// A write that would grow the database past `--quota-backend-bytes`, or any growing write
    /// while the NOSPACE alarm is raised.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A write while the CORRUPT alarm is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// A call raftkv knows but cannot serve yet; the message names what is missing.
    #[error("raftkv: {0} is not implemented yet")]
    Unimplemented(&'static str),
    /// A gRPC health check of a service name the server does not register (grpc-go's answer).
    #[error("unknown service")]
    UnknownHealthService,

    /// A proposal raft refused to take (no leader yet, or a leadership transfer in progress).
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// The request's entry was overwritten by a new leader, or its leader went away: the write
    /// did not happen.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    /// A member call named an id that is not a member.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// A member add whose id (from its peer URLs) is a member already.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// A member add or update with peer URLs another member has.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Peer URLs that are not `http://host:port`.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// A promote of a member that is a voter already.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// A promote of a learner that has less than 90% of the leader's log.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// A learner add while the cluster has one already (etcd's limit).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A change that would leave fewer started members than a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// A call only the leader answers (move-leader) reached another member.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A move-leader to a learner or to a non-member.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The target of a move-leader did not take over within the request timeout.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// A write or linearizable read reached a learner.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// This member was removed from the cluster; it stops (etcd: "the member has been
    /// permanently removed from the cluster").
    #[error("the member has been permanently removed from the cluster")]
    MemberRemoved,

    /// An election's `Proclaim` (or a `Campaign` that had to proclaim its new value) whose
    /// leader key is not held at its revision (etcd's `concurrency.ErrElectionNotLeader`).
    #[error("election: not leader")]
    ElectionNotLeader,
    /// An election's `Leader` while nobody campaigns (`concurrency.ErrElectionNoLeader`).
    #[error("election: no leader")]
    ElectionNoLeader,
    /// `Proclaim` or `Resign` without its leader key (`v3election.ErrMissingLeaderKey`).
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// A waiting call (`Lock`, `Campaign`) whose caller went away: its client hung up, reset
    /// the stream or reached its deadline (Go's `context.Canceled`, as grpc-go reports it).
    #[error("context canceled")]
    Canceled,
    /// An error of a key-value or lease call the lock and election services made on this
    /// member, as etcd passes it on: etcd's services call their own server through an
    /// in-process client, which turns etcd's errors into plain Go errors, so they reach the
    /// caller with etcd's message and gRPC's `Unknown` code (the gateway's 500, code 2).
    #[error("{0}")]
    Relayed(Box<Error>),

    /// A peer's own error for a call this member made to it (the leader's for a forwarded
    /// lease keepalive or time-to-live, any member's for HashKV): its etcd message and gRPC
    /// code, passed on as they are.
    #[error("{message}")]
    Peer { code: Code, message: String },

    /// This member's HashKV differs from a peer's at the same revision and compact revision
    /// (`--experimental-initial-corrupt-check`): it refuses to start, with etcd's message.
    #[error("{member_id:x} found data inconsistency with peers")]
    DataInconsistency { member_id: u64 },
    /// A call to a peer on a connection of its own got no answer: the peer is down, not a
    /// member, refused the connection or broke the protocol (the corruption checks log it and
    /// go on, as etcd's do).
    #[error("peer {peer:x} unreachable: {reason}")]
    PeerUnreachable { peer: u64, reason: String },

    /// The configuration cannot work; the message says which setting and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A TLS setting, certificate or key cannot be used; the message names the file or flag.
    #[error("tls: {0}")]
    Tls(String),
    /// `snapshot restore` refused its file or flags; the message is etcdctl's.
    #[error("{0}")]
    Restore(String),
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
    /// A thread the member cannot run without panicked (a bug): the member stops rather than
    /// stay up without it, answering nothing.
    #[error("thread {thread} panicked: {message}")]
    Panicked { thread: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::pb::PeerError> for Error {
    /// A peer's error as it sent it, except etcd's two mvcc errors that callers tell apart
    /// (the corruption checks, which etcd's `getPeerHashKVHTTP` recognises by their text too).
    fn from(e: crate::pb::PeerError) -> Error {
        let error = Error::Peer { code: Code::from_u32(e.code), message: e.message };
        [Error::Compacted, Error::FutureRevision]
            .into_iter()
            .find(|known| known.to_string() == error.to_string())
            .unwrap_or(error)
    }
}

impl Error {
    /// `e` as etcd's maintenance handlers leak it: an auth error unconverted, anything else
    /// as it is.
    pub fn unconverted(e: Error) -> Error {
        match e.auth_package_text() {
            Some(_) => Error::Unconverted(Box::new(e)),
            None => e,
        }
    }

    /// The text of etcd's `auth` package error behind an auth check's answer
    /// (`auth/store.go`), for the calls that leak it unconverted.
    fn auth_package_text(&self) -> Option<&'static str> {
        Some(match self {
            Error::UserEmpty => "auth: user name is empty",
            Error::UserNotFound => "auth: user not found",
            Error::PermissionDenied => "auth: permission denied",
            Error::InvalidAuthToken => "auth: invalid auth token",
            Error::AuthOldRevision => "auth: revision in header is old",
            _ => return None,
        })
    }

    /// The gRPC code etcd answers this error with (etcd's `toGRPCErrorMap`): the one table
    /// every protocol maps errors through.
    pub fn code(&self) -> Code {
        use Error::*;
        match self {
            Peer { code, .. } => *code,
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey | InvalidSortOption
            | RequestTooLarge | MemberBadUrls | UserEmpty | RoleEmpty | PermissionNotGiven | AuthFailed
            | InvalidAuthMgmt | AuthOldRevision => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            NoPasswordUser | Unconverted(_) => Code::Unknown,
            Compacted | FutureRevision | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound | MemberNotFound | UnknownHealthService => Code::NotFound,
            AuthNotEnabled
            | RootUserNotExist
            | RootRoleNotExist
            | UserAlreadyExist
            | RoleAlreadyExist
            | RoleNotGranted
            | PermissionNotGranted
            | UserNotFound
            | RoleNotFound
            | LeaseExists
            | MemberExists
            | PeerUrlExists
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotEnoughStartedMembers
            | NotLeader
            | BadLeaderTransferee => Code::FailedPrecondition,
            TooManyRequests | NoSpace => Code::ResourceExhausted,
            Timeout
            | Stopped
            | LeaderChanged
            | NoLeader
            | TimeoutDueToLeaderFail
            | NotSupportedForLearner
            | MemberRemoved
            | PeerUnreachable { .. } => Code::Unavailable,
            // Not in etcd's error map, so its gRPC layer answers them as Unknown.
            ProposalDropped | LeaderTransferTimeout => Code::Unknown,
            // Plain Go errors of etcd's lock and election services.
            ElectionNotLeader | ElectionNoLeader | MissingLeaderKey | Relayed(_) => Code::Unknown,
            Canceled => Code::Canceled,
            Unimplemented(_) => Code::Unimplemented,
            Decode { .. } | Corrupt | DataInconsistency { .. } => Code::DataLoss,
            Config(_)
            | Tls(_)
            | Restore(_)
            | DataDir { .. }
            | Storage(_)
            | Raft(_)
            | Spawn { .. }
            | Panicked { .. } => Code::Unknown,
        }
    }

    /// True for the errors that mean "this member cannot go on" rather than "this request failed".
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Storage(_) | Error::Raft(_) | Error::Decode { .. } | Error::Spawn { .. } | Error::Panicked { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every client-visible variant against etcd 3.4.23's `v3rpc/rpctypes/error.go` (message
    /// and code) and the HTTP status its gateway answers with (`../shared/etcd/transcript.md`).
    #[test]
    fn client_errors_are_etcds() {
        use Code::*;
        let table: Vec<(Error, &str, Code)> = vec![
            (Error::EmptyKey, "etcdserver: key is not provided", InvalidArgument),
            (Error::KeyNotFound, "etcdserver: key not found", InvalidArgument),
            (Error::ValueProvided, "etcdserver: value is provided", InvalidArgument),
            (Error::LeaseProvided, "etcdserver: lease is provided", InvalidArgument),
            (Error::TooManyOps, "etcdserver: too many operations in txn request", InvalidArgument),
            (Error::DuplicateKey, "etcdserver: duplicate key given in txn request", InvalidArgument),
            // etcd 3.6's (3.4 has no such check: it crashes instead).
            (Error::InvalidSortOption, "etcdserver: invalid sort option", InvalidArgument),
            (Error::RequestTooLarge, "etcdserver: request is too large", InvalidArgument),
            (Error::TooManyRequests, "etcdserver: too many requests", ResourceExhausted),
            (Error::NoSpace, "etcdserver: mvcc: database space exceeded", ResourceExhausted),
            (Error::Corrupt, "etcdserver: corrupt cluster", DataLoss),
            (Error::Compacted, "etcdserver: mvcc: required revision has been compacted", OutOfRange),
            (Error::FutureRevision, "etcdserver: mvcc: required revision is a future revision", OutOfRange),
            (Error::LeaseNotFound, "etcdserver: requested lease not found", NotFound),
            (Error::LeaseExists, "etcdserver: lease already exists", FailedPrecondition),
            (Error::LeaseTtlTooLarge, "etcdserver: too large lease TTL", OutOfRange),
            (Error::Timeout, "etcdserver: request timed out", Unavailable),
            (Error::Stopped, "etcdserver: server stopped", Unavailable),
            (Error::LeaderChanged, "etcdserver: leader changed", Unavailable),
            (Error::NoLeader, "etcdserver: no leader", Unavailable),
            (Error::AuthNotEnabled, "etcdserver: authentication is not enabled", FailedPrecondition),
            (Error::RootUserNotExist, "etcdserver: root user does not exist", FailedPrecondition),
            (Error::AuthFailed, "etcdserver: authentication failed, invalid user ID or password", InvalidArgument),
            (Error::PermissionDenied, "etcdserver: permission denied", PermissionDenied),
            (Error::InvalidAuthToken, "etcdserver: invalid auth token", Unauthenticated),
            (Error::InvalidAuthMgmt, "etcdserver: invalid auth management", InvalidArgument),
            (Error::AuthOldRevision, "etcdserver: revision of auth store is old", InvalidArgument),
            (Error::unconverted(Error::PermissionDenied), "auth: permission denied", Unknown),
            (Error::unconverted(Error::InvalidAuthToken), "auth: invalid auth token", Unknown),
            (Error::unconverted(Error::UserEmpty), "auth: user name is empty", Unknown),
            (Error::UserEmpty, "etcdserver: user name is empty", InvalidArgument),
            (Error::UserNotFound, "etcdserver: user name not found", FailedPrecondition),
            (Error::RoleEmpty, "etcdserver: role name is empty", InvalidArgument),
            (Error::RoleNotFound, "etcdserver: role name not found", FailedPrecondition),
            (Error::RootRoleNotExist, "etcdserver: root user does not have root role", FailedPrecondition),
            (Error::UserAlreadyExist, "etcdserver: user name already exists", FailedPrecondition),
            (Error::RoleAlreadyExist, "etcdserver: role name already exists", FailedPrecondition),
            (Error::RoleNotGranted, "etcdserver: role is not granted to the user", FailedPrecondition),
            (Error::PermissionNotGranted, "etcdserver: permission is not granted to the role", FailedPrecondition),
            // etcd 3.5's (`ErrGRPCPermissionNotGiven`).
            (Error::PermissionNotGiven, "etcdserver: permission not given", InvalidArgument),
            // grpc-go's health server (`grpc/health/server.go`).
            (Error::UnknownHealthService, "unknown service", NotFound),
            (Error::ProposalDropped, "raft proposal dropped", Unknown),
            (
                Error::TimeoutDueToLeaderFail,
                "etcdserver: request timed out, possibly due to previous leader failure",
                Unavailable,
            ),
            (Error::MemberNotFound, "etcdserver: member not found", NotFound),
            (Error::MemberExists, "etcdserver: member ID already exist", FailedPrecondition),
            (Error::PeerUrlExists, "etcdserver: Peer URLs already exists", FailedPrecondition),
            (Error::MemberBadUrls, "etcdserver: given member URLs are invalid", InvalidArgument),
            (Error::MemberNotLearner, "etcdserver: can only promote a learner member", FailedPrecondition),
            (
                Error::LearnerNotReady,
                "etcdserver: can only promote a learner member which is in sync with leader",
                FailedPrecondition,
            ),
            (Error::TooManyLearners, "etcdserver: too many learner members in cluster", FailedPrecondition),
            (
                Error::NotEnoughStartedMembers,
                "etcdserver: re-configuration failed due to not enough started members",
                FailedPrecondition,
            ),
            (Error::NotLeader, "etcdserver: not leader", FailedPrecondition),
            (Error::BadLeaderTransferee, "etcdserver: bad leader transferee", FailedPrecondition),
            (Error::LeaderTransferTimeout, "etcdserver: request timed out, leader transfer took too long", Unknown),
            (Error::NotSupportedForLearner, "etcdserver: rpc not supported for learner", Unavailable),
            // The lock and election services' own (`concurrency/election.go`,
            // `v3election/election.go`), and etcd's errors as they relay them: the gateway
            // answers `{"error":"etcdserver: requested lease not found",...,"code":2}` to a
            // lock on an unknown lease.
            (Error::ElectionNotLeader, "election: not leader", Unknown),
            (Error::ElectionNoLeader, "election: no leader", Unknown),
            (Error::MissingLeaderKey, "\"leader\" field must be provided", Unknown),
            (Error::Relayed(Box::new(Error::LeaseNotFound)), "etcdserver: requested lease not found", Unknown),
            (Error::Relayed(Box::new(Error::EmptyKey)), "etcdserver: key is not provided", Unknown),
            (Error::Canceled, "context canceled", Canceled),
        ];
        for (error, message, code) in table {
            assert_eq!((error.to_string().as_str(), error.code()), (message, code), "{error:?}");
            assert!(!error.is_fatal(), "{error:?}");
        }
        let peer = Error::Peer { code: OutOfRange, message: "etcdserver: too large lease TTL".into() };
        assert_eq!((peer.to_string().as_str(), peer.code()), ("etcdserver: too large lease TTL", OutOfRange));
    }

    #[test]
    fn a_peers_error_keeps_its_text_and_code_and_the_mvcc_ones_their_type() {
        let from_peer =
            |e: Error| Error::from(crate::pb::PeerError { code: e.code().as_u32(), message: e.to_string() });
        assert!(matches!(from_peer(Error::Compacted), Error::Compacted));
        assert!(matches!(from_peer(Error::FutureRevision), Error::FutureRevision));
        let other = from_peer(Error::LeaseTtlTooLarge);
        assert!(matches!(&other, Error::Peer { code: Code::OutOfRange, .. }), "{other:?}");
        assert_eq!(other.to_string(), "etcdserver: too large lease TTL");
        let inconsistent = Error::DataInconsistency { member_id: 0x8e9e05c52164694d };
        assert_eq!(inconsistent.to_string(), "8e9e05c52164694d found data inconsistency with peers");
    }

    #[test]
    fn codes_map_to_the_gateways_http_statuses() {
        let statuses: Vec<u16> = Code::ALL.iter().map(|c| c.http_status()).collect();
        assert_eq!(statuses, [200, 408, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401]);
        for (n, code) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::from_u32(n as u32), *code);
        }
        assert_eq!(Code::from_u32(99), Code::Unknown);
    }
}
