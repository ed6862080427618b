//! etcd v3's JSON gateway (grpc-gateway's answers, byte for byte) as an adapter over the
//! [`Service`]: routes from the RPC table, request bodies read as jsonpb reads them, answers
//! and etcd's error bodies written as the gateway writes them (`errors`), the watch,
//! keepalive and snapshot streams (`streams`), and the non-RPC endpoints (`/version`, `/metrics`, the
//! probes of [`health`], and for tests only the fault control of `debug`).
//!
//! Threads: a call starts on the HTTP event loop that read it (`raftkv-httpio-N`). The
//! key-value calls never block it: their answer comes from the raft or apply thread and is
//! encoded (or read) back on the loop. Everything else runs on the blocking pool
//! (`raftkv-http-N`).

mod debug;
mod errors;
pub mod health;
mod streams;

use std::sync::Arc;

use super::http1::{self, Done, Expiry, Request, Response};
use crate::auth::Credentials;
use crate::jsonpb::{FromJson, ToJson};
use crate::service::{self, Answer, Kind, Method, Responder, Service, Waiting};
use crate::version::{ETCD_CLUSTER_VERSION, ETCD_VERSION};
use crate::{Node, Ticket};
use errors::{decode_error, outcome, server_error};

pub struct Gateway {
    service: Service,
}

impl Gateway {
    pub fn new(service: Service) -> Arc<Gateway> {
        Arc::new(Gateway { service })
    }

    fn node(&self) -> &Node {
        self.service.node()
    }
}

/// Decodes a request, applying the gRPC message limit (`max`) etcd's gateway hits before the
/// server.
fn decode<T: FromJson + prost::Message>(body: &[u8], max: usize) -> std::result::Result<T, Response> {
    let req = T::from_body(body).map_err(decode_error)?;
    let size = req.encoded_len();
    if size > max {
        let msg = format!("grpc: received message larger than max ({size} vs. {max})");
        return Err(server_error(&msg, crate::error::Code::ResourceExhausted));
    }
    Ok(req)
}

/// Reading a unary call's body and writing its answer, for every method of the service.
/// The gRPC-only calls have no gateway path, so the router never hands them here.
macro_rules! codec {
    (both: [$($method:ident),*], grpc: [$($grpc:ident),*]) => {
        fn decode_request(method: Method, body: &[u8], max: usize) -> std::result::Result<service::Request, Response> {
            Ok(match method {
                $(Method::$method => service::Request::$method(decode(body, max)?),)*
                Method::Watch | Method::LeaseKeepAlive | Method::Snapshot | Method::Observe => {
                    unreachable!("streams are not unary")
                }
                $(Method::$grpc)|* => unreachable!("{method:?} has no gateway path"),
            })
        }

        fn to_json(response: &service::Response) -> String {
            match response {
                $(service::Response::$method(r) => r.to_json(),)*
                $(service::Response::$grpc(_))|* => unreachable!("gRPC-only calls have no gateway path"),
            }
        }
    };
}

crate::for_each_unary!(codec);

fn encode(answer: crate::Result<service::Response>) -> Response {
    outcome(answer.map(|r| to_json(&r)))
}

/// The service's answers, back to the connection that asked.
struct GatewayResponder(Done);

impl Responder for GatewayResponder {
    fn later(self: Box<Self>, answer: Answer) {
        self.0.respond_with(move || encode(answer()));
    }

    fn blocking(self: Box<Self>, work: Answer) {
        self.0.spawn_blocking(move || encode(work()));
    }

    fn waiting(self: Box<Self>, work: Waiting) {
        let cancel = self.0.cancel();
        self.0.spawn_blocking(move || encode(work(cancel)));
    }
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

impl http1::Handler for Gateway {
    fn handle(&self, req: Request, done: Done) -> Option<Expiry> {
        if req.method == "OPTIONS" {
            done.respond(Response::Full { status: 200, headers: Vec::new(), body: Vec::new() });
            return None;
        }
        let (req, done) = health::serve(self.node(), req, done)?;
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
            path if self.node().config().debug_control && debug::is_control(path) => {
                done.respond(debug::answer(self.node(), &req));
                return None;
            }
            _ => {}
        }
        let Some(rpc) = service::rpc::by_gateway_path(&req.path) else {
            let gateway = req.path.starts_with("/v3/") || req.path.starts_with("/v3beta/");
            done.respond(http1::plain(404, if gateway { "Not Found" } else { "404 page not found" }));
            return None;
        };
        if req.method != "POST" {
            done.respond(http1::plain(405, "Method Not Allowed"));
            return None;
        }
        // etcd's gateway forwards `Authorization` as the token; a client certificate's name
        // is never the user here (etcd's `AuthInfoFromTLS` ignores gateway requests).
        let credentials = Credentials { token: req.authorization.clone(), common_name: None };
        if rpc.kind == Kind::ServerStream {
            let service = match self.service.for_caller(rpc.method, &credentials) {
                Ok(service) => service,
                Err(e) => {
                    done.respond(server_error(&e.to_string(), e.code()));
                    return None;
                }
            };
            let max = service.node().config().grpc_message_max();
            done.spawn_blocking(move || match rpc.method {
                Method::Observe => match decode(&req.body, max) {
                    Ok(req) => streams::observe(&service, req),
                    Err(refused) => refused,
                },
                _ => match decode::<crate::pb::EmptyRequest>(&req.body, max) {
                    Ok(_) => streams::snapshot(&service),
                    Err(refused) => refused,
                },
            });
            return None;
        }
        if rpc.kind == Kind::Bidi {
            let service = self.service.clone();
            let (method, body) = (rpc.method, req.body);
            done.spawn_blocking(move || match method {
                Method::Watch => streams::watch(&service, credentials, &body),
                _ => streams::keep_alive(&service, &body),
            });
            return None;
        }
        let request = match decode_request(rpc.method, &req.body, self.node().config().grpc_message_max()) {
            Ok(request) => request,
            Err(refused) => {
                done.respond(refused);
                return None;
            }
        };
        self.service.call(request, &credentials, Box::new(GatewayResponder(done))).map(expiry)
    }
}
