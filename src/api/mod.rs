//! The client API: etcd v3's gRPC-gateway JSON over HTTP/1.1.
//!
//! [`Gateway`] routes a request (`POST /v3/...`, `/v3beta/...` alias, `GET /version`,
//! `/health`), reads the JSON body into etcd's request type ([`crate::jsonpb`]), calls the
//! [`Node`], and writes the response or etcd's error body with the status code etcd's gateway
//! uses. Transport is [`http`].
//!
//! Threads: the key-value calls (range, put, delete, txn) start on the HTTP event loop that
//! read them (`raftkv-httpio-N`) and never block it: a write is answered from the apply thread
//! and encoded back on the loop; a linearizable read waits for its barrier the same way, then
//! reads on the loop. Everything else (leases, members, maintenance, watch set-up, health) runs
//! on the blocking pool (`raftkv-http-N`) with the [`Node`]'s blocking calls.

pub mod health;
pub mod http;

use std::net::TcpListener;
use std::sync::Arc;

use std::collections::HashMap;

use http::{Done, Expiry, HttpServer, Request, Response};

use crate::jsonpb::msg::{stream_result, ErrorBody};
use crate::jsonpb::{Decoder, FromJson, JsonError, ToJson, Value};

use crate::error::Code;
use crate::node::Ticket;
use crate::node::Watch;
use crate::pb::watch_request::RequestUnion;
use crate::pb::{
    AlarmRequest, AuthenticateRequest, CompactionResponse, EmptyRequest, LeaseKeepAliveRequest, RangeRequest,
    RangeResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::version::{ETCD_CLUSTER_VERSION, ETCD_VERSION};
use crate::wait::Reply;
use crate::watch::{self, WatchSpec};
use crate::{Error, Node, Result};

/// Messages buffered per watch stream; beyond it the stream's watchers catch up from disk.
const WATCH_STREAM_QUEUE_MAX: usize = 1024;

/// etcd's gRPC server refuses messages above this (`grpc: received message larger than max`).
const GRPC_MESSAGE_MAX: usize = 2 * 1024 * 1024;

/// Serves the gateway for `node` on `listener` until the returned server is stopped.
pub fn serve(listener: TcpListener, node: Node) -> Result<HttpServer> {
    HttpServer::start(listener, Arc::new(Gateway { node }))
}

#[derive(Clone)]
pub struct Gateway {
    node: Node,
}

/// The gateway RPCs, by path below `/v3/`: the key-value calls served on the event loop, and
/// the rest on the blocking pool.
#[derive(Clone, Copy)]
enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
    Blocking(Call),
}

#[derive(Clone, Copy)]
enum Call {
    Compact,
    Status,
    Hash,
    Alarm,
    Defragment,
    MemberList,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberPromote,
    MoveLeader,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    Watch,
    LeaseTimeToLive,
    LeaseLeases,
    Authenticate,
    /// Auth user and role lists: empty, as etcd answers with auth disabled.
    AuthList,
}

fn route(path: &str) -> Option<Rpc> {
    let rest = path.strip_prefix("/v3/").or_else(|| path.strip_prefix("/v3beta/"))?;
    Some(match rest {
        "kv/range" => Rpc::Range,
        "kv/put" => Rpc::Put,
        "kv/deleterange" => Rpc::DeleteRange,
        "kv/txn" => Rpc::Txn,
        rest => Rpc::Blocking(match rest {
            "kv/compaction" => Call::Compact,
            "maintenance/status" => Call::Status,
            "maintenance/hash" => Call::Hash,
            "maintenance/alarm" => Call::Alarm,
            "maintenance/defragment" => Call::Defragment,
            "cluster/member/list" => Call::MemberList,
            "cluster/member/add" => Call::MemberAdd,
            "cluster/member/remove" => Call::MemberRemove,
            "cluster/member/update" => Call::MemberUpdate,
            "cluster/member/promote" => Call::MemberPromote,
            "maintenance/transfer-leadership" => Call::MoveLeader,
            "lease/grant" => Call::LeaseGrant,
            "lease/revoke" | "kv/lease/revoke" => Call::LeaseRevoke,
            "lease/keepalive" => Call::LeaseKeepAlive,
            "watch" => Call::Watch,
            "lease/timetolive" | "kv/lease/timetolive" => Call::LeaseTimeToLive,
            "lease/leases" | "kv/lease/leases" => Call::LeaseLeases,
            "auth/authenticate" => Call::Authenticate,
            "auth/user/list" | "auth/role/list" => Call::AuthList,
            _ => return None,
        }),
    })
}

/// The headers of every successful gateway answer.
fn grpc_headers() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/json".into()), ("Grpc-Metadata-Content-Type", "application/grpc".into())]
}

fn json_response(body: String) -> Response {
    Response::Full { status: 200, headers: grpc_headers(), body: body.into_bytes() }
}

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

fn error_body(msg: &str, code: Code) -> Vec<u8> {
    ErrorBody { message: msg.to_string(), code: code.as_u32() as i32 }.to_body()
}

/// A stream whose request body etcd's gateway could not read: 500 with gRPC code 2.
fn stream_error(msg: &str) -> Response {
    Response::Full {
        status: 500,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(msg, Code::Unknown),
    }
}

/// A request body etcd's gateway refused before calling the server: `Content-Length`, no trailer.
fn decode_error(e: JsonError) -> Response {
    Response::Full {
        status: 400,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(&e.0, Code::InvalidArgument),
    }
}

/// An error from the server itself: chunked with the gRPC trailer, as etcd's gateway sends it.
fn server_error(msg: &str, code: Code) -> Response {
    if !code.is_client_fault() {
        log::debug!("api: request failed: {msg}");
    }
    Response::Chunked {
        status: code.http_status(),
        headers: vec![("Content-Type", "application/json".into()), ("Trailer", "Grpc-Trailer-Content-Type".into())],
        chunks: vec![error_body(msg, code)],
        trailers: vec![("Grpc-Trailer-Content-Type", "application/grpc")],
    }
}

fn outcome<T: ToJson>(result: Result<T>) -> Response {
    match result {
        Ok(resp) => json_response(resp.to_json()),
        Err(e) => server_error(&e.to_string(), e.code()),
    }
}

/// Decodes a request, applying the gRPC message limit etcd's gateway hits before the server.
fn decode<T: FromJson + prost::Message>(body: &[u8]) -> std::result::Result<T, Response> {
    let req = T::from_body(body).map_err(decode_error)?;
    let size = req.encoded_len();
    if size > GRPC_MESSAGE_MAX {
        let msg = format!("grpc: received message larger than max ({size} vs. {GRPC_MESSAGE_MAX})");
        return Err(server_error(&msg, Code::ResourceExhausted));
    }
    Ok(req)
}

/// Checks the body of a request whose fields raftkv does not use, for etcd's decode errors.
fn check_body<T: FromJson>(body: &[u8]) -> std::result::Result<(), Response> {
    T::from_body(body).map(|_| ()).map_err(decode_error)
}

/// A decoded request and the answer owed for it; a body that does not decode is answered here.
fn decoded<T: FromJson + prost::Message>(body: &[u8], done: Done) -> Option<(T, Done)> {
    match decode(body) {
        Ok(req) => Some((req, done)),
        Err(refused) => {
            done.respond(refused);
            None
        }
    }
}

/// A reply that, when it is answered (on the raft or apply thread), has the connection's loop
/// run `then` on the outcome and send the result.
fn on_loop<T: Send + 'static, R: ToJson>(done: Done, then: impl FnOnce(T) -> Result<R> + Send + 'static) -> Reply<T> {
    Reply::new(move |ready: Result<T>| done.respond_with(move || outcome(ready.and_then(then))))
}

/// Gives up on a call at its deadline with the error its [`Ticket`] names.
fn expiry(ticket: Ticket) -> Expiry {
    Expiry {
        at: ticket.deadline(),
        answer: Box::new(move || {
            let e = ticket.expire();
            server_error(&e.to_string(), e.code())
        }),
    }
}

impl Gateway {
    /// Starts a key-value call without blocking the loop.
    fn start(&self, rpc: Rpc, body: Vec<u8>, done: Done) -> Option<Expiry> {
        let node = &self.node;
        let ticket = match rpc {
            Rpc::Put => {
                let (req, done) = decoded(&body, done)?;
                node.put_then(req, on_loop(done, Ok))
            }
            Rpc::DeleteRange => {
                let (req, done) = decoded(&body, done)?;
                node.delete_range_then(req, on_loop(done, Ok))
            }
            Rpc::Range => {
                let (req, done) = decoded::<RangeRequest>(&body, done)?;
                if let Err(e) = node.check_range(&req) {
                    done.respond(outcome::<RangeResponse>(Err(e)));
                    return None;
                }
                let (serializable, reader) = (req.serializable, node.clone());
                let ticket =
                    node.read_barrier_then(serializable, req, on_loop(done, move |req| reader.range_local(req)));
                // A serializable read was answered already.
                return (!serializable).then(|| expiry(ticket));
            }
            Rpc::Txn => {
                let (req, done) = decoded::<TxnRequest>(&body, done)?;
                if let Err(e) = node.check_txn(&req) {
                    done.respond(outcome::<TxnResponse>(Err(e)));
                    return None;
                }
                if !Node::txn_is_read_only(&req) {
                    node.txn_then(req, on_loop(done, Ok))
                } else {
                    let (serializable, reader) = (Node::txn_is_serializable(&req), node.clone());
                    let ticket =
                        node.read_barrier_then(serializable, req, on_loop(done, move |req| reader.txn_local(req)));
                    return (!serializable).then(|| expiry(ticket));
                }
            }
            Rpc::Blocking(call) => {
                let gateway = self.clone();
                done.spawn_blocking(move || gateway.call(call, &body).unwrap_or_else(|refused| refused));
                return None;
            }
        };
        Some(expiry(ticket))
    }

    /// The other calls, on a pool thread.
    fn call(&self, call: Call, body: &[u8]) -> std::result::Result<Response, Response> {
        let node = &self.node;
        Ok(match call {
            Call::Compact => outcome(node.compact(decode(body)?)),
            Call::Status => {
                check_body::<EmptyRequest>(body)?;
                outcome(node.status())
            }
            Call::Hash => {
                check_body::<EmptyRequest>(body)?;
                outcome(node.hash())
            }
            Call::MemberList => {
                check_body::<EmptyRequest>(body)?;
                outcome(Ok::<_, Error>(node.member_list()))
            }
            Call::MemberAdd => outcome(node.member_add(decode(body)?)),
            Call::MemberRemove => outcome(node.member_remove(decode(body)?)),
            Call::MemberUpdate => outcome(node.member_update(decode(body)?)),
            Call::MemberPromote => outcome(node.member_promote(decode(body)?)),
            Call::MoveLeader => outcome(node.move_leader(decode(body)?)),
            Call::LeaseGrant => outcome(node.lease_grant(decode(body)?)),
            Call::LeaseRevoke => outcome(node.lease_revoke(decode(body)?)),
            Call::LeaseTimeToLive => outcome(node.lease_time_to_live(decode(body)?)),
            Call::LeaseLeases => {
                check_body::<EmptyRequest>(body)?;
                outcome(node.lease_leases())
            }
            Call::LeaseKeepAlive => self.keep_alive(body),
            Call::Watch => self.watch(body),
            Call::Authenticate => {
                check_body::<AuthenticateRequest>(body)?;
                outcome(Err::<CompactionResponse, _>(Error::AuthNotEnabled))
            }
            Call::AuthList => {
                check_body::<EmptyRequest>(body)?;
                outcome(Ok::<_, Error>(node.header_only()))
            }
            // No alarms are ever raised and RocksDB compacts itself: both answer an empty body.
            Call::Alarm => {
                check_body::<AlarmRequest>(body)?;
                json_response("{}".into())
            }
            Call::Defragment => {
                check_body::<EmptyRequest>(body)?;
                json_response("{}".into())
            }
        })
    }
}

impl Gateway {
    /// A watch stream: the body's create/cancel/progress requests are applied in order; the
    /// response streams `{"result":...}` messages until the client disconnects, which cancels
    /// the stream's watchers.
    fn watch(&self, body: &[u8]) -> Response {
        let requests: Vec<WatchRequest> = match stream_requests(body) {
            Ok(requests) => requests,
            Err(refused) => return refused,
        };
        let node = &self.node;
        let (tx, messages) = crossbeam::channel::bounded::<Vec<u8>>(WATCH_STREAM_QUEUE_MAX);
        let send = |resp: &WatchResponse| {
            let _ = tx.try_send(stream_result(resp));
        };
        // Stream-level watch ids: the client's, or the lowest unused from 0 (etcd's rule).
        let mut watches: HashMap<i64, Watch> = HashMap::new();
        let mut next_auto = 0;
        for req in requests {
            match req.request_union {
                Some(RequestUnion::CreateRequest(create)) => {
                    // etcd's watch stream refuses these in its answer to the create: with the
                    // invalid watch id -1, created and canceled at once.
                    let refusal = if WatchSpec::new(&create, 0).is_empty_range() {
                        Some("mvcc: watcher range is empty")
                    } else if create.watch_id != 0 && watches.contains_key(&create.watch_id) {
                        Some("mvcc: duplicate watch ID provided on the WatchStream")
                    } else {
                        None
                    };
                    if let Some(reason) = refusal {
                        send(&WatchResponse {
                            header: node.header_now(),
                            watch_id: -1,
                            created: true,
                            canceled: true,
                            cancel_reason: reason.into(),
                            ..Default::default()
                        });
                        continue;
                    }
                    let mut watch_id = create.watch_id;
                    if watch_id == 0 {
                        while watches.contains_key(&next_auto) {
                            next_auto += 1;
                        }
                        watch_id = next_auto;
                        next_auto += 1;
                    }
                    let sink_tx = tx.clone();
                    let sink: watch::Sink = Box::new(move |resp| match sink_tx.try_send(stream_result(&resp)) {
                        Ok(()) => Ok(()),
                        Err(crossbeam::channel::TrySendError::Full(_)) => Err(watch::SinkError::Full),
                        Err(crossbeam::channel::TrySendError::Disconnected(_)) => Err(watch::SinkError::Closed),
                    });
                    let create = WatchCreateRequest { watch_id, ..create };
                    watches.insert(watch_id, node.watch_into(create, sink));
                }
                // An unknown id gets no answer at all, as in etcd.
                Some(RequestUnion::CancelRequest(cancel)) if watches.remove(&cancel.watch_id).is_some() => {
                    send(&WatchResponse {
                        header: node.header_now(),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    });
                }
                Some(RequestUnion::ProgressRequest(_)) => {
                    send(&WatchResponse { header: node.header_now(), watch_id: -1, ..Default::default() });
                }
                Some(RequestUnion::CancelRequest(_)) | None => {}
            }
        }
        Response::Stream {
            status: 200,
            headers: grpc_headers(),
            messages,
            // Holding `tx` keeps the stream open until the client leaves, as etcd's does; the
            // watches are canceled when it does.
            on_close: Some(Box::new(move || drop((watches, tx)))),
        }
    }

    /// Lease keepalive, a stream: one `{"result":...}` message per request message in the body,
    /// then the end of the response. The connection stays open for the next request, as etcd's
    /// does (clients pool it). A malformed first message fails the stream (500, code 2).
    fn keep_alive(&self, body: &[u8]) -> Response {
        let requests: Vec<LeaseKeepAliveRequest> = match stream_requests(body) {
            Ok(requests) => requests,
            Err(refused) => return refused,
        };
        let mut messages = Vec::with_capacity(requests.len());
        for req in requests {
            match self.node.lease_keep_alive(req) {
                Ok(resp) => messages.push(stream_result(&resp)),
                Err(e) => return stream_error(&e.to_string()),
            }
        }
        // With no request at all, the gateway never read the stream's header metadata.
        let headers =
            if messages.is_empty() { vec![("Content-Type", "application/json".into())] } else { grpc_headers() };
        Response::Messages { status: 200, headers, messages }
    }
}

impl http::Handler for Gateway {
    fn handle(&self, req: Request, done: Done) -> Option<Expiry> {
        if req.method == "OPTIONS" {
            done.respond(Response::Full { status: 200, headers: Vec::new(), body: Vec::new() });
            return None;
        }
        match req.path.as_str() {
            "/version" => {
                let body = format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\"}}");
                done.respond(Response::Full {
                    status: 200,
                    headers: vec![("Content-Type", "application/json".into())],
                    body: body.into_bytes(),
                });
                return None;
            }
            "/metrics" => {
                let body = self.node.metrics().into_bytes();
                done.respond(Response::Full {
                    status: 200,
                    headers: vec![("Content-Type", "text/plain; version=0.0.4".into())],
                    body,
                });
                return None;
            }
            path if health::is_probe(path) => {
                let node = self.node.clone();
                done.spawn_blocking(move || health::answer(&node, &req.method, &req.path, &req.query));
                return None;
            }
            _ => {}
        }
        let Some(rpc) = route(&req.path) else {
            let gateway = req.path.starts_with("/v3/") || req.path.starts_with("/v3beta/");
            done.respond(http::plain(404, if gateway { "Not Found" } else { "404 page not found" }));
            return None;
        };
        if req.method != "POST" {
            done.respond(http::plain(405, "Method Not Allowed"));
            return None;
        }
        self.start(rpc, req.body, done)
    }
}
