//! The client API: the protocols a member speaks on its client port, on one socket as etcd
//! does. [`net`] owns the connections (event loops, the blocking pool) and picks each one's
//! protocol from its first bytes; [`http1`] and [`h2`] are the two HTTP versions; the JSON
//! [`gateway`] (over HTTP/1.1) and [`grpc`] (over HTTP/2) are thin adapters over
//! [`crate::service`].

pub mod gateway;
pub mod grpc;
pub mod h2;
pub mod http1;
pub mod net;

use std::net::TcpListener;
use std::sync::Arc;

use crate::service::{Service, WAITING_CALLS_MAX};
use crate::tls::ServerTls;
use crate::{Node, Result};
use net::{Handlers, HttpServer, POOL_MAX};

// Waiting calls must leave pool threads to the calls that block only briefly.
const _: () = assert!(WAITING_CALLS_MAX < POOL_MAX);

/// Serves etcd's gRPC API and its JSON gateway for `node` on `listener` until the returned
/// server is stopped, over TLS when `tls` is given. Both protocols share one [`Service`], as
/// they share the server's pool.
pub fn serve(listener: TcpListener, node: Node, tls: Option<Arc<ServerTls>>) -> Result<HttpServer> {
    let service = Service::new(node);
    let handlers = Handlers { http1: gateway::Gateway::new(service.clone()), h2: grpc::Grpc::new(service) };
    HttpServer::start(listener, handlers, tls)
}

/// Serves `/metrics` and the health probes for `node` on `listener` (one of
/// `--listen-metrics-urls`), on the same HTTP server as the client port.
pub fn serve_metrics(listener: TcpListener, node: Node) -> Result<HttpServer> {
    let port = Arc::new(gateway::health::MetricsPort { node });
    HttpServer::start(listener, Handlers { http1: port.clone(), h2: port }, None)
}
