//! The gateway's streams: watch (a [`WatchSession`] whose messages go out chunk by chunk until
//! the client leaves), lease keepalive (one answer per request message, then the end of
//! the response, the connection kept for the next request) and the snapshot download (fed by
//! a `raftkv-snap-client` thread). All start on the blocking pool. Each is a call in the gRPC
//! server's series under its gRPC method, as etcd's gateway streams go through its gRPC
//! server: started here, a message counted per request decoded, ended with the stream's
//! status, or as `Canceled` when the client leaves a stream that has no end of its own.

use crate::api::http1::Response;
use crate::auth::Credentials;
use crate::jsonpb::msg::stream_result;
use crate::jsonpb::{Decoder, FromJson, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Code;
use crate::pb::{LeaderRequest, LeaseKeepAliveRequest, WatchRequest};
use crate::service::metered::Call;
use crate::service::observe::{Observed, Observer};
use crate::service::watch::{BatchSink, WatchSession};
use crate::service::{Method, Service};
use crate::watch::SinkError;

use super::errors::{grpc_headers, server_error, stream_error, stream_message_error};

/// Messages buffered per watch or observe stream; beyond it the stream's watchers catch up
/// from disk.
const WATCH_STREAM_QUEUE_MAX: usize = 1024;
/// Chunks (32 KiB each) buffered per snapshot download: the reader waits for a slow client.
const SNAPSHOT_QUEUE_MAX: usize = 8;
/// Snapshot downloads served at once over the gateway, each with its own thread for as long
/// as the client takes; more are refused with `too many requests`.
const SNAPSHOTS_MAX: usize = 4;
static SNAPSHOTS: AtomicUsize = AtomicUsize::new(0);

/// The request messages of a stream body, read one after another as the gateway feeds them to
/// its gRPC stream: a first message that does not decode fails the request (etcd's stream
/// error); a later one ends the client's side of the stream, after the messages before it.
fn stream_requests<T: FromJson>(body: &[u8], call: Call) -> std::result::Result<(Vec<T>, Call), Response> {
    let mut decoder = Decoder::new(body);
    let mut requests = Vec::new();
    loop {
        let next = decoder.next_value().and_then(|raw| raw.map(|raw| T::from_value(Value::new(raw), 0)).transpose());
        match next {
            Ok(Some(request)) => {
                call.received();
                requests.push(request);
            }
            Ok(None) => return Ok((requests, call)),
            Err(e) if requests.is_empty() => {
                call.end(Code::Unknown);
                return Err(stream_error(&e.0));
            }
            Err(e) => {
                log::debug!("api: a stream request after the first does not decode ({}); ending the stream", e.0);
                return Ok((requests, call));
            }
        }
    }
}

/// Queues one chunk of a stream's messages without waiting: a full queue makes the watcher
/// behind it catch up later.
fn queue(tx: &crossbeam::channel::Sender<Vec<u8>>, chunk: Vec<u8>) -> Result<(), SinkError> {
    tx.try_send(chunk).map_err(|e| match e {
        crossbeam::channel::TrySendError::Full(_) => SinkError::Full,
        crossbeam::channel::TrySendError::Disconnected(_) => SinkError::Closed,
    })
}

/// A watch stream: the body's create/cancel/progress requests are applied in order; the
/// response streams `{"result":...}` messages until the client disconnects, which cancels
/// the stream's watchers.
pub fn watch(service: &Service, credentials: Credentials, body: &[u8]) -> Response {
    let node = service.node();
    let (requests, call) = match stream_requests::<WatchRequest>(body, service.stream_started(Method::Watch)) {
        Ok(requests) => requests,
        Err(refused) => return refused,
    };
    let (tx, messages) = crossbeam::channel::bounded::<Vec<u8>>(WATCH_STREAM_QUEUE_MAX);
    let (sink_tx, sent) = (tx.clone(), call.sent());
    let mut session = WatchSession::new(node.clone(), credentials, move || -> BatchSink {
        let (tx, sent) = (sink_tx.clone(), sent.clone());
        Box::new(move |responses| {
            queue(&tx, responses.iter().flat_map(stream_result).collect()).map(|()| sent.inc_by(responses.len() as u64))
        })
    });
    for req in requests {
        session.request(req);
    }
    Response::Stream {
        status: 200,
        headers: grpc_headers(),
        messages,
        // Holding `tx` keeps the stream open until the client leaves, as etcd's does; the
        // session's watches are canceled when it does, and the call counts as canceled.
        on_close: Some(Box::new(move || drop((session, tx, call)))),
    }
}

/// An election's observer: `{"result":...}` messages of its leaders until the client leaves
/// (which stops the observer), or until its watch is canceled (the stream then ends).
pub fn observe(service: &Service, req: LeaderRequest) -> Response {
    let call = service.stream_started(Method::Observe);
    call.received();
    let (tx, messages) = crossbeam::channel::bounded::<Vec<u8>>(WATCH_STREAM_QUEUE_MAX);
    // The sink holds the only sender: the stream ends when the observer lets go of it.
    let (mut tx, sent) = (Some(tx), call.sent());
    let sink = Box::new(move |observed| {
        let Observed::Leaders(leaders) = observed else {
            tx = None;
            return Err(SinkError::Closed);
        };
        let Some(sender) = &tx else { return Err(SinkError::Closed) };
        queue(sender, leaders.iter().flat_map(stream_result).collect()).map(|()| sent.inc_by(leaders.len() as u64))
    });
    let observer: Observer = match service.observe(req, sink) {
        Ok(observer) => observer,
        Err(e) => {
            call.end(e.code());
            return server_error(&e.to_string(), e.code());
        }
    };
    Response::Stream {
        status: 200,
        headers: grpc_headers(),
        messages,
        on_close: Some(Box::new(move || drop((observer, call)))),
    }
}

/// Lease keepalive, a stream: one `{"result":...}` message per request message in the body,
/// then the end of the response. The connection stays open for the next request, as etcd's
/// does (clients pool it). A malformed first message fails the stream (500, code 2).
pub fn keep_alive(service: &Service, body: &[u8]) -> Response {
    let started = service.stream_started(Method::LeaseKeepAlive);
    let (requests, call) = match stream_requests::<LeaseKeepAliveRequest>(body, started) {
        Ok(requests) => requests,
        Err(refused) => return refused,
    };
    let mut messages = Vec::with_capacity(requests.len());
    for req in requests {
        match service.node().lease_keep_alive(req) {
            Ok(resp) => {
                call.sent().inc();
                messages.push(stream_result(&resp));
            }
            Err(e) => {
                call.end(e.code());
                return stream_error(&e.to_string());
            }
        }
    }
    call.end(Code::Ok);
    // With no request at all, the gateway never read the stream's header metadata.
    let headers = if messages.is_empty() { vec![("Content-Type", "application/json".into())] } else { grpc_headers() };
    Response::Messages { status: 200, headers, messages }
}

/// `Maintenance.Snapshot` over the gateway: `{"result":...}` messages of 32 KiB chunks and
/// then the SHA-256, as etcd's gateway streams them. A failure after the answer started is a
/// stream error message, as grpc-gateway writes one.
pub fn snapshot(service: &Service) -> Response {
    let call = service.stream_started(Method::Snapshot);
    call.received();
    if SNAPSHOTS.fetch_add(1, Ordering::AcqRel) >= SNAPSHOTS_MAX {
        SNAPSHOTS.fetch_sub(1, Ordering::AcqRel);
        let e = crate::Error::TooManyRequests;
        call.end(e.code());
        return server_error(&e.to_string(), e.code());
    }
    let (tx, messages) = crossbeam::channel::bounded::<Vec<u8>>(SNAPSHOT_QUEUE_MAX);
    let node = service.node().clone();
    let spawned = crate::thread::spawn_named("raftkv-snap-client", move || {
        // A send fails once the client has gone, which ends the download (and drops the call
        // unended: canceled).
        let (mut gone, sent) = (false, call.sent());
        let outcome = node.snapshot(&mut |chunk| {
            gone = tx.send(stream_result(&chunk)).is_err();
            if !gone {
                sent.inc();
            }
            !gone
        });
        match outcome {
            Err(e) => {
                log::warn!("api: snapshot download failed: {e}");
                let _ = tx.send(stream_message_error(&e));
                call.end(e.code());
            }
            Ok(()) if !gone => call.end(Code::Ok),
            Ok(()) => drop(call),
        }
        SNAPSHOTS.fetch_sub(1, Ordering::AcqRel);
    });
    if let Err(e) = spawned {
        SNAPSHOTS.fetch_sub(1, Ordering::AcqRel);
        return server_error(&e.to_string(), e.code());
    }
    Response::Stream { status: 200, headers: grpc_headers(), messages, on_close: None }
}
