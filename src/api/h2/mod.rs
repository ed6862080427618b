//! HTTP/2 (RFC 9113) on the client port, as a server with prior knowledge (h2c): what gRPC
//! clients speak. `frame` (the wire format), `hpack` (header compression), `conn` (one
//! connection's state machine: streams, flow control, SETTINGS, PING, GOAWAY, errors),
//! `stream` (streaming calls' answers and their bound), and the [`Handler`] the gRPC server
//! implements. The client side ([`crate::client::h2`]) uses `frame` and `hpack` too.
//!
//! No threads of its own: a connection is driven by the [`crate::api::net`] event loop that
//! owns its socket; a handler answers a unary stream through a [`Done`], a streaming one
//! through a [`StreamTx`], from any thread. A streaming call's [`Session`] lives on the loop.

mod conn;
pub mod frame;
pub mod hpack;
mod stream;

pub use conn::{
    Connection, Event, Request, Response, Settings, BODY_MAX, KEEPALIVE_TIME, KEEPALIVE_TIMEOUT, STREAMS_MAX,
};
pub use frame::Reason;
pub use stream::{Fields, Outbox, Part, SendError, STREAM_QUEUE_MAX};

use super::net;

/// The answer to one stream, owed to its connection; dropped unanswered, it resets the stream.
pub type Done = net::Done<Response>;
/// What to answer if a stream is still unanswered at its handler's deadline.
pub type Expiry = net::Expiry<Response>;
/// The sending side of a streaming call.
pub type StreamTx = net::StreamTx;

/// Handles the requests of HTTP/2 streams; shared by all loops.
pub trait Handler: Send + Sync + 'static {
    /// Starts answering `req`, on the loop thread that read it: answer through `done` now or
    /// later from any thread, and never block here (use [`net::Done::spawn_blocking`]). If the
    /// answer may never come, return an [`Expiry`].
    fn handle(&self, req: Request, done: Done) -> Option<Expiry>;

    /// The settings of each new connection: which paths stream, the ping policy, the body
    /// bound.
    fn settings(&self) -> Settings {
        Settings::default()
    }

    /// Starts a streaming call at its headers (`req.body` is empty), on the loop thread.
    /// `None` when it was answered (refused) at once through `tx`.
    fn open(&self, _req: Request, tx: StreamTx) -> Option<Box<dyn Session>> {
        tx.reset(Reason::RefusedStream);
        None
    }
}

/// A streaming call in progress; it lives on its connection's loop and is dropped when the
/// stream ends either way (finished, reset, or its connection closed).
pub trait Session: Send {
    /// The client's next DATA, in order; `end`: the client ended its side.
    fn data(&mut self, data: &[u8], end: bool);
    /// Called about once a second, for conditions that end a stream from the server's side.
    fn tick(&mut self) {}
    /// The server is stopping: end the stream now, as the protocol ends it.
    fn stop(&mut self);
}

#[cfg(test)]
mod tests;
