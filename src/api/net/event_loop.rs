//! One epoll event loop (`raftkv-httpio-N`): its connections, their requests (in order on an
//! HTTP/1.1 connection, side by side on an HTTP/2 one), the answers posted back to it, and
//! the deadlines of requests in flight. On a TLS port every connection's handshake and
//! records run here too (see `socket.rs`), bounded by the handshake timeout.

use super::socket::Socket;
use super::*;
use crate::api::h2::frame::PREFACE;
use crate::api::http1::parse::{parse, Head, Parsed};
use crate::api::http1::write::{write_plain, write_response, write_stream};

/// One event loop: its epoll set, its connections, and the answers it waits for.
pub(super) struct EventLoop {
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
    /// Deadlines of requests that had an [`Expiry`]: (when, conn, generation, HTTP/2 stream or
    /// 0). An entry stays
    /// until its deadline even if answered (a heap cannot remove it), so this holds about
    /// request rate × timeout entries: at 25k puts/s and the default 7 s, 175k entries, 6 MiB.
    expiries: BinaryHeap<Reverse<(Instant, usize, u64, u32)>>,
    /// Read buffer shared by this loop's connections; bytes are copied out to the connection.
    scratch: Vec<u8>,
    /// HTTP/2 connections answered since their output was last written: a burst of answers
    /// (a thousand streams after one fsync) costs one write per connection, not per stream.
    h2_dirty: Vec<usize>,
    handlers: Handlers,
    pool: Arc<Pool>,
    streams: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stopping: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
    /// The port's TLS, if it is a TLS port: each connection gets a session from it.
    tls: Option<Arc<ServerTls>>,
}

struct Conn {
    socket: Socket,
    /// Where the client is, for the log line of a refused handshake.
    peer: Option<std::net::SocketAddr>,
    /// When a TLS handshake still under way is given up.
    handshake_by: Option<Instant>,
    /// The client certificate's common name, read once after the handshake, for the
    /// HTTP/2 requests (gRPC, where etcd takes it as the user).
    common_name: Option<Option<String>>,
    /// Bytes read and not yet parsed into a request.
    input: Vec<u8>,
    /// The head of the request being received, once complete.
    head: Option<Head>,
    /// Bytes answered and not yet written, from `written` on.
    output: Vec<u8>,
    written: usize,
    /// The request in flight or last answered (see `EventLoop::generations`), so a late
    /// answer to an expired one is recognised. An HTTP/2 connection keeps one for its life,
    /// its streams telling its requests apart.
    generation: u64,
    /// Set once the connection opened with HTTP/2's preface.
    h2: Option<Box<h2::Connection>>,
    /// The [`Expiry`] of each HTTP/2 stream that has one.
    h2_expiries: HashMap<u32, Expiry<h2::Response>>,
    /// The sessions of the HTTP/2 streaming calls in progress.
    h2_sessions: HashMap<u32, Box<dyn h2::Session>>,
    /// The cancels of the HTTP/2 streams whose calls wait (see [`Done::cancel`]): dropped
    /// when the stream is answered or reset, or with the connection.
    h2_cancels: HashMap<u32, CancelTx>,
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
    /// The handler has the request. A waiting call's `cancel` is dropped when the request is
    /// answered or expires, or when the client closes its side.
    Waiting {
        version: (u8, u8),
        close: bool,
        echo_close: bool,
        expiry: Option<Expiry<http1::Response>>,
        cancel: Option<CancelTx>,
    },
}

impl EventLoop {
    /// Loop `index` of a server; loop 0 gets the listener and accepts for all.
    pub(super) fn new(
        poll: Poll,
        mut listener: Option<mio::net::TcpListener>,
        index: usize,
        shared: Shared,
    ) -> io::Result<EventLoop> {
        if let Some(listener) = &mut listener {
            poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        let Shared { mailboxes, handlers, pool, streams, stopping, stop_rx, tls } = shared;
        Ok(EventLoop {
            poll,
            listener,
            accept_retry: None,
            mailbox: mailboxes[index].clone(),
            mailboxes,
            next_loop: 0,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            generations: 0,
            expiries: BinaryHeap::new(),
            scratch: vec![0; 64 * 1024],
            h2_dirty: Vec::new(),
            handlers,
            pool,
            streams,
            stopping,
            stop_rx,
            tls,
        })
    }

    pub(super) fn run(mut self) {
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
        if let Some(Reverse((at, _, _, _))) = self.expiries.peek() {
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
        // HTTP/2 ones are told (GOAWAY) and end when their streams have.
        for i in 0..self.conns.len() {
            if let Some(conn) = self.conns[i].as_mut().filter(|c| c.h2.is_some()) {
                if let Some(h2) = conn.h2.as_mut() {
                    h2.go_away();
                }
                // Streams never end on their own: their sessions end them (their last parts
                // arrive through the post box like any other).
                for session in conn.h2_sessions.values_mut() {
                    unpanicked(|| session.stop());
                }
                // Waiting calls give up now (`server stopped`) rather than at the grace's end.
                for (_, cancel) in conn.h2_cancels.drain() {
                    cancel.stop();
                }
                self.flush_h2(i);
                continue;
            }
            if let Some(State::Waiting { cancel, .. }) = self.conns[i].as_mut().map(|c| &mut c.state) {
                if let Some(cancel) = cancel.take() {
                    cancel.stop();
                }
            }
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
        let peer = stream.peer_addr().ok();
        let (socket, handshake_by) = match &self.tls {
            None => (Socket::Plain(stream), None),
            Some(tls) => match tls.accept() {
                Ok(session) => {
                    let by = Instant::now() + tls.handshake_timeout();
                    (Socket::Tls { tcp: stream, session: Box::new(session) }, Some(by))
                }
                Err(e) => {
                    log::warn!("http: {e}; closing a new connection");
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.free.push(slot);
                    return;
                }
            },
        };
        self.conns[slot] = Some(Conn {
            socket,
            peer,
            handshake_by,
            common_name: None,
            input: Vec::new(),
            head: None,
            output: Vec::new(),
            written: 0,
            generation: 0,
            h2: None,
            h2_expiries: HashMap::new(),
            h2_sessions: HashMap::new(),
            h2_cancels: HashMap::new(),
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
            conn.socket.close_notify();
            let _ = self.poll.registry().deregister(conn.socket.tcp());
            self.free.push(i);
            self.live -= 1;
        }
    }

    /// Reads what the socket has. epoll is edge-triggered, so that means until it would block,
    /// except that a read shorter than the buffer already emptied the socket: anything arriving
    /// after it raises a new event. (Skipping the `EAGAIN` read saves a syscall per request.)
    /// A peer's end of input may have come with the event being handled, so `to_end` reads
    /// until it is seen.
    /// On a TLS port the records read are decrypted into the connection's input, and what
    /// the session has to answer (handshake messages) is sent; a record rustls refuses (a
    /// failed handshake, plaintext, garbage) closes the connection with one log line.
    fn read(&mut self, i: usize, to_end: bool) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        while !conn.eof {
            if conn.input.len() >= READ_BUFFER_MAX {
                conn.paused = true;
                break;
            }
            match conn.socket.read(&mut self.scratch, &mut conn.input) {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    conn.last_active = Instant::now();
                    if n < self.scratch.len() && !to_end {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // etcd's `HandshakeFailure` log line; the alert rustls queued goes out first.
                    let peer = conn.peer.map_or_else(String::new, |p| p.to_string());
                    log::warn!("http: rejected connection from {peer:?} (error {:?})", e.to_string());
                    let _ = conn.socket.flush();
                    return self.close(i);
                }
                Err(_) => conn.eof = true,
            }
        }
        if conn.handshake_by.is_some() && !conn.socket.handshaking() {
            conn.handshake_by = None;
        }
        // Handshake messages (or a TLS 1.3 key update) owed to the client.
        if let Socket::Tls { .. } = conn.socket {
            self.write(i);
        }
    }

    /// Writes what is owed (until the socket would block); closes the connection when it is
    /// done with or broken.
    fn write(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        while conn.written < conn.output.len() {
            match conn.socket.write(&conn.output[conn.written..]) {
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
        // TLS records not yet on the socket: the next writable event sends them.
        match conn.socket.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::debug!("http: write failed: {e}");
                return self.close(i);
            }
        }
        if conn.closing && matches!(conn.state, State::Reading) {
            self.close(i);
        }
    }

    /// Takes the next request of connection `i` if it is between requests and has written
    /// everything it owes (so pipelined requests are answered in order, one at a time).
    fn advance(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        if conn.h2.is_some() {
            return self.advance_h2(i);
        }
        // A client that closed its side while its call waits has left, as Go's server takes
        // it (its background read cancels the request's context at EOF).
        if let State::Waiting { cancel, .. } = &mut conn.state {
            if conn.eof {
                drop(cancel.take());
            }
        }
        if !matches!(conn.state, State::Reading) || conn.written < conn.output.len() || conn.closing {
            return;
        }
        // A connection's first bytes choose its protocol: HTTP/2 with prior knowledge (what
        // gRPC clients send) opens with the preface, anything else is HTTP/1.1.
        if conn.generation == 0 {
            let n = conn.input.len().min(PREFACE.len());
            if conn.input[..n] == PREFACE[..n] && n == PREFACE.len() {
                conn.input.drain(..PREFACE.len());
                self.generations += 1;
                conn.generation = self.generations;
                conn.h2 = Some(Box::new(h2::Connection::new(self.handlers.h2.settings())));
                return self.advance_h2(i);
            }
            if conn.input[..n] == PREFACE[..n] && !conn.eof && n > 0 {
                return;
            }
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
                    cancel: None,
                };
                let to = To { conn: i, generation, stream: 0 };
                let done = Done::new(self.mailbox.clone(), to, self.pool.clone());
                let req = http1::Request {
                    method: head.method,
                    path: head.path,
                    query: head.query,
                    authorization: head.authorization,
                    body,
                };
                let handler = &self.handlers.http1;
                if let Some(expiry) = unpanicked(|| handler.handle(req, done)).flatten() {
                    self.expiries.push(Reverse((expiry.at, i, generation, 0)));
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
                Post::Http1 { to, answer } => self.answer(to.conn, to.generation, answer),
                Post::H2 { to, answer } => self.answer_h2(to, answer),
                Post::H2Part { to, part } => self.send_h2(to, part),
                Post::Cancel { to, tx } => self.hold_cancel(to, tx),
            }
        }
        self.flush_dirty();
    }

    /// Keeps a waiting call's cancel while its request is in flight; a request that ended
    /// meanwhile (or a client already gone) drops it at once, which cancels the call.
    fn hold_cancel(&mut self, to: To, tx: CancelTx) {
        if self.stopping.load(Ordering::Acquire) {
            return tx.stop();
        }
        let Some(conn) = self.conns.get_mut(to.conn).and_then(Option::as_mut) else { return };
        if conn.generation != to.generation || conn.eof {
            return;
        }
        if to.stream != 0 {
            if conn.h2.as_ref().is_some_and(|h2| h2.awaits_answer(to.stream)) {
                conn.h2_cancels.insert(to.stream, tx);
            }
            return;
        }
        if let State::Waiting { cancel, .. } = &mut conn.state {
            *cancel = Some(tx);
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.h2_dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for i in dirty {
            self.flush_h2(i);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, i, generation, stream))) = self.expiries.peek().copied() {
            if at > now {
                break;
            }
            self.expiries.pop();
            if stream != 0 {
                let expiry = match self.conns.get_mut(i).and_then(Option::as_mut) {
                    Some(conn) if conn.generation == generation => conn.h2_expiries.remove(&stream),
                    _ => None,
                };
                if let Some(expiry) = expiry {
                    self.answer_h2(To { conn: i, generation, stream }, Answer::Later(expiry.answer));
                }
                continue;
            }
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
        self.flush_dirty();
    }

    /// Writes the answer to connection `i`'s request `generation`, unless that request was
    /// answered already (expired) or the connection is gone.
    fn answer(&mut self, i: usize, generation: u64, answer: Answer<http1::Response>) {
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
        if let http1::Response::Stream { status, headers, messages, on_close } = response {
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
        let _ = self.poll.registry().deregister(conn.socket.tcp());
        self.free.push(i);
        self.live -= 1;
        let unwritten = conn.output.split_off(conn.written);
        let stop_rx = self.stop_rx.clone();
        // Records a TLS session still holds go out with the stream's first write.
        let socket = conn.socket;
        let spawned = crate::thread::spawn_named("raftkv-stream", move || {
            let outcome = socket.into_blocking().and_then(|stream| {
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

    /// Feeds connection `i`'s input to its HTTP/2 state machine and starts the requests that
    /// completed.
    fn advance_h2(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let Some(h2) = conn.h2.as_mut() else { return };
        let common_name = conn.common_name.get_or_insert_with(|| conn.socket.peer_common_name()).clone();
        let mut events = Vec::new();
        let handler = self.handlers.h2.clone();
        h2.receive(&mut conn.input, &mut events);
        let generation = conn.generation;
        for event in events {
            let (stream, done) = match event {
                h2::Event::Request(mut req) => {
                    req.common_name = common_name.clone();
                    let stream = req.stream;
                    let done = Done::new(self.mailbox.clone(), To { conn: i, generation, stream }, self.pool.clone());
                    (stream, unpanicked(|| handler.handle(req, done)).flatten())
                }
                h2::Event::Open(mut req, outbox) => {
                    req.common_name = common_name.clone();
                    let stream = req.stream;
                    let to = To { conn: i, generation, stream };
                    let tx = StreamTx::new(self.mailbox.clone(), to, outbox, self.pool.clone());
                    match unpanicked(|| handler.open(req, tx)) {
                        Some(Some(session)) => {
                            if let Some(conn) = self.conns[i].as_mut() {
                                conn.h2_sessions.insert(stream, session);
                            }
                        }
                        Some(None) => {}
                        None => self.send_h2(to, h2::Part::Reset(h2::Reason::InternalError)),
                    }
                    continue;
                }
                h2::Event::Data { stream, data, end } => {
                    let Some(conn) = self.conns[i].as_mut() else { return };
                    let fed = conn.h2_sessions.get_mut(&stream).map(|session| unpanicked(|| session.data(&data, end)));
                    if fed == Some(None) {
                        self.send_h2(To { conn: i, generation, stream }, h2::Part::Reset(h2::Reason::InternalError));
                    }
                    continue;
                }
                // A reset stream's work goes on, unless it waits (its cancel fires); its answer
                // is dropped when it comes.
                h2::Event::Reset(stream) => {
                    if let Some(conn) = self.conns[i].as_mut() {
                        conn.h2_cancels.remove(&stream);
                    }
                    continue;
                }
            };
            if let Some(expiry) = done {
                self.expiries.push(Reverse((expiry.at, i, generation, stream)));
                if let Some(conn) = self.conns[i].as_mut() {
                    conn.h2_expiries.insert(stream, expiry);
                }
            }
        }
        if let Some(conn) = self.conns[i].as_mut().filter(|c| c.paused) {
            conn.paused = false;
            self.read(i, false);
        }
        self.flush_h2(i);
    }

    /// Writes the answer to an HTTP/2 stream, unless it was answered already (expired) or its
    /// connection is gone. A handler that panicked or gave up resets its stream only.
    fn answer_h2(&mut self, to: To, answer: Answer<h2::Response>) {
        let Some(conn) = self.conns.get_mut(to.conn).and_then(Option::as_mut) else { return };
        if conn.generation != to.generation || conn.h2.is_none() {
            return;
        }
        conn.h2_expiries.remove(&to.stream);
        conn.h2_cancels.remove(&to.stream);
        let response = match answer {
            Answer::Ready(response) => response,
            Answer::Later(answer) => unpanicked(answer).unwrap_or(h2::Response::Reset(h2::Reason::InternalError)),
            Answer::Abandoned => h2::Response::Reset(h2::Reason::InternalError),
        };
        let Some(h2) = self.conns[to.conn].as_mut().and_then(|c| c.h2.as_mut()) else { return };
        h2.respond(to.stream, response);
        self.h2_dirty.push(to.conn);
    }

    /// Hands the next part of a streaming call's answer to its connection.
    fn send_h2(&mut self, to: To, part: h2::Part) {
        let Some(conn) = self.conns.get_mut(to.conn).and_then(Option::as_mut) else { return };
        if conn.generation != to.generation {
            return;
        }
        let Some(h2) = conn.h2.as_mut() else { return };
        h2.send(to.stream, part);
        self.h2_dirty.push(to.conn);
    }

    /// Moves what HTTP/2 wrote to the connection's output and writes it, and drops the
    /// sessions of the streams that ended; a connection that failed, or drained at stop,
    /// closes once written.
    fn flush_h2(&mut self, i: usize) {
        let stopping = self.stopping.load(Ordering::Acquire);
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let Some(h2) = conn.h2.as_mut() else { return };
        for stream in h2.take_closed() {
            // Dropping a session stops its work (a watch stream's watchers).
            if let Some(session) = conn.h2_sessions.remove(&stream) {
                unpanicked(move || drop(session));
            }
        }
        conn.output.extend_from_slice(&h2.take_output());
        // A client that closed its side is gone (gRPC clients never half-close), as Go's
        // server treats it: its streams, a watch's above all, end with the connection.
        if h2.failed() || h2.finished() || conn.eof || (stopping && h2.idle()) {
            conn.closing = true;
        }
        conn.last_active = Instant::now();
        self.write(i);
    }

    fn close_idle(&mut self, now: Instant) {
        for conn in self.conns.iter_mut().flatten() {
            for session in conn.h2_sessions.values_mut() {
                unpanicked(|| session.tick());
            }
        }
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_mut() else { continue };
            let Some(h2) = conn.h2.as_mut() else { continue };
            if !h2.keepalive(now) {
                let peer = conn.peer.map_or_else(String::new, |p| p.to_string());
                log::info!("http: closing connection from {peer:?}: no answer to a keepalive ping");
                self.close(i);
            } else if h2.has_output() {
                // Not through `flush_h2`: our ping is no activity of the client's.
                conn.output.extend_from_slice(&h2.take_output());
                self.write(i);
            }
        }
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_ref() else { continue };
            if conn.handshake_by.is_some_and(|by| by <= now) {
                let peer = conn.peer.map_or_else(String::new, |p| p.to_string());
                log::warn!("http: rejected connection from {peer:?} (error \"TLS handshake timeout\")");
                self.close(i);
            }
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i].as_ref().is_some_and(|c| {
                matches!(c.state, State::Reading)
                    && c.h2.as_ref().is_none_or(|h2| h2.idle())
                    && now.duration_since(c.last_active) >= IDLE_MAX
            });
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
