//! etcd's streaming calls over gRPC: Watch and LeaseKeepAlive (both directions),
//! Maintenance.Snapshot and Election.Observe (the server's side), as sessions on the HTTP/2
//! stream.
//!
//! Threads: a session lives on its connection's event loop (`raftkv-httpio-N`), which feeds
//! it the client's messages. Watch requests are handled there (registering a watcher does not
//! block) and the watchers' responses are sent by the apply and watch-sync threads; lease
//! renewals (which may be forwarded to the leader), the snapshot and an observer's first read
//! run on the blocking pool, one job at a time per stream so answers keep the requests' order;
//! an observer's later answers come from the apply and watch-sync threads, as a watch's. Answers go back through
//! the stream's [`StreamTx`], bounded per stream ([`crate::api::h2::STREAM_QUEUE_MAX`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prost::Message;

use super::{error, first_message, framed, headers, status, Failure};
use crate::api::h2::{Request, SendError, Session, StreamTx};
use crate::auth::Credentials;
use crate::error::Code;
use crate::metrics::IntCounter;
use crate::pb::{LeaderRequest, LeaseKeepAliveRequest, WatchRequest};
use crate::service::metered::Call;
use crate::service::observe::{Observed, Observer};
use crate::service::rpc::Method;
use crate::service::watch::{BatchSink, WatchSession};
use crate::service::Service;
use crate::watch::SinkError;
use crate::Node;

/// Lease renewals queued on one stream; a client that sends more without reading the answers
/// has its stream ended.
const KEEPALIVE_QUEUE_MAX: usize = 1024;
/// How many election timeouts a stream that requires a leader lives without one (etcd's
/// `maxNoLeaderCnt`).
const NO_LEADER_TIMEOUTS: u32 = 3;

/// Starts the streaming call `method`, or refuses it through `tx` as etcd's stream
/// interceptor does (a learner; no leader when the client requires one).
pub(super) fn open(
    service: &Service,
    method: Method,
    req: &Request,
    deadline: Option<Instant>,
    tx: StreamTx,
) -> Option<Box<dyn Session>> {
    let call = service.stream_started(method);
    let sent = call.sent();
    let call: CallSlot = Arc::new(Mutex::new(Some(call)));
    // Sent with the first message, or with the status if none comes (trailers only).
    tx.headers(headers());
    let credentials = super::credentials(req);
    // A watch checks its credentials with every create; the snapshot and an observer are
    // made as the caller, refused at once when its token is bad.
    let service = match method {
        Method::Snapshot | Method::Observe => match service.for_caller(method, &credentials) {
            Ok(service) => service,
            Err(e) => {
                finish(&tx, &call, Err(error(e)));
                return None;
            }
        },
        _ => service.clone(),
    };
    let node = service.node();
    let require_leader = req.field("hasleader") == Some("true");
    if let Err(e) = node.check_stream(require_leader) {
        finish(&tx, &call, Err(error(e)));
        return None;
    }
    let leader = require_leader.then(|| LeaderWatch { node: node.clone(), since: None });
    let message_max = node.config().grpc_message_max();
    let base = Base { pending: Vec::new(), message_max, tx: tx.clone(), leader, deadline, ended: false, call, sent };
    Some(match method {
        Method::Watch => Box::new(WatchStream::new(node, credentials, base)),
        Method::LeaseKeepAlive => Box::new(KeepAliveStream::new(node, base)),
        Method::Snapshot => Box::new(SnapshotStream { node: node.clone(), base }),
        Method::Observe => Box::new(ObserveStream { service: service.clone(), base, observer: Arc::default() }),
        other => unreachable!("{other:?} is not a stream"),
    })
}

/// A stream's call in the gRPC server's series, ended by whichever thread ends the stream
/// (dropped unended: the client left).
type CallSlot = Arc<Mutex<Option<Call>>>;

/// Ends a stream with a status: OK, or the error's code and message; counts its end.
fn finish(tx: &StreamTx, call: &CallSlot, outcome: Result<(), Failure>) {
    let (code, message) = outcome.err().unwrap_or((Code::Ok, String::new()));
    if let Some(call) = call.lock().take() {
        call.end(code);
    }
    tx.finish(status(code, &message));
}

/// What every session has: the client's messages as they arrive, the stream, and the leader
/// watch of a stream that requires one.
struct Base {
    /// The client's bytes not yet a whole message.
    pending: Vec<u8>,
    /// etcd's limit on one received message.
    message_max: usize,
    tx: StreamTx,
    leader: Option<LeaderWatch>,
    /// The client's `grpc-timeout`, checked about once a second.
    deadline: Option<Instant>,
    /// The stream was ended from here: nothing more is taken.
    ended: bool,
    call: CallSlot,
    /// The call's messages sent.
    sent: IntCounter,
}

impl Base {
    /// Each complete message the data finished, decoded; a bad one ends the stream as
    /// grpc-go's `RecvMsg` fails it.
    fn take<T: Message + Default>(&mut self, data: &[u8], end_of_input: bool) -> Vec<T> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.pending.extend_from_slice(data);
        loop {
            match first_message(&self.pending, self.message_max) {
                Ok(Some((message, len))) => {
                    if let Some(call) = &*self.call.lock() {
                        call.received();
                    }
                    match T::decode(message) {
                        Ok(request) => out.push(request),
                        Err(e) => {
                            let why = format!("grpc: failed to unmarshal the received message {e}");
                            self.end(Err((Code::Internal, why)));
                            return out;
                        }
                    }
                    self.pending.drain(..len);
                }
                Ok(None) => break,
                Err(refused) => {
                    self.end(Err(refused));
                    return out;
                }
            }
        }
        if end_of_input && !self.pending.is_empty() {
            self.end(Err((Code::Internal, "unexpected EOF".into())));
        }
        out
    }

    fn end(&mut self, outcome: Result<(), Failure>) {
        if !self.ended {
            self.ended = true;
            finish(&self.tx, &self.call, outcome);
        }
    }

    /// Ends the stream once the member has had no leader for [`NO_LEADER_TIMEOUTS`] election
    /// timeouts, if the client required one.
    fn tick(&mut self) {
        if self.deadline.is_some_and(|at| Instant::now() >= at) {
            self.end(Err((Code::DeadlineExceeded, "context deadline exceeded".into())));
        }
        if self.leader.as_mut().is_some_and(LeaderWatch::lost) {
            self.end(Err(error(crate::Error::NoLeader)));
        }
    }

    /// The server stops: the client should go to another member.
    fn stop(&mut self) {
        self.end(Err(error(crate::Error::Stopped)));
    }
}

struct LeaderWatch {
    node: Node,
    /// When the member was first seen without a leader, since it last had one.
    since: Option<Instant>,
}

impl LeaderWatch {
    fn lost(&mut self) -> bool {
        if self.node.leader_id() != 0 {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        let election_timeout = Duration::from_millis(self.node.config().election_timeout_ms);
        since.elapsed() >= election_timeout * NO_LEADER_TIMEOUTS
    }
}

/// A watch stream: its requests go to a [`WatchSession`], whose watchers send into the stream.
/// The client ending its side does not end the stream (etcd keeps sending); a reset does,
/// and dropping the session cancels its watchers.
struct WatchStream {
    base: Base,
    session: WatchSession,
}

impl WatchStream {
    fn new(node: &Node, credentials: Credentials, base: Base) -> WatchStream {
        let (tx, sent) = (base.tx.clone(), base.sent.clone());
        let session = WatchSession::new(node.clone(), credentials, move || -> BatchSink {
            let (tx, sent) = (tx.clone(), sent.clone());
            Box::new(move |responses| {
                // Fragments go as one part: queued all together or not at all.
                let bytes = responses.iter().flat_map(|resp| framed(&resp.encode_to_vec())).collect();
                tx.send(bytes).map(|()| sent.inc_by(responses.len() as u64)).map_err(|e| match e {
                    SendError::Full => SinkError::Full,
                    SendError::Closed => SinkError::Closed,
                })
            })
        });
        WatchStream { base, session }
    }
}

impl Session for WatchStream {
    fn data(&mut self, data: &[u8], end: bool) {
        for req in self.base.take::<WatchRequest>(data, end) {
            self.session.request(req);
        }
    }

    fn tick(&mut self) {
        self.base.tick();
    }

    fn stop(&mut self) {
        self.base.stop();
    }
}

/// A lease keepalive stream: one answer per request, in order, renewed on the pool (a
/// follower forwards renewals to the leader). The client ending its side ends the stream
/// once the renewals before it are answered, as etcd's `LeaseKeepAlive` returns at EOF.
struct KeepAliveStream {
    base: Base,
    work: Arc<KeepAliveWork>,
}

struct KeepAliveWork {
    node: Node,
    tx: StreamTx,
    call: CallSlot,
    sent: IntCounter,
    queue: Mutex<KeepAliveQueue>,
}

#[derive(Default)]
struct KeepAliveQueue {
    items: VecDeque<Option<LeaseKeepAliveRequest>>,
    /// A pool job is draining the queue.
    running: bool,
}

impl KeepAliveStream {
    fn new(node: &Node, base: Base) -> KeepAliveStream {
        let work = Arc::new(KeepAliveWork {
            node: node.clone(),
            tx: base.tx.clone(),
            call: base.call.clone(),
            sent: base.sent.clone(),
            queue: Mutex::default(),
        });
        KeepAliveStream { base, work }
    }
}

impl Session for KeepAliveStream {
    fn data(&mut self, data: &[u8], end: bool) {
        let requests = self.base.take::<LeaseKeepAliveRequest>(data, end);
        if self.base.ended {
            return;
        }
        let start = {
            let mut queue = self.work.queue.lock();
            queue.items.extend(requests.into_iter().map(Some));
            if end {
                queue.items.push_back(None);
            }
            if queue.items.len() > KEEPALIVE_QUEUE_MAX {
                drop(queue);
                let why = format!("raftkv: more than {KEEPALIVE_QUEUE_MAX} lease renewals queued on one stream");
                return self.base.end(Err((Code::ResourceExhausted, why)));
            }
            !std::mem::replace(&mut queue.running, true) && !queue.items.is_empty()
        };
        if start {
            let work = self.work.clone();
            if !self.base.tx.spawn_blocking(move || work.drain()) {
                self.work.queue.lock().running = false;
                self.base.end(Err(error(crate::Error::TooManyRequests)));
            }
        }
    }

    fn tick(&mut self) {
        self.base.tick();
    }

    fn stop(&mut self) {
        self.base.stop();
    }
}

impl KeepAliveWork {
    /// Answers the queued renewals in order until the queue is empty (on a pool thread).
    fn drain(&self) {
        loop {
            let item = {
                let mut queue = self.queue.lock();
                match queue.items.pop_front() {
                    Some(item) => item,
                    None => {
                        queue.running = false;
                        return;
                    }
                }
            };
            let outcome = match item {
                None => Err(Ok(())),
                Some(req) => self.node.lease_keep_alive(req).map_err(|e| Err(error(e))),
            };
            let sent = match outcome {
                Ok(resp) => self.tx.send_blocking(framed(&resp.encode_to_vec())).map(|()| self.sent.inc()).is_ok(),
                Err(outcome) => {
                    finish(&self.tx, &self.call, outcome);
                    false
                }
            };
            if !sent {
                let mut queue = self.queue.lock();
                queue.items.clear();
                queue.running = false;
                return;
            }
        }
    }
}

/// A server-streaming call's one request, once the client ended its side: `None` until then,
/// or after ending the stream as grpc-go does when the client sent none or more than one.
fn only_request<T: Message + Default>(base: &mut Base, data: &[u8], end: bool) -> Option<T> {
    let mut requests = base.take::<T>(data, end);
    if base.ended || !end {
        return None;
    }
    if requests.len() != 1 {
        let why = if requests.is_empty() {
            "EOF"
        } else {
            "grpc: client streaming protocol violation: get <nil>, want <EOF>"
        };
        base.end(Err((Code::Internal, why.into())));
        return None;
    }
    base.ended = true;
    requests.pop()
}

/// Maintenance.Snapshot: after the client's one request, the pool streams the member's
/// consistent snapshot in etcd's 32 KiB chunks, then its SHA-256, then OK.
struct SnapshotStream {
    node: Node,
    base: Base,
}

impl Session for SnapshotStream {
    fn data(&mut self, data: &[u8], end: bool) {
        if only_request::<crate::pb::EmptyRequest>(&mut self.base, data, end).is_none() {
            return;
        }
        let (node, tx, call, sent) =
            (self.node.clone(), self.base.tx.clone(), self.base.call.clone(), self.base.sent.clone());
        let started = self.base.tx.spawn_blocking(move || {
            let outcome = node
                .snapshot(&mut |chunk| tx.send_blocking(framed(&chunk.encode_to_vec())).map(|()| sent.inc()).is_ok());
            finish(&tx, &call, outcome.map_err(error));
        });
        if !started {
            finish(&self.base.tx, &self.base.call, Err(error(crate::Error::TooManyRequests)));
        }
    }

    fn stop(&mut self) {
        self.base.stop();
    }
}

/// Election.Observe: after the client's one request, a pool job reads the election and starts
/// the [`Observer`], whose answers then come from the watch's threads. The session keeps the
/// observer, so the stream ending stops it.
struct ObserveStream {
    service: Service,
    base: Base,
    observer: Arc<Mutex<ObserverSlot>>,
}

/// The running observer, once its job has started it.
#[derive(Default)]
struct ObserverSlot {
    observer: Option<Observer>,
    /// The session was dropped: a job that finishes after its stream ended stops the
    /// observer it started at once.
    gone: bool,
}

impl Session for ObserveStream {
    fn data(&mut self, data: &[u8], end: bool) {
        let Some(req) = only_request::<LeaderRequest>(&mut self.base, data, end) else { return };
        let (service, tx, slot) = (self.service.clone(), self.base.tx.clone(), self.observer.clone());
        let (call, sent) = (self.base.call.clone(), self.base.sent.clone());
        let started = self.base.tx.spawn_blocking(move || {
            let (sink_tx, sink_call) = (tx.clone(), call.clone());
            let sink = Box::new(move |observed| match observed {
                Observed::Leaders(leaders) => {
                    let bytes = leaders.iter().flat_map(|resp| framed(&resp.encode_to_vec())).collect();
                    sink_tx.send(bytes).map(|()| sent.inc_by(leaders.len() as u64)).map_err(|e| match e {
                        SendError::Full => SinkError::Full,
                        SendError::Closed => SinkError::Closed,
                    })
                }
                Observed::Ended => {
                    finish(&sink_tx, &sink_call, Ok(()));
                    Err(SinkError::Closed)
                }
            });
            match service.observe(req, sink) {
                Ok(observer) => {
                    let mut slot = slot.lock();
                    if !slot.gone {
                        slot.observer = Some(observer);
                    }
                }
                Err(e) => finish(&tx, &call, Err(error(e))),
            }
        });
        if !started {
            finish(&self.base.tx, &self.base.call, Err(error(crate::Error::TooManyRequests)));
        }
    }

    fn tick(&mut self) {
        self.base.tick();
    }

    fn stop(&mut self) {
        self.base.stop();
    }
}

impl Drop for ObserveStream {
    fn drop(&mut self) {
        let observer = {
            let mut slot = self.observer.lock();
            slot.gone = true;
            slot.observer.take()
        };
        drop(observer);
    }
}
