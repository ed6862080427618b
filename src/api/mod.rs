//! The client API: the protocols a member speaks on its client port. [`http1`] is the HTTP/1.1
//! server (event loops, pool, streams); [`gateway`] is etcd's JSON gateway over it, an adapter
//! over [`crate::service`].

pub mod gateway;
pub mod http1;

use std::net::TcpListener;

use crate::{Node, Result};
use http1::HttpServer;

/// Serves the gateway for `node` on `listener` until the returned server is stopped.
pub fn serve(listener: TcpListener, node: Node) -> Result<HttpServer> {
    HttpServer::start(listener, gateway::Gateway::new(node))
}
