//! The client API: etcd v3's gRPC-gateway JSON over HTTP/1.1.
//!
//! [`Gateway`] routes a request (`POST /v3/...`, `/v3beta/...` alias, `GET /version`,
//! `/health`), reads the JSON body into etcd's request type ([`codec`], [`json`]), calls the
//! [`Node`] on the HTTP worker thread that received it (blocking until the result), and writes
//! the response or etcd's error body with the status code etcd's gateway uses. Transport is
//! [`http`]. Runs on the `raftkv-http-*` threads.

pub mod codec;
pub mod http;
pub mod json;

use std::net::TcpListener;
use std::sync::Arc;

use std::collections::HashMap;

use codec::{FromJson, Ignored, ToJson, WatchRequest};
use http::{HttpServer, Request, Response};
use json::JsonError;

use crate::error::Code;
use crate::node::Watch;
use crate::pb::{CompactionResponse, LeaseKeepAliveRequest, RangeRequest, WatchCreateRequest, WatchResponse};
use crate::watch;
use crate::{Error, Node, Result};

/// The etcd release whose gateway raftkv answers like; clients parse `/version`.
pub const ETCD_VERSION: &str = "3.4.23";
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// Messages buffered per watch stream; beyond it the stream's watchers catch up from disk.
const WATCH_STREAM_QUEUE_MAX: usize = 1024;

/// etcd's gRPC server refuses messages above this (`grpc: received message larger than max`).
const GRPC_MESSAGE_MAX: usize = 2 * 1024 * 1024;

/// Serves the gateway for `node` on `listener` until the returned server is stopped.
pub fn serve(listener: TcpListener, node: Node) -> Result<HttpServer> {
    HttpServer::start(listener, Arc::new(Gateway { node }))
}

pub struct Gateway {
    node: Node,
}

/// The gateway RPCs, by path below `/v3/`.
#[derive(Clone, Copy)]
enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
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
        "kv/compaction" => Rpc::Compact,
        "maintenance/status" => Rpc::Status,
        "maintenance/hash" => Rpc::Hash,
        "maintenance/alarm" => Rpc::Alarm,
        "maintenance/defragment" => Rpc::Defragment,
        "cluster/member/list" => Rpc::MemberList,
        "cluster/member/add" => Rpc::MemberAdd,
        "cluster/member/remove" => Rpc::MemberRemove,
        "cluster/member/update" => Rpc::MemberUpdate,
        "cluster/member/promote" => Rpc::MemberPromote,
        "maintenance/transfer-leadership" => Rpc::MoveLeader,
        "lease/grant" => Rpc::LeaseGrant,
        "lease/revoke" | "kv/lease/revoke" => Rpc::LeaseRevoke,
        "lease/keepalive" => Rpc::LeaseKeepAlive,
        "watch" => Rpc::Watch,
        "lease/timetolive" | "kv/lease/timetolive" => Rpc::LeaseTimeToLive,
        "lease/leases" | "kv/lease/leases" => Rpc::LeaseLeases,
        "auth/authenticate" => Rpc::Authenticate,
        "auth/user/list" | "auth/role/list" => Rpc::AuthList,
        _ => return None,
    })
}

/// The headers of every successful gateway answer.
fn grpc_headers() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/json".into()), ("Grpc-Metadata-Content-Type", "application/grpc".into())]
}

fn json_response(body: String) -> Response {
    Response::Full { status: 200, headers: grpc_headers(), body: body.into_bytes() }
}

/// The request objects of a stream body, or etcd's stream error for a malformed one.
fn stream_requests<T: FromJson>(body: &[u8]) -> std::result::Result<Vec<T>, Response> {
    json::documents(body).and_then(|docs| docs.into_iter().map(T::from_json).collect()).map_err(|e| stream_error(&e.0))
}

fn error_body(msg: &str, code: u32) -> Vec<u8> {
    let mut w = json::Writer::default();
    w.begin_object();
    w.string("error", msg);
    w.string("message", msg);
    w.u32("code", code);
    w.end_object();
    w.finish().into_bytes()
}

/// HTTP status for a gRPC code, as grpc-gateway maps them (FailedPrecondition → 400 as upstream
/// etcd answers; Debian's older gateway says 412).
fn http_status(code: u32) -> u16 {
    match code {
        0 => 200,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// A stream whose request body etcd's gateway could not read: 500 with gRPC code 2.
fn stream_error(msg: &str) -> Response {
    Response::Full {
        status: 500,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(msg, Code::Unknown as u32),
    }
}

/// A request body etcd's gateway refused before calling the server: `Content-Length`, no trailer.
fn decode_error(e: JsonError) -> Response {
    Response::Full {
        status: 400,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(&e.0, Code::InvalidArgument as u32),
    }
}

/// An error from the server itself: chunked with the gRPC trailer, as etcd's gateway sends it.
fn server_error(msg: &str, code: u32) -> Response {
    if !matches!(code, 3 | 5 | 9 | 11) {
        log::debug!("api: request failed: {msg}");
    }
    Response::Chunked {
        status: http_status(code),
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
    let req = T::from_json(body).map_err(decode_error)?;
    let size = req.encoded_len();
    if size > GRPC_MESSAGE_MAX {
        let msg = format!("grpc: received message larger than max ({size} vs. {GRPC_MESSAGE_MAX})");
        return Err(server_error(&msg, Code::ResourceExhausted as u32));
    }
    Ok(req)
}

/// Checks the body of a request whose fields raftkv does not use, for etcd's decode errors.
fn check_body(body: &[u8]) -> std::result::Result<(), Response> {
    Ignored::from_json(body).map(|_| ()).map_err(decode_error)
}

impl Gateway {
    fn call(&self, rpc: Rpc, body: &[u8]) -> std::result::Result<Response, Response> {
        let node = &self.node;
        Ok(match rpc {
            Rpc::Range => outcome(node.range(decode(body)?)),
            Rpc::Put => outcome(node.put(decode(body)?)),
            Rpc::DeleteRange => outcome(node.delete_range(decode(body)?)),
            Rpc::Txn => outcome(node.txn(decode(body)?)),
            Rpc::Compact => outcome(node.compact(decode(body)?)),
            Rpc::Status => {
                check_body(body)?;
                outcome(node.status())
            }
            Rpc::Hash => {
                check_body(body)?;
                outcome(node.hash())
            }
            Rpc::MemberList => {
                check_body(body)?;
                outcome(Ok::<_, Error>(node.member_list()))
            }
            Rpc::MemberAdd => outcome(node.member_add(decode(body)?)),
            Rpc::MemberRemove => outcome(node.member_remove(decode(body)?)),
            Rpc::MemberUpdate => outcome(node.member_update(decode(body)?)),
            Rpc::MemberPromote => outcome(node.member_promote(decode(body)?)),
            Rpc::MoveLeader => outcome(node.move_leader(decode(body)?)),
            Rpc::LeaseGrant => outcome(node.lease_grant(decode(body)?)),
            Rpc::LeaseRevoke => outcome(node.lease_revoke(decode(body)?)),
            Rpc::LeaseTimeToLive => outcome(node.lease_time_to_live(decode(body)?)),
            Rpc::LeaseLeases => {
                check_body(body)?;
                outcome(node.lease_leases())
            }
            Rpc::LeaseKeepAlive => self.keep_alive(body),
            Rpc::Watch => self.watch(body),
            Rpc::Authenticate => {
                check_body(body)?;
                outcome(Err::<CompactionResponse, _>(Error::AuthNotEnabled))
            }
            Rpc::AuthList => {
                check_body(body)?;
                outcome(Ok::<_, Error>(node.header_only()))
            }
            // No alarms are ever raised and RocksDB compacts itself: both answer an empty body.
            Rpc::Alarm | Rpc::Defragment => {
                check_body(body)?;
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
            let _ = tx.try_send(codec::stream_result(resp));
        };
        // Stream-level watch ids: the client's, or the lowest unused from 0 (etcd's rule).
        let mut watches: HashMap<i64, Watch> = HashMap::new();
        let mut next_auto = 0;
        for req in requests {
            if let Some(create) = req.create {
                let mut watch_id = create.watch_id;
                if watch_id == 0 {
                    while watches.contains_key(&next_auto) {
                        next_auto += 1;
                    }
                    watch_id = next_auto;
                    next_auto += 1;
                }
                let sink_tx = tx.clone();
                let sink: watch::Sink = Box::new(move |resp| match sink_tx.try_send(codec::stream_result(&resp)) {
                    Ok(()) => Ok(()),
                    Err(crossbeam::channel::TrySendError::Full(_)) => Err(watch::SinkError::Full),
                    Err(crossbeam::channel::TrySendError::Disconnected(_)) => Err(watch::SinkError::Closed),
                });
                let create = WatchCreateRequest { watch_id, ..create };
                watches.insert(watch_id, node.watch_into(create, sink));
            } else if let Some(id) = req.cancel {
                // An unknown id gets no answer at all, as in etcd.
                if watches.remove(&id).is_some() {
                    send(&WatchResponse {
                        header: node.header_now(),
                        watch_id: id,
                        canceled: true,
                        ..Default::default()
                    });
                }
            } else if req.progress {
                send(&WatchResponse { header: node.header_now(), watch_id: -1, ..Default::default() });
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

    /// Lease keepalive, a stream: one `{"result":...}` message per request object in the body,
    /// then the end of the response. A malformed body fails the stream (500, code 2).
    fn keep_alive(&self, body: &[u8]) -> Response {
        let requests: Vec<LeaseKeepAliveRequest> = match stream_requests(body) {
            Ok(requests) => requests,
            Err(refused) => return refused,
        };
        let (tx, messages) = crossbeam::channel::bounded(requests.len().max(1));
        for req in requests {
            match self.node.lease_keep_alive(req) {
                Ok(resp) => {
                    let _ = tx.send(codec::stream_result(&resp));
                }
                Err(e) => return stream_error(&e.to_string()),
            }
        }
        Response::Stream { status: 200, headers: grpc_headers(), messages, on_close: None }
    }

    /// etcd's health check: there is a leader (waiting up to one second for an election in
    /// progress) and a linearizable read succeeds.
    fn healthy(&self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.node.leader_id() == 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let probe = RangeRequest { keys_only: true, limit: 1, ..RangeRequest::key("health") };
        self.node.range(probe).is_ok()
    }
}

impl http::Handler for Gateway {
    fn handle(&self, req: Request) -> Response {
        if req.method == "OPTIONS" {
            return Response::Full { status: 200, headers: Vec::new(), body: Vec::new() };
        }
        match req.path.as_str() {
            "/version" => {
                let body = format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\"}}");
                return Response::Full {
                    status: 200,
                    headers: vec![("Content-Type", "application/json".into())],
                    body: body.into_bytes(),
                };
            }
            "/metrics" => {
                let body = self.node.metrics().into_bytes();
                return Response::Full {
                    status: 200,
                    headers: vec![("Content-Type", "text/plain; version=0.0.4".into())],
                    body,
                };
            }
            "/health" => {
                let healthy = self.healthy();
                let body = format!("{{\"health\":\"{healthy}\"}}");
                return Response::Full {
                    status: if healthy { 200 } else { 503 },
                    headers: Vec::new(),
                    body: body.into_bytes(),
                };
            }
            _ => {}
        }
        let Some(rpc) = route(&req.path) else {
            let gateway = req.path.starts_with("/v3/") || req.path.starts_with("/v3beta/");
            return http::plain(404, if gateway { "Not Found" } else { "404 page not found" });
        };
        if req.method != "POST" {
            return http::plain(405, "Method Not Allowed");
        }
        self.call(rpc, &req.body).unwrap_or_else(|refused| refused)
    }
}
