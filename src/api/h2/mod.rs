//! HTTP/2 (RFC 9113) on the client port, as a server with prior knowledge (h2c): what gRPC
//! clients speak. `frame` (the wire format), `hpack` (header compression), `conn` (one
//! connection's state machine: streams, flow control, SETTINGS, PING, GOAWAY, errors), and the
//! [`Handler`] the gRPC server implements.
//!
//! No threads of its own: a connection is driven by the [`crate::api::net`] event loop that
//! owns its socket, and a handler answers each stream through a [`Done`] from any thread.

mod conn;
pub mod frame;
mod hpack;

pub use conn::{Connection, Event, Request, Response, BODY_MAX, STREAMS_MAX};
pub use frame::Reason;

use super::net;

/// The answer to one stream, owed to its connection; dropped unanswered, it resets the stream.
pub type Done = net::Done<Response>;
/// What to answer if a stream is still unanswered at its handler's deadline.
pub type Expiry = net::Expiry<Response>;

/// Handles the requests of HTTP/2 streams; shared by all loops.
pub trait Handler: Send + Sync + 'static {
    /// Starts answering `req`, on the loop thread that read it: answer through `done` now or
    /// later from any thread, and never block here (use [`net::Done::spawn_blocking`]). If the
    /// answer may never come, return an [`Expiry`].
    fn handle(&self, req: Request, done: Done) -> Option<Expiry>;
}
