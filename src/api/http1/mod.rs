//! A small synchronous HTTP/1.1 server: epoll event loops (through `mio`, no async runtime)
//! that read requests and write answers for many connections each, a pool of threads for
//! handlers that block, and a thread per streamed response.
//!
//! Threads and queues:
//! - `raftkv-httpio-N`, one per core (at most [`LOOPS_MAX`]): each owns its connections and
//!   an epoll set. Loop 0 also accepts and deals new connections out in turn. A loop parses
//!   requests (`httparse`; keep-alive, pipelining answered in order, HTTP/1.0,
//!   `Expect: 100-continue`, chunked bodies) and hands each to the [`Handler`] with a [`Done`].
//!   Answers come back through the loop's post box (a mutex-guarded list, drained every turn;
//!   bounded by the connections, each with at most one request in flight) and one `eventfd`
//!   wake-up when the loop sleeps, so a burst of answers after one fsync costs one wake-up,
//!   not one per caller.
//! - `raftkv-http-N`: the blocking pool, spawned on demand up to [`POOL_MAX`], fed by a queue
//!   of [`POOL_QUEUE_MAX`] jobs (`Done::spawn_blocking`).
//! - `raftkv-stream`: a [`Response::Stream`] (a watch) takes its connection off
//!   the loop onto a thread of its own, which writes one chunk per message and ends the
//!   connection with the stream.
//!
//! Why loops: with a thread per connection, every request cost two sleeps and two wake-ups of
//! its thread (waiting for the request, then for the fsync); the flame graph of 64 clients
//! putting showed those context switches as the largest share of the server's CPU.
//!
//! Files: `event_loop` (a loop and its connections), `parse` (requests), [`write`]
//! (answers and streams), `pool` (the blocking pool); this one holds the types handlers see
//! and the server's start and stop.
//!
//! Responses are written the way Go's net/http writes them (handler headers sorted, then
//! `Date`, `Content-Length`, a sniffed `Content-Type`, `Connection`, `Transfer-Encoding`), so
//! byte-level comparisons with etcd only differ where behaviour does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{self, select, Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use crate::{Error, Result};

mod event_loop;
mod parse;
mod pool;
mod write;

use event_loop::EventLoop;
pub use parse::parse_stream;
use pool::Pool;
pub use write::plain;

/// Event loops at most, whatever the core count.
pub const LOOPS_MAX: usize = 4;
/// Connections served at once; more are closed as they are accepted.
pub const CONNECTIONS_MAX: usize = 16_384;
/// Blocking pool threads at most; each runs one handler call at a time.
pub const POOL_MAX: usize = 1024;
/// Blocking calls queued for the pool; beyond it a request's connection is closed.
pub const POOL_QUEUE_MAX: usize = 1024;
/// How often a stream thread checks whether its client hung up (a blocked socket write would
/// tell only once the kernel's buffer fills).
const HANGUP_CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// When to try accepting again after an error such as running out of descriptors.
const ACCEPT_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Largest request head (request line + headers).
const HEAD_MAX: usize = 64 * 1024;
/// Largest request body read into memory. Above etcd's 2 MiB gRPC limit plus base64's growth,
/// so etcd's own size errors decide every request a real client sends.
pub const BODY_MAX: usize = 8 << 20;
/// Most bytes buffered from one connection: a whole request with room for chunk framing, or
/// pipelined requests waiting their turn (reading pauses there).
const READ_BUFFER_MAX: usize = 4 * BODY_MAX;
/// An idle keep-alive connection is closed after this long.
const IDLE_MAX: Duration = Duration::from_secs(300);
/// Request deadlines are enforced to within this.
const EXPIRY_GRAIN: Duration = Duration::from_millis(10);
/// How long a stopping loop waits for answers to requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection `i` is `Token(i + FIRST_CONN)`.
const FIRST_CONN: usize = 2;

/// A parsed request.
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string (after `?`, undecoded), empty if there is none.
    pub query: String,
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

/// What to answer if a request is still unanswered at `at` (its handler's own deadline).
pub struct Expiry {
    pub at: Instant,
    pub answer: Box<dyn FnOnce() -> Response + Send>,
}

/// Handles requests; shared by all loops.
pub trait Handler: Send + Sync + 'static {
    /// Starts answering `req`, on the loop thread that read it: answer through `done` now or
    /// later from any thread, and never block here (use [`Done::spawn_blocking`]). If the
    /// answer may never come, return an [`Expiry`].
    fn handle(&self, req: Request, done: Done) -> Option<Expiry>;
}

/// The answer to one request, owed to its connection. Dropping it unanswered closes the
/// connection (as a Go handler's panic would).
pub struct Done {
    to: Option<(Arc<Mailbox>, usize, u64)>,
    pool: Arc<Pool>,
}

impl Done {
    pub fn respond(self, response: Response) {
        self.post(Answer::Ready(response));
    }

    /// Answers with what `answer` makes, run on the connection's loop thread: for the cheap
    /// last step of a request answered from another thread (encoding, a local read).
    pub fn respond_with(self, answer: impl FnOnce() -> Response + Send + 'static) {
        self.post(Answer::Later(Box::new(answer)));
    }

    /// Answers with what `work` makes on a pool thread, for handlers that block.
    pub fn spawn_blocking(self, work: impl FnOnce() -> Response + Send + 'static) {
        let pool = self.pool.clone();
        if let Err(job) = pool.run(Box::new(move || self.respond(work()))) {
            // Dropping the job drops its `Done`, which closes the connection.
            log::warn!("http: {POOL_QUEUE_MAX} blocking calls queued; closing a connection");
            drop(job);
        }
    }

    fn post(mut self, answer: Answer) {
        if let Some((mailbox, conn, generation)) = self.to.take() {
            mailbox.post(Post::Answer { conn, generation, answer });
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some((mailbox, conn, generation)) = self.to.take() {
            mailbox.post(Post::Answer { conn, generation, answer: Answer::Abandoned });
        }
    }
}

enum Answer {
    Ready(Response),
    Later(Box<dyn FnOnce() -> Response + Send>),
    Abandoned,
}

enum Post {
    Answer {
        conn: usize,
        generation: u64,
        answer: Answer,
    },
    /// A connection accepted by loop 0 for this loop.
    Conn(mio::net::TcpStream),
}

/// A loop's post box: what other threads hand it, and the wake-up for when it sleeps.
struct Mailbox {
    posts: Mutex<Vec<Post>>,
    /// Set while the loop is (about to be) blocked in epoll: the first post then wakes it.
    asleep: AtomicBool,
    waker: Waker,
}

impl Mailbox {
    fn post(&self, post: Post) {
        self.posts.lock().push(post);
        // Pairs with the loop's fence between setting `asleep` and checking the box.
        fence(Ordering::SeqCst);
        if self.asleep.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::warn!("http: cannot wake event loop: {e}");
            }
        }
    }
}

/// What every event loop of a server holds.
struct Shared {
    mailboxes: Vec<Arc<Mailbox>>,
    handler: Arc<dyn Handler>,
    pool: Arc<Pool>,
    streams: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stopping: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
}

/// A running server; dropping or [`HttpServer::stop`] stops it and joins its threads.
pub struct HttpServer {
    /// Set (and the loops woken) at stop: the loops check it each turn.
    stopping: Arc<AtomicBool>,
    /// Dropped at stop: every pool worker and stream thread waits on its receiving end.
    stop_tx: Option<Sender<()>>,
    addr: std::net::SocketAddr,
    mailboxes: Vec<Arc<Mailbox>>,
    loops: Vec<JoinHandle<()>>,
    pool: Arc<Pool>,
    streams: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HttpServer {
    pub fn start(listener: TcpListener, handler: Arc<dyn Handler>) -> Result<HttpServer> {
        let addr = listener.local_addr().map_err(|e| Error::Config(format!("listener: {e}")))?;
        let io = |e: io::Error| Error::Config(format!("http event loop: {e}"));
        listener.set_nonblocking(true).map_err(io)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = channel::bounded::<()>(0);
        let pool = Arc::new(Pool::new(stop_rx.clone()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let count = std::thread::available_parallelism().map_or(1, |n| n.get()).min(LOOPS_MAX);
        let mut polls = Vec::new();
        let mut mailboxes = Vec::new();
        for _ in 0..count {
            let poll = Poll::new().map_err(io)?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(io)?;
            mailboxes.push(Arc::new(Mailbox { posts: Mutex::new(Vec::new()), asleep: AtomicBool::new(false), waker }));
            polls.push(poll);
        }
        let mut listener = Some(mio::net::TcpListener::from_std(listener));
        let mut server = HttpServer {
            stopping: stopping.clone(),
            stop_tx: Some(stop_tx),
            addr,
            mailboxes: mailboxes.clone(),
            loops: Vec::new(),
            pool,
            streams,
        };
        for (i, poll) in polls.into_iter().enumerate() {
            let shared = Shared {
                mailboxes: mailboxes.clone(),
                handler: handler.clone(),
                pool: server.pool.clone(),
                streams: server.streams.clone(),
                stopping: stopping.clone(),
                stop_rx: stop_rx.clone(),
            };
            let event_loop = EventLoop::new(poll, listener.take(), i, shared).map_err(io)?;
            // Dropping `server` on an error stops the loops already running.
            server.loops.push(crate::thread::spawn(format!("raftkv-httpio-{i}"), move || event_loop.run())?);
        }
        Ok(server)
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, closes connections, joins threads.
    pub fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        drop(self.stop_tx.take());
        for mailbox in &self.mailboxes {
            let _ = mailbox.waker.wake();
        }
        for event_loop in self.loops.drain(..) {
            let _ = event_loop.join();
        }
        self.pool.join();
        let streams = std::mem::take(&mut *self.streams.lock());
        for stream in streams {
            let _ = stream.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
