//! What a history is made of, and the [`Recorder`] clients log into.
//!
//! An [`Operation`] is one client call: its request, when it was invoked and when it
//! completed (nanoseconds on one monotonic clock, [`now_ns`]), and its [`Outcome`]. A call
//! that timed out or lost its connection may or may not have taken effect: its outcome is
//! [`Outcome::Unknown`] and it completes at [`NEVER`], so the checker may place it anywhere
//! after its invocation, including after everything else (where it changes nothing anyone saw).
//! A [`WatchRecord`] is one watch stream and every response it delivered.
//!
//! The types are the checker's own, not raftkv's protobufs: they hold only what the model
//! checks, and a saved history stays readable if the wire types change.

use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

pub type Bytes = Vec<u8>;

/// The completion time of an operation whose outcome is unknown: it never completed.
pub const NEVER: u64 = u64::MAX;

/// Nanoseconds since the first call in this process, on the monotonic clock every recording
/// thread shares (so invoke/complete times of different threads compare).
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A key-value pair as a read or a watch event returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kv {
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// A key-value request, alone or inside a txn branch.
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    Put {
        key: Bytes,
        value: Bytes,
        lease: i64,
    },
    /// `end` empty: the key alone; `[0]`: every key from `key` on (etcd's convention).
    /// `limit` 0: no limit. Always linearizable (serializable reads are not recorded).
    Range {
        key: Bytes,
        end: Bytes,
        limit: i64,
    },
    Delete {
        key: Bytes,
        end: Bytes,
    },
}

/// What a txn compare looks at, with the operand.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Value(Bytes),
    Version(i64),
    Create(i64),
    Mod(i64),
    Lease(i64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// `target(key) cmp operand`, on one key (range compares are not modelled).
#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    pub key: Bytes,
    pub cmp: Cmp,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Kv(KvOp),
    Txn {
        compares: Vec<Compare>,
        success: Vec<KvOp>,
        failure: Vec<KvOp>,
    },
    /// `id` is the lease's id: the one asked for, or (asked 0) the one the answer named.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    LeaseKeepAlive {
        id: i64,
    },
}

/// The result of one [`KvOp`].
#[derive(Clone, Debug, PartialEq)]
pub enum KvResult {
    Put,
    Range { kvs: Vec<Kv>, count: i64, more: bool },
    Delete { deleted: i64 },
}

/// A definite refusal: the server said no and nothing changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refusal {
    /// etcd's `requested lease not found` (a put or txn naming it, a revoke).
    LeaseNotFound,
    /// etcd's `lease already exists` (a grant).
    LeaseExists,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Kv(KvResult),
    Txn { succeeded: bool, results: Vec<KvResult> },
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive { ttl: i64 },
    Refused(Refusal),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// An answer. `revision` is its `header.revision` where it has one the model can check.
    Ok { revision: Option<i64>, response: Response },
    /// A timeout or a broken connection: it may or may not have taken effect.
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub client: usize,
    pub invoke_ns: u64,
    /// [`NEVER`] when the outcome is unknown.
    pub complete_ns: u64,
    pub request: Request,
    pub outcome: Outcome,
}

impl Operation {
    /// Whether it may change the state (so an unknown outcome cannot be dropped).
    pub fn may_write(&self) -> bool {
        let writes = |ops: &[KvOp]| ops.iter().any(|op| !matches!(op, KvOp::Range { .. }));
        match &self.request {
            Request::Kv(op) => writes(std::slice::from_ref(op)),
            Request::Txn { success, failure, .. } => writes(success) || writes(failure),
            Request::LeaseGrant { .. } | Request::LeaseRevoke { .. } => true,
            Request::LeaseKeepAlive { .. } => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For a delete: the key, with `mod_revision` the revision of the delete.
    pub kv: Kv,
    pub prev_kv: Option<Kv>,
}

impl WatchEvent {
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WatchResponse {
    pub at_ns: u64,
    /// `header.revision`.
    pub revision: i64,
    pub created: bool,
    pub canceled: bool,
    pub events: Vec<WatchEvent>,
}

impl WatchResponse {
    /// etcd's `IsProgressNotify`: no events, neither created nor canceled; it says every
    /// event up to `revision` has been delivered.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.revision != 0
    }
}

/// One watch stream: what it asked for and every response it got, in arrival order. A watch
/// resumed after a broken stream is a record of its own with `start_revision` set.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchRecord {
    pub client: usize,
    pub key: Bytes,
    /// As [`KvOp::Range`]'s `end`.
    pub end: Bytes,
    /// 0: from the revision current at creation.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub responses: Vec<WatchResponse>,
}

/// Whether `key` is in `[start, end)` with etcd's conventions for `end` (see [`KvOp::Range`]).
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

impl WatchRecord {
    pub fn matches(&self, key: &[u8]) -> bool {
        in_range(key, &self.key, &self.end)
    }

    pub fn events(&self) -> impl Iterator<Item = &WatchEvent> {
        self.responses.iter().flat_map(|r| r.events.iter())
    }
}

/// The store a history starts from: empty for a whole run. A long run (the soak) is checked in
/// segments cut where nothing was in flight, each starting from what a read of every key saw
/// at its cut, with the leases alive then.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub revision: i64,
    pub kvs: Vec<Kv>,
    pub leases: Vec<i64>,
}

impl Default for Start {
    /// An empty store: etcd's revision starts at 1.
    fn default() -> Start {
        Start { revision: 1, kvs: Vec::new(), leases: Vec::new() }
    }
}

/// Everything recorded in one run, or one segment of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub start: Start,
    /// In invocation order.
    pub ops: Vec<Operation>,
    pub watches: Vec<WatchRecord>,
}

/// Where client threads log their calls and watches (shared by reference, thread-safe).
#[derive(Default)]
pub struct Recorder {
    /// Completed operations, in completion order.
    ops: Mutex<Vec<Operation>>,
    watches: Mutex<Vec<WatchRecord>>,
}

/// A call invoked and not yet completed; [`Recorder::complete`] takes it back.
#[must_use]
pub struct Invoked {
    client: usize,
    invoke_ns: u64,
    request: Request,
}

impl Recorder {
    pub fn invoke(&self, client: usize, request: Request) -> Invoked {
        Invoked { client, invoke_ns: now_ns(), request }
    }

    pub fn complete(&self, invoked: Invoked, outcome: Outcome) {
        let complete_ns = if outcome == Outcome::Unknown { NEVER } else { now_ns() };
        let Invoked { client, invoke_ns, request } = invoked;
        self.ops.lock().push(Operation { client, invoke_ns, complete_ns, request, outcome });
    }

    /// A finished watch stream.
    pub fn add_watch(&self, watch: WatchRecord) {
        self.watches.lock().push(watch);
    }

    pub fn into_history(self) -> History {
        let mut ops = self.ops.into_inner();
        ops.sort_by_key(|op| op.invoke_ns);
        History { start: Start::default(), ops, watches: self.watches.into_inner() }
    }
}

// Readable forms for reports: etcdctl-like, keys and values as text.

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl fmt::Display for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} (create {} mod {} ver {}",
            text(&self.key),
            text(&self.value),
            self.create_revision,
            self.mod_revision,
            self.version
        )?;
        if self.lease != 0 {
            write!(f, " lease {}", self.lease)?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |key: &[u8], end: &[u8]| match end {
            [] => text(key).into_owned(),
            [0] => format!("{}..", text(key)),
            _ => format!("{}..{}", text(key), text(end)),
        };
        match self {
            KvOp::Put { key, value, lease: 0 } => write!(f, "put {}={}", text(key), text(value)),
            KvOp::Put { key, value, lease } => write!(f, "put {}={} lease {lease}", text(key), text(value)),
            KvOp::Range { key, end, limit: 0 } => write!(f, "get {}", range(key, end)),
            KvOp::Range { key, end, limit } => write!(f, "get {} limit {limit}", range(key, end)),
            KvOp::Delete { key, end } => write!(f, "delete {}", range(key, end)),
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join("; ")
}

impl fmt::Display for Compare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmp = match self.cmp {
            Cmp::Equal => "==",
            Cmp::Greater => ">",
            Cmp::Less => "<",
            Cmp::NotEqual => "!=",
        };
        let key = text(&self.key);
        match &self.target {
            Target::Value(v) => write!(f, "value({key}) {cmp} {}", text(v)),
            Target::Version(n) => write!(f, "version({key}) {cmp} {n}"),
            Target::Create(n) => write!(f, "create({key}) {cmp} {n}"),
            Target::Mod(n) => write!(f, "mod({key}) {cmp} {n}"),
            Target::Lease(n) => write!(f, "lease({key}) {cmp} {n}"),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Kv(op) => op.fmt(f),
            Request::Txn { compares, success, failure } => {
                write!(f, "txn if [{}] then [{}] else [{}]", list(compares), list(success), list(failure))
            }
            Request::LeaseGrant { id, ttl } => write!(f, "lease grant {id} ttl {ttl}"),
            Request::LeaseRevoke { id } => write!(f, "lease revoke {id}"),
            Request::LeaseKeepAlive { id } => write!(f, "lease keepalive {id}"),
        }
    }
}

impl fmt::Display for KvResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvResult::Put => f.write_str("ok"),
            KvResult::Range { kvs, count, more } => {
                write!(f, "[{}] count {count}{}", list(kvs), if *more { " more" } else { "" })
            }
            KvResult::Delete { deleted } => write!(f, "deleted {deleted}"),
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Kv(result) => result.fmt(f),
            Response::Txn { succeeded, results } => {
                write!(f, "{} [{}]", if *succeeded { "then" } else { "else" }, list(results))
            }
            Response::LeaseGrant | Response::LeaseRevoke => f.write_str("ok"),
            Response::LeaseKeepAlive { ttl } => write!(f, "ttl {ttl}"),
            Response::Refused(refusal) => write!(f, "{refusal:?}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok { revision: Some(r), response } => write!(f, "{response} @{r}"),
            Outcome::Ok { revision: None, response } => response.fmt(f),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}
