//! HTTP/1.1 on the client port: requests parsed as Go's net/http reads them, answers written
//! as it writes them, and the [`Handler`] the JSON gateway implements. The connections
//! themselves are [`crate::api::net`]'s event loops'; a streamed answer (a watch) moves its
//! connection to a `raftkv-stream` thread of its own, which writes one chunk per message and
//! ends the connection with the stream.
//!
//! Files: `parse` (requests: keep-alive, pipelining, HTTP/1.0, `Expect: 100-continue`,
//! chunked bodies), [`mod@write`] (answers and streams).
//!
//! Responses are written the way Go's net/http writes them (handler headers sorted, then
//! `Date`, `Content-Length`, a sniffed `Content-Type`, `Connection`, `Transfer-Encoding`), so
//! byte-level comparisons with etcd only differ where behaviour does.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use crossbeam::channel::{self, select, Receiver};

use super::net;

pub(in crate::api) mod parse;
pub mod write;

pub use parse::parse_stream;
pub use write::plain;

/// How often a stream thread checks whether its client hung up (a blocked socket write would
/// tell only once the kernel's buffer fills).
const HANGUP_CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// Largest request head (request line + headers).
pub(super) const HEAD_MAX: usize = 64 * 1024;
/// Largest request body read into memory. Above etcd's 2 MiB gRPC limit plus base64's growth,
/// so etcd's own size errors decide every request a real client sends.
pub const BODY_MAX: usize = 8 << 20;

/// The answer to one request, owed to its connection; dropped unanswered, it closes the
/// connection (as a Go handler's panic would).
pub type Done = net::Done<Response>;
/// What to answer if a request is still unanswered at its handler's deadline.
pub type Expiry = net::Expiry<Response>;

/// A parsed request.
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string (after `?`, undecoded), empty if there is none.
    pub query: String,
    /// The `Authorization` header (etcd's gateway takes it as the auth token).
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// What a handler answers.
pub enum Response {
    /// A complete body sent with `Content-Length`.
    Full { status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8> },
    /// A body sent chunked with the given trailers after it (etcd's error responses).
    Chunked {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<Vec<u8>>,
        trailers: Vec<(&'static str, &'static str)>,
    },
    /// Whole stream messages known at once (a lease keepalive body's answers): sent chunked as a
    /// stream is, then the connection serves the next request.
    Messages { status: u16, headers: Vec<(&'static str, String)>, messages: Vec<Vec<u8>> },
    /// A body produced over time (a watch): each message received is sent as one
    /// chunk and flushed at once; the response ends when the sender is dropped. The status line
    /// and headers go out with the first message, as Go's gateway does, so a stream that never
    /// yields one answers nothing. If the client disconnects, the receiver is dropped, which
    /// tells the producer to stop.
    Stream {
        status: u16,
        headers: Vec<(&'static str, String)>,
        messages: Receiver<Vec<u8>>,
        /// Runs when the stream ends for any reason (the watch gateway cancels its watchers).
        on_close: Option<Box<dyn FnOnce() + Send>>,
    },
}

/// Handles requests; shared by all loops.
pub trait Handler: Send + Sync + 'static {
    /// Starts answering `req`, on the loop thread that read it: answer through `done` now or
    /// later from any thread, and never block here (use [`net::Done::spawn_blocking`]). If the
    /// answer may never come, return an [`Expiry`].
    fn handle(&self, req: Request, done: Done) -> Option<Expiry>;
}
