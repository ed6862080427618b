//! The gateway's streams: watch (a [`WatchSession`] whose messages go out chunk by chunk until
//! the client leaves) and lease keepalive (one answer per request message, then the end of
//! the response, the connection kept for the next request). Both start on the blocking pool.

use crate::api::http1::Response;
use crate::jsonpb::msg::stream_result;
use crate::jsonpb::{Decoder, FromJson, Value};
use crate::pb::{LeaseKeepAliveRequest, WatchRequest};
use crate::service::watch::{BatchSink, WatchSession};
use crate::watch::SinkError;
use crate::Node;

use super::errors::{grpc_headers, stream_error};

/// Messages buffered per watch stream; beyond it the stream's watchers catch up from disk.
const WATCH_STREAM_QUEUE_MAX: usize = 1024;

/// The request messages of a stream body, read one after another as the gateway feeds them to
/// its gRPC stream: a first message that does not decode fails the request (etcd's stream
/// error); a later one ends the client's side of the stream, after the messages before it.
fn stream_requests<T: FromJson>(body: &[u8]) -> std::result::Result<Vec<T>, Response> {
    let mut decoder = Decoder::new(body);
    let mut requests = Vec::new();
    loop {
        let next = decoder.next_value().and_then(|raw| raw.map(|raw| T::from_value(Value::new(raw), 0)).transpose());
        match next {
            Ok(Some(request)) => requests.push(request),
            Ok(None) => return Ok(requests),
            Err(e) if requests.is_empty() => return Err(stream_error(&e.0)),
            Err(e) => {
                log::debug!("api: a stream request after the first does not decode ({}); ending the stream", e.0);
                return Ok(requests);
            }
        }
    }
}

/// A watch stream: the body's create/cancel/progress requests are applied in order; the
/// response streams `{"result":...}` messages until the client disconnects, which cancels
/// the stream's watchers.
pub fn watch(node: &Node, body: &[u8]) -> Response {
    let requests: Vec<WatchRequest> = match stream_requests(body) {
        Ok(requests) => requests,
        Err(refused) => return refused,
    };
    let (tx, messages) = crossbeam::channel::bounded::<Vec<u8>>(WATCH_STREAM_QUEUE_MAX);
    let sink_tx = tx.clone();
    let mut session = WatchSession::new(node.clone(), move || -> BatchSink {
        let tx = sink_tx.clone();
        Box::new(move |responses| match tx.try_send(responses.iter().flat_map(stream_result).collect()) {
            Ok(()) => Ok(()),
            Err(crossbeam::channel::TrySendError::Full(_)) => Err(SinkError::Full),
            Err(crossbeam::channel::TrySendError::Disconnected(_)) => Err(SinkError::Closed),
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
        // session's watches are canceled when it does.
        on_close: Some(Box::new(move || drop((session, tx)))),
    }
}

/// Lease keepalive, a stream: one `{"result":...}` message per request message in the body,
/// then the end of the response. The connection stays open for the next request, as etcd's
/// does (clients pool it). A malformed first message fails the stream (500, code 2).
pub fn keep_alive(node: &Node, body: &[u8]) -> Response {
    let requests: Vec<LeaseKeepAliveRequest> = match stream_requests(body) {
        Ok(requests) => requests,
        Err(refused) => return refused,
    };
    let mut messages = Vec::with_capacity(requests.len());
    for req in requests {
        match node.lease_keep_alive(req) {
            Ok(resp) => messages.push(stream_result(&resp)),
            Err(e) => return stream_error(&e.to_string()),
        }
    }
    // With no request at all, the gateway never read the stream's header metadata.
    let headers = if messages.is_empty() { vec![("Content-Type", "application/json".into())] } else { grpc_headers() };
    Response::Messages { status: 200, headers, messages }
}
