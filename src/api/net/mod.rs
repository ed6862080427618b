//! The client port's connections: epoll event loops (through `mio`, no async runtime) that
//! read and write for many connections each, choose each connection's protocol from its
//! first bytes (the HTTP/2 preface, or HTTP/1.1, as etcd's cmux does), and take the answers
//! other threads post back; and a pool of threads for handlers that block.
//!
//! Threads and queues:
//! - `raftkv-httpio-N`, one per core (at most [`LOOPS_MAX`]): each owns its connections and
//!   an epoll set. Loop 0 also accepts and deals new connections out in turn. A loop hands
//!   each complete request to its protocol's handler with a [`Done`]. Answers come back
//!   through the loop's post box (a mutex-guarded list, drained every turn; bounded by the
//!   requests in flight: one per HTTP/1.1 connection, [`crate::api::h2::STREAMS_MAX`] per
//!   HTTP/2 one) and one `eventfd` wake-up when the loop sleeps, so a burst of answers after
//!   one fsync costs one wake-up, not one per caller.
//! - `raftkv-http-N`: the blocking pool, spawned on demand up to [`POOL_MAX`], fed by a queue
//!   of [`POOL_QUEUE_MAX`] jobs ([`Done::spawn_blocking`]).
//!
//! Why loops: with a thread per connection, every request cost two sleeps and two wake-ups of
//! its thread (waiting for the request, then for the fsync); the flame graph of 64 clients
//! putting showed those context switches as the largest share of the server's CPU.
//!
//! TLS: on a TLS port ([`HttpServer::start`] with a [`ServerTls`]) loop 0 still accepts and
//! deals plain sockets out; the loop that gets one runs its handshake and its records on its
//! own thread (`socket`), with no thread per handshake, and closes it if the handshake is not
//! done within the port's handshake timeout.
//!
//! Files: `event_loop` (a loop and its connections), `socket` (a connection's plain or TLS
//! socket), `pool` (the blocking pool); this one holds the server's start and stop and what
//! handlers answer through.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::net::TcpListener;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use super::{h2, http1};
use crate::tls::ServerTls;
use crate::wait::{Cancel, CancelTx};
use crate::{Error, Result};

mod event_loop;
mod pool;
mod socket;

use event_loop::EventLoop;
use pool::Pool;

/// Event loops at most, whatever the core count.
pub const LOOPS_MAX: usize = 4;
/// Connections served at once; more are closed as they are accepted.
pub const CONNECTIONS_MAX: usize = 16_384;
/// Blocking pool threads at most; each runs one handler call at a time.
pub const POOL_MAX: usize = 1024;
/// Blocking calls queued for the pool; beyond it a request's connection is closed.
pub const POOL_QUEUE_MAX: usize = 1024;
/// When to try accepting again after an error such as running out of descriptors.
const ACCEPT_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Most bytes buffered from one connection: a whole request with room for chunk framing, or
/// pipelined requests waiting their turn (reading pauses there).
const READ_BUFFER_MAX: usize = 4 * http1::BODY_MAX;
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

/// The handlers of the two protocols a client port speaks.
#[derive(Clone)]
pub struct Handlers {
    pub http1: Arc<dyn http1::Handler>,
    pub h2: Arc<dyn h2::Handler>,
}

/// What to answer if a request is still unanswered at `at` (its handler's own deadline).
pub struct Expiry<R> {
    pub at: Instant,
    pub answer: Box<dyn FnOnce() -> R + Send>,
}

/// An answer type a loop knows how to deliver: an HTTP/1.1 response, or an HTTP/2 stream's.
pub trait Deliver: Send + Sized + 'static {
    #[doc(hidden)]
    fn post(to: To, answer: Answer<Self>) -> Post;
}

impl Deliver for http1::Response {
    fn post(to: To, answer: Answer<Self>) -> Post {
        Post::Http1 { to, answer }
    }
}

impl Deliver for h2::Response {
    fn post(to: To, answer: Answer<Self>) -> Post {
        Post::H2 { to, answer }
    }
}

/// Where an answer goes: a connection of a loop, the request (or connection, for HTTP/2)
/// generation, and the HTTP/2 stream (0 for HTTP/1.1).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct To {
    conn: usize,
    generation: u64,
    stream: u32,
}

/// The answer to one request, owed to its connection. Dropping it unanswered closes the
/// HTTP/1.1 connection (as a Go handler's panic would) or resets the HTTP/2 stream.
pub struct Done<R: Deliver> {
    to: Option<(Arc<Mailbox>, To)>,
    pool: Arc<Pool>,
    answer: PhantomData<fn(R)>,
}

impl<R: Deliver> Done<R> {
    fn new(mailbox: Arc<Mailbox>, to: To, pool: Arc<Pool>) -> Done<R> {
        Done { to: Some((mailbox, to)), pool, answer: PhantomData }
    }

    pub fn respond(self, response: R) {
        self.post(Answer::Ready(response));
    }

    /// Answers with what `answer` makes, run on the connection's loop thread: for the cheap
    /// last step of a request answered from another thread (encoding, a local read).
    pub fn respond_with(self, answer: impl FnOnce() -> R + Send + 'static) {
        self.post(Answer::Later(Box::new(answer)));
    }

    /// The [`Cancel`] of a call that waits for other clients: it fires when the client leaves
    /// (closes or half-closes its HTTP/1.1 connection, resets its HTTP/2 stream, or its
    /// connection fails), when the request's [`Expiry`] answers it, or when the server stops.
    /// Go's servers cancel a request's context on the same events.
    pub fn cancel(&self) -> Cancel {
        let (tx, cancel) = Cancel::new();
        // Posted before the answer can be (the work has not started): the loop holds it from
        // then until the request ends.
        if let Some((mailbox, to)) = &self.to {
            mailbox.post(Post::Cancel { to: *to, tx });
        }
        cancel
    }

    /// Answers with what `work` makes on a pool thread, for handlers that block.
    pub fn spawn_blocking(self, work: impl FnOnce() -> R + Send + 'static) {
        let pool = self.pool.clone();
        if let Err(job) = pool.run(Box::new(move || self.respond(work()))) {
            // Dropping the job drops its `Done`, which ends the request.
            log::warn!("http: {POOL_QUEUE_MAX} blocking calls queued; refusing a request");
            drop(job);
        }
    }

    fn post(mut self, answer: Answer<R>) {
        if let Some((mailbox, to)) = self.to.take() {
            mailbox.post(R::post(to, answer));
        }
    }
}

impl<R: Deliver> Drop for Done<R> {
    fn drop(&mut self) {
        if let Some((mailbox, to)) = self.to.take() {
            mailbox.post(R::post(to, Answer::Abandoned));
        }
    }
}

/// The sending side of an HTTP/2 streaming call, for any thread: its parts go to the
/// connection's loop in the order sent, bounded by the stream's [`h2::Outbox`]. Clones send
/// on the same stream.
#[derive(Clone)]
pub struct StreamTx {
    inner: Arc<StreamTxInner>,
}

struct StreamTxInner {
    mailbox: Arc<Mailbox>,
    to: To,
    outbox: Arc<h2::Outbox>,
    pool: Arc<Pool>,
}

/// How long a blocked [`StreamTx::send_blocking`] sleeps between looks at its stream.
const STREAM_WAIT: Duration = Duration::from_millis(100);

impl StreamTx {
    fn new(mailbox: Arc<Mailbox>, to: To, outbox: Arc<h2::Outbox>, pool: Arc<Pool>) -> StreamTx {
        StreamTx { inner: Arc::new(StreamTxInner { mailbox, to, outbox, pool }) }
    }

    fn post(&self, part: h2::Part) {
        let inner = &self.inner;
        inner.mailbox.post(Post::H2Part { to: inner.to, part });
    }

    /// The response headers, sent with the first message (or with the trailers).
    pub fn headers(&self, fields: h2::Fields) {
        self.post(h2::Part::Headers(fields));
    }

    /// Queues a message without waiting: `Full` when the client is not reading.
    pub fn send(&self, message: Vec<u8>) -> std::result::Result<(), h2::SendError> {
        self.inner.outbox.reserve(message.len())?;
        self.post(h2::Part::Message(message));
        Ok(())
    }

    /// Queues a message, waiting for room while the client reads slowly; for pool threads.
    pub fn send_blocking(&self, message: Vec<u8>) -> std::result::Result<(), h2::SendError> {
        loop {
            match self.inner.outbox.reserve(message.len()) {
                Ok(()) => break,
                Err(h2::SendError::Full) => self.inner.outbox.wait(STREAM_WAIT),
                Err(closed) => return Err(closed),
            }
        }
        self.post(h2::Part::Message(message));
        Ok(())
    }

    /// Ends the stream with `trailers` after what was sent before.
    pub fn finish(&self, trailers: h2::Fields) {
        self.post(h2::Part::Trailers(trailers));
    }

    pub fn reset(&self, reason: h2::Reason) {
        self.post(h2::Part::Reset(reason));
    }

    /// Whether the stream has ended (so its producers can stop).
    pub fn is_closed(&self) -> bool {
        self.inner.outbox.is_closed()
    }

    /// Runs `work` on a pool thread; `false` (and `work` dropped) when the pool's queue is
    /// full.
    pub fn spawn_blocking(&self, work: impl FnOnce() + Send + 'static) -> bool {
        if self.inner.pool.run(Box::new(work)).is_err() {
            log::warn!("http: {POOL_QUEUE_MAX} blocking calls queued; refusing a stream's work");
            return false;
        }
        true
    }
}

#[doc(hidden)]
pub enum Answer<R> {
    Ready(R),
    Later(Box<dyn FnOnce() -> R + Send>),
    Abandoned,
}

#[doc(hidden)]
pub enum Post {
    Http1 {
        to: To,
        answer: Answer<http1::Response>,
    },
    H2 {
        to: To,
        answer: Answer<h2::Response>,
    },
    /// The next part of an HTTP/2 streaming call's answer.
    H2Part {
        to: To,
        part: h2::Part,
    },
    /// A waiting call's cancel, held by its request's connection until the request ends.
    Cancel {
        to: To,
        tx: CancelTx,
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
    handlers: Handlers,
    pool: Arc<Pool>,
    streams: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stopping: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
    tls: Option<Arc<ServerTls>>,
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
    /// Serves `listener` with `handlers`, over TLS when `tls` is given.
    pub fn start(listener: TcpListener, handlers: Handlers, tls: Option<Arc<ServerTls>>) -> Result<HttpServer> {
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
                handlers: handlers.clone(),
                pool: server.pool.clone(),
                streams: server.streams.clone(),
                stopping: stopping.clone(),
                stop_rx: stop_rx.clone(),
                tls: tls.clone(),
            };
            let event_loop = EventLoop::new(poll, listener.take(), i, shared).map_err(io)?;
            // Dropping `server` on an error stops the loops already running.
            server.loops.push(crate::thread::spawn_named(format!("raftkv-httpio-{i}"), move || event_loop.run())?);
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
