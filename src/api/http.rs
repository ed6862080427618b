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
//! - `raftkv-stream`: a [`Response::Stream`] (watch, lease keepalive) takes its connection off
//!   the loop onto a thread of its own, which writes one chunk per message and ends the
//!   connection with the stream.
//!
//! Why loops: with a thread per connection, every request cost two sleeps and two wake-ups of
//! its thread (waiting for the request, then for the fsync); the flame graph of 64 clients
//! putting showed those context switches as the largest share of the server's CPU.
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
            let mut event_loop = EventLoop {
                poll,
                listener: listener.take(),
                accept_retry: None,
                mailboxes: mailboxes.clone(),
                mailbox: mailboxes[i].clone(),
                next_loop: 0,
                conns: Vec::new(),
                free: Vec::new(),
                live: 0,
                generations: 0,
                expiries: BinaryHeap::new(),
                scratch: vec![0; 64 * 1024],
                handler: handler.clone(),
                pool: server.pool.clone(),
                streams: server.streams.clone(),
                stopping: stopping.clone(),
                stop_rx: stop_rx.clone(),
            };
            if let Some(listener) = &mut event_loop.listener {
                event_loop.poll.registry().register(listener, LISTENER, Interest::READABLE).map_err(io)?;
            }
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

type Job = Box<dyn FnOnce() + Send>;

/// The blocking pool: workers spawned on demand, kept once spawned.
struct Pool {
    jobs_tx: Sender<Job>,
    jobs_rx: Receiver<Job>,
    /// Disconnected when the server stops.
    stop_rx: Receiver<()>,
    /// Workers free and not yet claimed by a queued job.
    idle: Arc<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    fn new(stop_rx: Receiver<()>) -> Pool {
        let (jobs_tx, jobs_rx) = channel::bounded(POOL_QUEUE_MAX);
        Pool { jobs_tx, jobs_rx, stop_rx, idle: Arc::new(AtomicUsize::new(0)), workers: Mutex::new(Vec::new()) }
    }

    /// Queues `job` for a worker: claims an idle one or spawns one (claiming when queueing, not
    /// when a worker wakes, so a job never waits behind busy workers while the pool may grow).
    /// At [`POOL_MAX`] jobs wait for a free worker; a full queue gives the job back.
    fn run(&self, job: Job) -> std::result::Result<(), Job> {
        let claimed = self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
        if !claimed {
            self.spawn_worker();
        }
        self.jobs_tx.try_send(job).map_err(|e| e.into_inner())
    }

    fn spawn_worker(&self) {
        let mut workers = self.workers.lock();
        if workers.len() >= POOL_MAX {
            return;
        }
        let n = workers.len();
        let (jobs, stop_rx, idle) = (self.jobs_rx.clone(), self.stop_rx.clone(), self.idle.clone());
        // The new worker is born claimed: it takes the job being queued now.
        let spawned = crate::thread::spawn(format!("raftkv-http-{n}"), move || loop {
            select! {
                recv(jobs) -> job => match job {
                    Ok(job) => {
                        job();
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(_) => return,
                },
                recv(stop_rx) -> _ => return,
            }
        });
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("http: cannot spawn a pool thread: {e}"),
        }
    }

    fn join(&self) {
        let workers = std::mem::take(&mut *self.workers.lock());
        for worker in workers {
            let _ = worker.join();
        }
        // Jobs still queued answer nothing: their `Done`s close their connections.
        while self.jobs_rx.try_recv().is_ok() {}
    }
}

/// One event loop: its epoll set, its connections, and the answers it waits for.
struct EventLoop {
    poll: Poll,
    /// Loop 0's: it accepts for every loop.
    listener: Option<mio::net::TcpListener>,
    /// When to try accepting again after an error such as running out of descriptors (the
    /// waiting connections raise no new event).
    accept_retry: Option<Instant>,
    mailboxes: Vec<Arc<Mailbox>>,
    mailbox: Arc<Mailbox>,
    /// The loop that gets the next accepted connection.
    next_loop: usize,
    conns: Vec<Option<Conn>>,
    /// Free slots of `conns`.
    free: Vec<usize>,
    live: usize,
    /// Numbers this loop's requests. Unique across connections: a slot of `conns` is reused,
    /// and a late answer or deadline of its previous connection must not match the new one.
    generations: u64,
    /// Deadlines of requests that had an [`Expiry`]: (when, conn, generation). An entry stays
    /// until its deadline even if answered (a heap cannot remove it), so this holds about
    /// request rate × timeout entries: at 25k puts/s and the default 7 s, 175k entries, 6 MiB.
    expiries: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Read buffer shared by this loop's connections; bytes are copied out to the connection.
    scratch: Vec<u8>,
    handler: Arc<dyn Handler>,
    pool: Arc<Pool>,
    streams: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stopping: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
}

struct Conn {
    stream: mio::net::TcpStream,
    /// Bytes read and not yet parsed into a request.
    input: Vec<u8>,
    /// The head of the request being received, once complete.
    head: Option<Head>,
    /// Bytes answered and not yet written, from `written` on.
    output: Vec<u8>,
    written: usize,
    /// The request in flight or last answered (see `EventLoop::generations`), so a late
    /// answer to an expired one is recognised.
    generation: u64,
    state: State,
    /// The peer closed its side (or the connection failed): no more requests will come.
    eof: bool,
    /// Reading stopped at [`READ_BUFFER_MAX`]; resumes once requests are taken out.
    paused: bool,
    /// Close once `output` is written.
    closing: bool,
    last_active: Instant,
}

enum State {
    /// Receiving a request.
    Reading,
    /// The handler has the request.
    Waiting { version: (u8, u8), close: bool, echo_close: bool, expiry: Option<Expiry> },
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut stop_by: Option<Instant> = None;
        loop {
            if self.stopping.load(Ordering::Acquire) && stop_by.is_none() {
                stop_by = Some(Instant::now() + STOP_GRACE);
                self.begin_stop();
            }
            if let Some(by) = stop_by {
                if self.live == 0 || Instant::now() >= by {
                    return;
                }
            }
            let timeout = self.timeout(stop_by);
            self.mailbox.asleep.store(true, Ordering::Release);
            fence(Ordering::SeqCst);
            let timeout = if self.mailbox.posts.lock().is_empty() { timeout } else { Duration::ZERO };
            let polled = self.poll.poll(&mut events, Some(timeout));
            self.mailbox.asleep.store(false, Ordering::Release);
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("http: event loop failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let conn = t - FIRST_CONN;
                        let to_end = event.is_read_closed() || event.is_error();
                        if event.is_readable() || to_end {
                            self.read(conn, to_end);
                        }
                        if event.is_writable() {
                            self.write(conn);
                        }
                        self.advance(conn);
                    }
                }
            }
            self.take_posts();
            let now = Instant::now();
            self.expire(now);
            if self.accept_retry.is_some_and(|at| at <= now) {
                self.accept_retry = None;
                self.accept();
            }
            if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                last_sweep = now;
                self.close_idle(now);
            }
        }
    }

    /// How long epoll may sleep: until the next deadline, at most a second (the idle sweep).
    /// Deadlines are checked every [`EXPIRY_GRAIN`] at most: most of the heap's entries are of
    /// requests answered long ago, and waking for each of those would be a wake-up per request.
    fn timeout(&self, stop_by: Option<Instant>) -> Duration {
        let now = Instant::now();
        let mut until = now + Duration::from_secs(1);
        if let Some(Reverse((at, _, _))) = self.expiries.peek() {
            until = until.min((*at).max(now + EXPIRY_GRAIN));
        }
        if let Some(at) = self.accept_retry {
            until = until.min(at);
        }
        if stop_by.is_some() {
            until = until.min(now + Duration::from_millis(50));
        }
        until.saturating_duration_since(now)
    }

    fn begin_stop(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Connections between requests end now; those with one in flight when it is answered.
        for i in 0..self.conns.len() {
            let between = self.conns[i]
                .as_ref()
                .is_some_and(|c| matches!(c.state, State::Reading) && c.written == c.output.len());
            if between {
                self.close(i);
            } else if let Some(conn) = &mut self.conns[i] {
                conn.closing = true;
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, _)) => {
                    let target = self.next_loop;
                    self.next_loop = (self.next_loop + 1) % self.mailboxes.len();
                    if target == 0 {
                        self.add(stream);
                    } else {
                        self.mailboxes[target].post(Post::Conn(stream));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Out of file descriptors and the like: log, back off, keep serving.
                Err(e) => {
                    log::warn!("http: accept failed: {e}");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY_INTERVAL);
                    return;
                }
            }
        }
    }

    fn add(&mut self, mut stream: mio::net::TcpStream) {
        if self.live >= CONNECTIONS_MAX / self.mailboxes.len() || self.stopping.load(Ordering::Acquire) {
            log::warn!("http: {} connections open; closing a new one", self.live);
            return;
        }
        let _ = stream.set_nodelay(true);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, Token(slot + FIRST_CONN), interest) {
            log::warn!("http: cannot watch a new connection: {e}");
            self.free.push(slot);
            return;
        }
        self.conns[slot] = Some(Conn {
            stream,
            input: Vec::new(),
            head: None,
            output: Vec::new(),
            written: 0,
            generation: 0,
            state: State::Reading,
            eof: false,
            paused: false,
            closing: false,
            last_active: Instant::now(),
        });
        self.live += 1;
    }

    fn close(&mut self, i: usize) {
        if let Some(mut conn) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.free.push(i);
            self.live -= 1;
        }
    }

    /// Reads what the socket has. epoll is edge-triggered, so that means until it would block,
    /// except that a read shorter than the buffer already emptied the socket: anything arriving
    /// after it raises a new event. (Skipping the `EAGAIN` read saves a syscall per request.)
    /// A peer's end of input may have come with the event being handled, so `to_end` reads
    /// until it is seen.
    fn read(&mut self, i: usize, to_end: bool) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        while !conn.eof {
            if conn.input.len() >= READ_BUFFER_MAX {
                conn.paused = true;
                return;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    conn.input.extend_from_slice(&self.scratch[..n]);
                    conn.last_active = Instant::now();
                    if n < self.scratch.len() && !to_end {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => conn.eof = true,
            }
        }
    }

    /// Writes what is owed (until the socket would block); closes the connection when it is
    /// done with or broken.
    fn write(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(0) => return self.close(i),
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("http: write failed: {e}");
                    return self.close(i);
                }
            }
        }
        conn.output.clear();
        conn.written = 0;
        if conn.closing && matches!(conn.state, State::Reading) {
            self.close(i);
        }
    }

    /// Takes the next request of connection `i` if it is between requests and has written
    /// everything it owes (so pipelined requests are answered in order, one at a time).
    fn advance(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        if !matches!(conn.state, State::Reading) || conn.written < conn.output.len() || conn.closing {
            return;
        }
        match parse(&conn.input, &mut conn.head) {
            Parsed::Incomplete { continue_wanted } => {
                if continue_wanted {
                    conn.output.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    return self.write(i);
                }
                if conn.paused {
                    let version = conn.head.as_ref().map_or((1, 1), |h| h.version);
                    let _ = write_plain(&mut conn.output, version, 413, "Request Entity Too Large", true);
                    conn.closing = true;
                    return self.write(i);
                }
                if conn.eof {
                    self.close(i);
                }
            }
            Parsed::Bad { version, status, msg } => {
                let _ = write_plain(&mut conn.output, version, status, msg, true);
                conn.closing = true;
                self.write(i);
            }
            Parsed::Complete { head, body, len } => {
                conn.input.drain(..len);
                self.generations += 1;
                let generation = self.generations;
                conn.generation = generation;
                conn.state = State::Waiting {
                    version: head.version,
                    close: head.close,
                    echo_close: head.echo_close,
                    expiry: None,
                };
                let done = Done { to: Some((self.mailbox.clone(), i, generation)), pool: self.pool.clone() };
                let req = Request { method: head.method, path: head.path, query: head.query, body };
                let handler = &self.handler;
                if let Some(expiry) = unpanicked(|| handler.handle(req, done)).flatten() {
                    self.expiries.push(Reverse((expiry.at, i, generation)));
                    if let Some(State::Waiting { expiry: slot, .. }) = self.conns[i].as_mut().map(|c| &mut c.state) {
                        *slot = Some(expiry);
                    }
                }
                if let Some(conn) = self.conns[i].as_mut().filter(|c| c.paused) {
                    conn.paused = false;
                    self.read(i, false);
                }
            }
        }
    }

    fn take_posts(&mut self) {
        let posts = std::mem::take(&mut *self.mailbox.posts.lock());
        for post in posts {
            match post {
                Post::Conn(stream) => self.add(stream),
                Post::Answer { conn, generation, answer } => self.answer(conn, generation, answer),
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, i, generation))) = self.expiries.peek().copied() {
            if at > now {
                return;
            }
            self.expiries.pop();
            let expiry = match self.conns.get_mut(i).and_then(Option::as_mut) {
                Some(Conn { generation: g, state: State::Waiting { expiry, .. }, .. }) if *g == generation => {
                    expiry.take()
                }
                _ => None,
            };
            if let Some(expiry) = expiry {
                self.answer(i, generation, Answer::Later(expiry.answer));
            }
        }
    }

    /// Writes the answer to connection `i`'s request `generation`, unless that request was
    /// answered already (expired) or the connection is gone.
    fn answer(&mut self, i: usize, generation: u64, answer: Answer) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        if conn.generation != generation || !matches!(conn.state, State::Waiting { .. }) {
            return;
        }
        let State::Waiting { version, close, echo_close, .. } = std::mem::replace(&mut conn.state, State::Reading)
        else {
            return;
        };
        let response = match answer {
            Answer::Ready(response) => response,
            Answer::Later(answer) => match unpanicked(answer) {
                Some(response) => response,
                None => return self.close(i),
            },
            Answer::Abandoned => return self.close(i),
        };
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        if let Response::Stream { status, headers, messages, on_close } = response {
            return self.hand_off(i, version, status, headers, messages, on_close);
        }
        if let Err(e) = write_response(&mut conn.output, version, response, echo_close) {
            log::debug!("http: cannot encode a response: {e}");
        }
        conn.last_active = Instant::now();
        if close || conn.eof || self.stopping.load(Ordering::Acquire) {
            conn.closing = true;
        }
        self.write(i);
        self.advance(i);
    }

    /// Moves connection `i` to a `raftkv-stream` thread that writes the stream, then closes it
    /// (a client cannot tell where a new response starts if it stopped reading the old one).
    fn hand_off(
        &mut self,
        i: usize,
        version: (u8, u8),
        status: u16,
        headers: Vec<(&'static str, String)>,
        messages: Receiver<Vec<u8>>,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) {
        let Some(mut conn) = self.conns.get_mut(i).and_then(Option::take) else { return };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.free.push(i);
        self.live -= 1;
        let stream = TcpStream::from(std::os::fd::OwnedFd::from(conn.stream));
        let unwritten = conn.output.split_off(conn.written);
        let stop_rx = self.stop_rx.clone();
        let spawned = crate::thread::spawn("raftkv-stream", move || {
            let outcome = stream.set_nonblocking(false).and_then(|()| {
                let mut writer = io::BufWriter::with_capacity(16 * 1024, stream);
                writer.write_all(&unwritten)?;
                write_stream(&mut writer, version, status, headers, messages, &stop_rx)
            });
            if let Err(e) = outcome {
                log::debug!("http: stream ended: {e}");
            }
            if let Some(on_close) = on_close {
                on_close();
            }
        });
        match spawned {
            Ok(handle) => {
                let mut streams = self.streams.lock();
                streams.retain(|s| !s.is_finished());
                streams.push(handle);
            }
            Err(e) => log::error!("http: cannot spawn a stream thread: {e}"),
        }
    }

    fn close_idle(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let idle = self.conns[i]
                .as_ref()
                .is_some_and(|c| matches!(c.state, State::Reading) && now.duration_since(c.last_active) >= IDLE_MAX);
            if idle {
                self.close(i);
            }
        }
    }
}

/// Runs handler code on a loop thread. A panic there is a bug, but it must cost one request
/// (its connection is closed, as Go's server does), not every connection of the loop.
fn unpanicked<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::error!("http: a request handler panicked; closing its connection");
            None
        }
    }
}

struct Head {
    method: String,
    path: String,
    query: String,
    version: (u8, u8),
    /// Bytes of the head, blank lines before it included.
    len: usize,
    content_length: usize,
    chunked: bool,
    close: bool,
    /// The client asked to close: Go then says `Connection: close` in its answer.
    echo_close: bool,
    expect_continue: bool,
    /// `100 Continue` was sent for this request.
    continued: bool,
}

enum Parsed {
    /// More bytes are needed; first send `100 Continue` if the client waits for it.
    Incomplete { continue_wanted: bool },
    /// Malformed: answer with this and close.
    Bad { version: (u8, u8), status: u16, msg: &'static str },
    /// A whole request, `len` bytes of the input.
    Complete { head: Head, body: Vec<u8>, len: usize },
}

/// What parsing a byte stream into requests gives, for the fuzz target: each request's path
/// and body length, then how the input ended (`Ok` = waiting for more, `Err` = refused).
#[doc(hidden)]
pub fn parse_stream(mut input: &[u8]) -> (Vec<(String, usize)>, std::result::Result<(), u16>) {
    let mut requests = Vec::new();
    let mut head = None;
    loop {
        match parse(input, &mut head) {
            Parsed::Complete { head, body, len } => {
                assert!(len > 0 && len <= input.len(), "a request consumes what it parsed");
                requests.push((head.path, body.len()));
                input = &input[len..];
            }
            Parsed::Incomplete { .. } => return (requests, Ok(())),
            Parsed::Bad { status, .. } => return (requests, Err(status)),
        }
    }
}

/// Parses the request at the start of `input`; `head` keeps the parsed head between calls
/// while the body arrives.
fn parse(input: &[u8], head: &mut Option<Head>) -> Parsed {
    if head.is_none() {
        match parse_head(input) {
            Ok(Some(parsed)) => *head = Some(parsed),
            Ok(None) => return Parsed::Incomplete { continue_wanted: false },
            Err((status, msg)) => return Parsed::Bad { version: (1, 1), status, msg },
        }
    }
    let Some(h) = head.as_mut() else { return Parsed::Incomplete { continue_wanted: false } };
    let body = match parse_body(&input[h.len..], h) {
        Ok(Some(body)) => body,
        Ok(None) => {
            let continue_wanted = h.expect_continue && !h.continued;
            h.continued = true;
            return Parsed::Incomplete { continue_wanted };
        }
        Err((status, msg)) => return Parsed::Bad { version: h.version, status, msg },
    };
    let Some(h) = head.take() else { return Parsed::Incomplete { continue_wanted: false } };
    let len = h.len + body.1;
    Parsed::Complete { head: h, body: body.0, len }
}

type BadRequest = (u16, &'static str);

/// The head at the start of `input`, `None` if it is not all there yet.
fn parse_head(input: &[u8]) -> std::result::Result<Option<Head>, BadRequest> {
    // Tolerate blank lines before the request line, as Go does.
    let skip = input.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(&input[skip..]) {
        Ok(httparse::Status::Complete(len)) if len <= HEAD_MAX => skip + len,
        Ok(httparse::Status::Partial) if input.len() - skip <= HEAD_MAX => return Ok(None),
        Ok(_) => return Err((431, "Request Header Fields Too Large")),
        Err(_) => return Err((400, "Bad Request")),
    };
    let version = (1, req.version.unwrap_or(1));
    let target = req.path.unwrap_or("/");
    let mut head = Head {
        method: req.method.unwrap_or("GET").to_string(),
        path: target.split('?').next().unwrap_or("/").to_string(),
        query: target.split_once('?').map_or(String::new(), |(_, q)| q.to_string()),
        version,
        len,
        content_length: 0,
        chunked: false,
        // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
        close: version.1 == 0,
        echo_close: false,
        expect_continue: false,
        continued: false,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| (400, "Bad Request: bad Content-Length"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                head.close = true;
                head.echo_close = version.1 == 1;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                head.close = false;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(Some(head))
}

/// The body at the start of `input` and the bytes it took, `None` if it is not all there yet.
fn parse_body(input: &[u8], head: &Head) -> std::result::Result<Option<(Vec<u8>, usize)>, BadRequest> {
    const TOO_LARGE: BadRequest = (413, "Request Entity Too Large");
    if !head.chunked {
        if head.content_length > BODY_MAX {
            return Err(TOO_LARGE);
        }
        return Ok(input.get(..head.content_length).map(|body| (body.to_vec(), head.content_length)));
    }
    // Find every chunk first; copy them out only once the whole body is here.
    let mut chunks = Vec::new();
    let mut size_total = 0;
    let mut at = 0;
    loop {
        let (taken, size) = match httparse::parse_chunk_size(&input[at..]) {
            Ok(httparse::Status::Complete((taken, size))) => (taken, size as usize),
            Ok(httparse::Status::Partial) if input.len() - at <= HEAD_MAX => return Ok(None),
            _ => return Err((400, "Bad Request: bad chunk size")),
        };
        at += taken;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(end) = input[at..].iter().position(|b| *b == b'\n') else {
                    return if input.len() - at <= HEAD_MAX { Ok(None) } else { Err((400, "Bad Request")) };
                };
                let line = &input[at..at + end];
                at += end + 1;
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    let mut body = Vec::with_capacity(size_total);
                    for (start, len) in chunks {
                        body.extend_from_slice(&input[start..start + len]);
                    }
                    return Ok(Some((body, at)));
                }
            }
        }
        size_total = size_total.saturating_add(size);
        if size_total > BODY_MAX {
            return Err(TOO_LARGE);
        }
        if input.len() < at + size {
            return Ok(None);
        }
        chunks.push((at, size));
        at += size;
        // The line break after the chunk's data.
        let Some(end) = input[at..].iter().position(|b| *b == b'\n') else { return Ok(None) };
        at += end + 1;
    }
}

const CORS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
];

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// RFC 1123 date in GMT, as Go's `http.TimeFormat`.
fn http_date() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT", months[(month - 1) as usize])
}

fn status_line(out: &mut Vec<u8>, version: (u8, u8), status: u16) {
    let _ = write!(out, "HTTP/1.{} {} {}\r\n", version.1, status, reason(status));
}

/// Handler headers (CORS first, then the handler's), sorted by name as Go writes them.
fn sorted_headers(headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut all: Vec<(&'static str, String)> = CORS.iter().map(|(k, v)| (*k, v.to_string())).collect();
    all.extend(headers);
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

fn write_response(w: &mut impl Write, version: (u8, u8), response: Response, close: bool) -> io::Result<()> {
    let mut out = Vec::with_capacity(512);
    match response {
        // A body that overflows Go's response buffer goes out before Go knows its length:
        // chunked, in one chunk.
        Response::Full { status, headers, body } if body.len() > GO_CHUNK_BUFFER => {
            let chunked = Response::Chunked { status, headers, chunks: vec![body], trailers: Vec::new() };
            return write_response(w, version, chunked, close);
        }
        Response::Full { status, headers, body } => {
            let sniffed = !headers.iter().any(|(k, _)| *k == "Content-Type") && !body.is_empty();
            status_line(&mut out, version, status);
            for (k, v) in sorted_headers(headers) {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            let _ = write!(out, "Date: {}\r\nContent-Length: {}\r\n", http_date(), body.len());
            if sniffed {
                out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
            }
            if close {
                out.extend_from_slice(b"Connection: close\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            w.write_all(&out)?;
        }
        Response::Stream { .. } => unreachable!("streams are written by write_stream"),
        Response::Messages { status, headers, messages } => {
            // Go's gateway flushed its headers before the handler returned, so it never
            // announces `Connection: close` on a stream, even when it closes after it.
            stream_head(&mut out, version, status, headers);
            for message in &messages {
                message_chunks(&mut out, message);
            }
            out.extend_from_slice(b"0\r\n\r\n");
            w.write_all(&out)?;
        }
        Response::Chunked { status, headers, chunks, trailers } => {
            status_line(&mut out, version, status);
            for (k, v) in sorted_headers(headers) {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            let _ = write!(out, "Date: {}\r\n", http_date());
            if close {
                out.extend_from_slice(b"Connection: close\r\n");
            }
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                let _ = write!(out, "{:x}\r\n", chunk.len());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            for (k, v) in trailers {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            out.extend_from_slice(b"\r\n");
            w.write_all(&out)?;
        }
    }
    w.flush()
}

/// Writes a [`Response::Stream`] until its sender is dropped, the client goes away, or the
/// server stops.
fn write_stream(
    w: &mut io::BufWriter<TcpStream>,
    version: (u8, u8),
    status: u16,
    headers: Vec<(&'static str, String)>,
    messages: Receiver<Vec<u8>>,
    stop_rx: &Receiver<()>,
) -> io::Result<()> {
    let mut head = Some(headers);
    let hangup_check = channel::tick(HANGUP_CHECK_INTERVAL);
    loop {
        select! {
            recv(messages) -> message => match message {
                Ok(message) => {
                    let mut out = Vec::with_capacity(message.len() + 512);
                    if let Some(headers) = head.take() {
                        stream_head(&mut out, version, status, headers);
                    }
                    message_chunks(&mut out, &message);
                    w.write_all(&out)?;
                    w.flush()?;
                }
                Err(_) => {
                    if head.is_none() {
                        w.write_all(b"0\r\n\r\n")?;
                        w.flush()?;
                    }
                    return Ok(());
                }
            },
            recv(stop_rx) -> _ => return Ok(()),
            recv(hangup_check) -> _ => {
                if peer_closed(w.get_ref()) {
                    return Ok(());
                }
            }
        }
    }
}

/// The status line and headers of a streamed answer. Go's gateway streams never announce
/// `Connection: close`: their headers go out before the handler returns.
fn stream_head(out: &mut Vec<u8>, version: (u8, u8), status: u16, headers: Vec<(&'static str, String)>) {
    status_line(out, version, status);
    for (k, v) in sorted_headers(headers) {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    let _ = write!(out, "Date: {}\r\nTransfer-Encoding: chunked\r\n\r\n", http_date());
}

/// Go's response buffer before chunking: a write that does not fit goes out as a chunk of its own.
const GO_CHUNK_BUFFER: usize = 2048;

/// One stream message (JSON and its newline) as the chunks Go's gateway sends it in: one chunk,
/// or, when the JSON alone fills Go's 2 KiB buffer, the JSON and then the newline.
fn message_chunks(out: &mut Vec<u8>, message: &[u8]) {
    let split = message.len() > GO_CHUNK_BUFFER && message.ends_with(b"\n");
    let parts: [&[u8]; 2] = if split { [&message[..message.len() - 1], b"\n"] } else { [message, b""] };
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let _ = write!(out, "{:x}\r\n", part.len());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether the client has closed its end (a read would return end-of-file).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

/// A `text/plain` answer like Go's `http.Error` (used for 404, 405 and malformed requests).
pub fn plain(status: u16, msg: &str) -> Response {
    Response::Full {
        status,
        headers: vec![
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: format!("{msg}\n").into_bytes(),
    }
}

fn write_plain(w: &mut impl Write, version: (u8, u8), status: u16, msg: &str, close: bool) -> io::Result<()> {
    write_response(w, version, plain(status, msg), close)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the requests in `input` the way a connection does, given it `step` bytes at a time.
    fn requests_arriving_in_steps(input: &[u8], step: usize) -> Vec<(String, Vec<u8>, bool)> {
        let (mut buffered, mut head, mut requests, mut continues) = (Vec::new(), None, Vec::new(), 0);
        for piece in input.chunks(step) {
            buffered.extend_from_slice(piece);
            loop {
                match parse(&buffered, &mut head) {
                    Parsed::Complete { head, body, len } => {
                        buffered.drain(..len);
                        requests.push((head.path, body, head.close));
                    }
                    Parsed::Incomplete { continue_wanted } => {
                        continues += usize::from(continue_wanted);
                        break;
                    }
                    Parsed::Bad { status, msg, .. } => panic!("{status} {msg}"),
                }
            }
        }
        assert!(buffered.is_empty(), "{buffered:?}");
        // `100 Continue` once, while the body is awaited; not at all if it came with the head.
        assert_eq!(continues, usize::from(step < input.len()), "step {step}");
        requests
    }

    #[test]
    fn requests_split_anywhere_parse_the_same() {
        let input = b"\r\nPOST /a?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
            POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n\
            3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n\
            GET /c HTTP/1.0\r\n\r\n";
        let expected = vec![
            ("/a".to_string(), b"hello".to_vec(), false),
            ("/b".to_string(), b"abcde".to_vec(), false),
            ("/c".to_string(), Vec::new(), true),
        ];
        for step in [1, 2, 3, 7, 16, input.len()] {
            assert_eq!(requests_arriving_in_steps(input, step), expected, "step {step}");
        }
    }

    #[test]
    fn malformed_or_oversize_requests_are_refused() {
        let refused = |input: &[u8]| match parse(input, &mut None) {
            Parsed::Bad { status, .. } => status,
            _ => 0,
        };
        assert_eq!(refused(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(refused(b"\x01\x02 / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", BODY_MAX + 1).as_bytes()), 413);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(HEAD_MAX + 10, b'a');
        assert_eq!(refused(&huge), 431);
    }

    #[test]
    fn the_fuzz_corpus_parses() {
        let parsed: usize = crate::jsonpb::tests::corpus("http1").iter().map(|input| parse_stream(input).0.len()).sum();
        assert!(parsed > 0, "some corpus input is a whole request");
    }

    #[test]
    fn dates_look_like_gos() {
        let d = http_date();
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }
}
