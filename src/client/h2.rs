//! HTTP/2 with prior knowledge from the client's side: one [`Connection`] carries many streams
//! at once, opened from any number of threads (`raftkv::Client`'s gRPC transport, raftkvctl).
//! Blocking, no runtime, over the same frames and HPACK decoder as the server; requests'
//! headers are written as the server writes its own (literals never indexed), so no encoder
//! table is kept.
//!
//! Threads: callers write their own frames under the connection's writer lock; one
//! `raftkv-h2c-read` thread per connection reads every frame, answers what the connection asks
//! of a client (SETTINGS and PING acks), hands each stream's headers and data to its
//! [`StreamEvents`] channel (bounded by flow control: the reader gives a window back only for
//! data it has handed over, and each stream's queue is bounded by its window, see
//! `STREAM_WINDOW`), and marks the connection broken when the socket or the peer fails, which
//! ends every open stream with [`Event::Closed`]. Dropping the last [`Connection`] handle shuts
//! the socket down, which ends the reader.
//!
//! Flow control: the send side honours the peer's connection and stream windows (a sender
//! waits for WINDOW_UPDATE) and its INITIAL_WINDOW_SIZE changes; the receive side announces a
//! 1 MiB stream window and a 16 MiB connection window and returns them as data is delivered.
//!
//! TLS (`https://` endpoints): the handshake runs in [`Connection::connect`], offering ALPN
//! `h2`; then the reader and the writers share the session through [`crate::tls::Stream`]
//! handles (the writer lock is taken before the session's, never the other way round).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam::channel::RecvTimeoutError;
use parking_lot::{Condvar, Mutex};

use crate::api::h2::frame::{self, flag, kind, setting, Head, Reason};
pub use crate::api::h2::hpack::Fields;
use crate::api::h2::hpack::{self, Decoder};
use crate::tls::{ClientTls, Stream};

/// Largest header block (headers or trailers) read, before and after decoding.
const HEADERS_MAX: usize = 64 << 10;
/// The receive window each stream announces: what one stream may have in flight to us.
const STREAM_WINDOW: u32 = 1 << 20;
/// The connection's receive window: what all streams together may have in flight.
const CONNECTION_WINDOW: u32 = 16 << 20;
/// Largest frame we accept: the default, which we never raise.
const FRAME_MAX: usize = frame::MAX_FRAME_SIZE_DEFAULT;
/// The reader's buffer: four of the largest frames.
const READ_BUFFER: usize = 4 * FRAME_MAX;

/// What the reader hands a stream.
#[derive(Debug)]
pub enum Event {
    /// A header block (the response headers, then possibly the trailers); `true` if it ended
    /// the stream.
    Headers(Fields, bool),
    /// Body bytes; `true` if they ended the stream.
    Data(Vec<u8>, bool),
    /// The peer reset the stream with this error code.
    Reset(u32),
    /// The connection failed or went away: no more events will come.
    Closed(String),
}

/// One stream's events, from the reader thread to the stream's owner, in order; bounded by
/// flow control (see [`Connection::open`]).
///
/// A mutex and a condvar rather than a crossbeam channel: an owner waiting for its answer
/// parks at once, where crossbeam's receive first backs off and yields its core up to four
/// times. Under `raftkvctl bench`'s 64 callers on 2 cores that was four `sched_yield` per
/// call, the client's most frequent syscall.
pub struct StreamEvents(Arc<Queue>);

/// The reader's end of a [`StreamEvents`]; dropping it (the stream forgotten) tells the owner
/// nothing more will come.
struct EventSender(Arc<Queue>);

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    events: VecDeque<Event>,
    sender_gone: bool,
}

fn stream_events() -> (EventSender, StreamEvents) {
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState { events: VecDeque::new(), sender_gone: false }),
        ready: Condvar::new(),
    });
    (EventSender(queue.clone()), StreamEvents(queue))
}

impl EventSender {
    fn send(&self, event: Event) {
        self.0.state.lock().events.push_back(event);
        self.0.ready.notify_one();
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        self.0.state.lock().sender_gone = true;
        self.0.ready.notify_one();
    }
}

impl StreamEvents {
    /// The next event, waiting until `deadline`; `Disconnected` once the stream was forgotten
    /// and everything before that taken.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Event, RecvTimeoutError> {
        let mut state = self.0.state.lock();
        loop {
            if let Some(event) = state.events.pop_front() {
                return Ok(event);
            }
            if state.sender_gone {
                return Err(RecvTimeoutError::Disconnected);
            }
            if self.0.ready.wait_until(&mut state, deadline).timed_out()
                && state.events.is_empty()
                && !state.sender_gone
            {
                return Err(RecvTimeoutError::Timeout);
            }
        }
    }

    /// Takes every event waiting now.
    fn take_all(&self) -> VecDeque<Event> {
        std::mem::take(&mut self.0.state.lock().events)
    }
}

/// One client connection, shared by every stream on it.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    /// Shuts the socket when the last handle goes.
    _closer: Arc<Closer>,
}

struct Closer(Stream);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct Shared {
    addr: String,
    writer: Mutex<Writer>,
    /// Signalled when send windows grow or the connection breaks.
    window: Condvar,
    streams: Mutex<HashMap<u32, EventSender>>,
    /// When the reader last read a frame: what the keepalive looks at (kept only with one).
    heard: Option<Mutex<Instant>>,
}

/// grpc-go's client keepalive (clientv3's `DialKeepAliveTime` and `DialKeepAliveTimeout`,
/// etcdctl's `--keepalive-time` and `--keepalive-timeout`): while streams are open and nothing
/// has been read for `time`, a PING; if nothing is read within `timeout` after it, the
/// connection is taken as dead and closed, so its calls fail over instead of waiting on a
/// peer that vanished without a FIN (a paused or cut-off member).
#[derive(Clone, Copy, Debug)]
pub struct Keepalive {
    pub time: Duration,
    pub timeout: Duration,
}

struct Writer {
    out: Stream,
    next_stream: u32,
    /// Why the connection can take no new stream (broken, or the peer's GOAWAY), if so.
    broken: Option<String>,
    connection_window: i64,
    stream_windows: HashMap<u32, i64>,
    /// The peer's SETTINGS_INITIAL_WINDOW_SIZE: each new stream's send window.
    initial_window: i64,
    frame_max: usize,
    /// Receive window taken by the streams' owners and not yet given back to the peer, for
    /// the connection and for each open stream: given back in one WINDOW_UPDATE once a
    /// quarter of the window (grpc-go's threshold), not one per DATA frame.
    connection_unacked: u32,
    stream_unacked: HashMap<u32, u32>,
}

impl Writer {
    /// Frames into `out` one DATA frame of as much of `data` as stream `id`'s window, the
    /// connection's and the frame size allow, and takes it from both windows; returns what is
    /// left. `end` ends the stream with the frame that takes the last byte. Empty `data` is one
    /// empty frame (how a side is ended alone); no room for a non-empty one frames nothing.
    fn frame_data<'a>(&mut self, out: &mut Vec<u8>, id: u32, data: &'a [u8], end: bool) -> &'a [u8] {
        let stream_window = self.stream_windows.get_mut(&id).expect("an open stream has a window");
        let room = (*stream_window).min(self.connection_window).max(0) as usize;
        let (now, later) = data.split_at(data.len().min(room).min(self.frame_max));
        if now.is_empty() && !data.is_empty() {
            return later;
        }
        *stream_window -= now.len() as i64;
        self.connection_window -= now.len() as i64;
        frame::write(out, kind::DATA, if end && later.is_empty() { flag::END_STREAM } else { 0 }, id, now);
        later
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) within `timeout`, over TLS when `tls` is given (the
    /// handshake within `timeout` too), and sends the preface and our settings.
    pub fn connect(
        addr: &str,
        timeout: Duration,
        tls: Option<&ClientTls>,
        keepalive: Option<Keepalive>,
    ) -> io::Result<Connection> {
        let tcp = dial(addr, timeout)?;
        let socket = match tls {
            Some(tls) => {
                tcp.set_read_timeout(Some(timeout))?;
                tls.connect(tcp, addr)?
            }
            None => Stream::plain(tcp),
        };
        let mut hello = frame::PREFACE.to_vec();
        frame::settings(&mut hello, &[(setting::ENABLE_PUSH, 0), (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW)]);
        frame::window_update(&mut hello, 0, CONNECTION_WINDOW - frame::INITIAL_WINDOW as u32);
        (&socket).write_all(&hello)?;
        let reader = socket.try_clone()?;
        reader.tcp().set_read_timeout(None)?;
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            writer: Mutex::new(Writer {
                out: socket.try_clone()?,
                next_stream: 1,
                broken: None,
                connection_window: frame::INITIAL_WINDOW,
                stream_windows: HashMap::new(),
                initial_window: frame::INITIAL_WINDOW,
                frame_max: frame::MAX_FRAME_SIZE_DEFAULT,
                connection_unacked: 0,
                stream_unacked: HashMap::new(),
            }),
            window: Condvar::new(),
            streams: Mutex::new(HashMap::new()),
            heard: keepalive.map(|_| Mutex::new(Instant::now())),
        });
        let for_reader = shared.clone();
        crate::thread::spawn_named("raftkv-h2c-read", move || {
            let why =
                for_reader.read_loop(reader).err().map_or_else(|| "connection closed".to_string(), |e| e.to_string());
            for_reader.break_all(&why);
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(keepalive) = keepalive {
            let (weak, socket) = (Arc::downgrade(&shared), socket.try_clone()?);
            crate::thread::spawn_named("raftkv-h2c-ping", move || keep_alive(&weak, &socket, keepalive))
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(Connection { shared, _closer: Arc::new(Closer(socket)) })
    }

    /// Why the connection takes no new streams, if it does not.
    pub fn broken(&self) -> Option<String> {
        self.shared.writer.lock().broken.clone()
    }

    /// Opens a stream with `headers` (pseudo-headers first) and sends `body` on it (waiting
    /// until `deadline` for send window, as [`Connection::send`]); `end` ends our side after
    /// it. A body that fits the windows and a frame goes out in the same write as the headers:
    /// a unary call is one write. On an error the request never reached the peer whole: its
    /// end is its last byte.
    pub fn open(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
        end: bool,
        deadline: Instant,
    ) -> io::Result<(u32, StreamEvents)> {
        let mut block = Vec::new();
        hpack::encode(&mut block, headers);
        // Bounded by flow control: the peer sends a stream at most its window (1 MiB) before we
        // give any back, and we give back only what the stream's owner took.
        let (tx, rx) = stream_events();
        let mut w = self.shared.writer.lock();
        if let Some(why) = &w.broken {
            return Err(io::Error::new(io::ErrorKind::NotConnected, why.clone()));
        }
        let id = w.next_stream;
        if id > 0x7fff_ffff - 2 {
            w.broken = Some("stream ids exhausted".into());
            return Err(io::Error::new(io::ErrorKind::NotConnected, "stream ids exhausted"));
        }
        w.next_stream += 2;
        let window = w.initial_window;
        w.stream_windows.insert(id, window);
        self.shared.streams.lock().insert(id, tx);
        let mut out = Vec::with_capacity(block.len() + body.len() + 3 * frame::HEADER_LEN);
        let flags = if end && body.is_empty() { flag::END_STREAM } else { 0 };
        // One HEADERS frame, or HEADERS then CONTINUATION for a block past the frame size.
        let mut chunks = block.chunks(w.frame_max).peekable();
        let first = chunks.next().unwrap_or_default();
        let more = chunks.peek().is_some();
        frame::write(&mut out, kind::HEADERS, flags | if more { 0 } else { flag::END_HEADERS }, id, first);
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            frame::write(&mut out, kind::CONTINUATION, if last { flag::END_HEADERS } else { 0 }, id, chunk);
        }
        let later = if body.is_empty() { body } else { w.frame_data(&mut out, id, body, end) };
        if let Err(e) = w.out.write_all(&out) {
            w.broken = Some(e.to_string());
            drop(w);
            self.shared.forget(id);
            return Err(e);
        }
        drop(w);
        if !later.is_empty() {
            if let Err(e) = self.send(id, later, end, deadline) {
                self.shared.forget(id);
                return Err(e);
            }
        }
        Ok((id, rx))
    }

    /// Sends `data` on stream `id`, waiting (until `deadline`) for send window as needed; `end`
    /// ends our side of the stream.
    pub fn send(&self, id: u32, data: &[u8], end: bool, deadline: Instant) -> io::Result<()> {
        let mut rest = data;
        loop {
            let mut w = self.shared.writer.lock();
            loop {
                if let Some(why) = &w.broken {
                    return Err(io::Error::new(io::ErrorKind::NotConnected, why.clone()));
                }
                let Some(&stream_window) = w.stream_windows.get(&id) else {
                    return Err(io::Error::new(io::ErrorKind::NotConnected, "stream closed"));
                };
                if rest.is_empty() || stream_window.min(w.connection_window) > 0 {
                    break;
                }
                if self.shared.window.wait_until(&mut w, deadline).timed_out() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no send window before the deadline"));
                }
            }
            let mut out = Vec::with_capacity(frame::HEADER_LEN + rest.len().min(w.frame_max));
            let after = w.frame_data(&mut out, id, rest, end);
            if let Err(e) = w.out.write_all(&out) {
                w.broken = Some(e.to_string());
                return Err(e);
            }
            if after.is_empty() {
                return Ok(());
            }
            rest = after;
        }
    }

    /// Gives `n` bytes of receive window back on stream `id` and the connection: the owner of
    /// a stream calls it once it has taken data off the stream's channel.
    /// Never more than a quarter of a window stays unreturned, so a peer always has window
    /// left for what the owners have not taken yet.
    pub fn consumed(&self, id: u32, n: usize) {
        if n == 0 {
            return;
        }
        let open = self.shared.streams.lock().contains_key(&id);
        let mut w = self.shared.writer.lock();
        let mut out = Vec::new();
        w.connection_unacked += n as u32;
        if w.connection_unacked >= CONNECTION_WINDOW / 4 {
            frame::window_update(&mut out, 0, std::mem::take(&mut w.connection_unacked));
        }
        // A stream that ended needs no window back; a stream still open gets its own.
        if open {
            let unacked = w.stream_unacked.entry(id).or_default();
            *unacked += n as u32;
            if *unacked >= STREAM_WINDOW / 4 {
                let increment = std::mem::take(unacked);
                frame::window_update(&mut out, id, increment);
            }
        }
        if !out.is_empty() && w.broken.is_none() {
            if let Err(e) = w.out.write_all(&out) {
                w.broken = Some(e.to_string());
            }
        }
    }

    /// Closes stream `id` on our side: `reset` (a cancel or a deadline) tells the peer with
    /// RST_STREAM(CANCEL). Nothing more is delivered for it, and the data it was handed but
    /// never took off `events` gives its connection window back, which would otherwise be lost
    /// to every later stream on the connection.
    pub fn close(&self, id: u32, events: &StreamEvents, reset: bool) {
        // Forgotten first: the reader then gives back the window of anything arriving later.
        self.shared.forget(id);
        let mut out = Vec::new();
        if reset {
            frame::rst_stream(&mut out, id, Reason::Cancel);
        }
        let untaken: usize =
            events.take_all().into_iter().map(|e| if let Event::Data(bytes, _) = e { bytes.len() } else { 0 }).sum();
        if untaken > 0 {
            frame::window_update(&mut out, 0, untaken as u32);
        }
        let mut w = self.shared.writer.lock();
        if !out.is_empty() && w.broken.is_none() {
            if let Err(e) = w.out.write_all(&out) {
                w.broken = Some(e.to_string());
            }
        }
    }

    pub fn addr(&self) -> &str {
        &self.shared.addr
    }
}

impl Shared {
    /// When the reader last read a frame (only a keepalive asks, and only it keeps the time).
    fn last_heard(&self) -> Instant {
        self.heard.as_ref().map_or_else(Instant::now, |heard| *heard.lock())
    }

    fn forget(&self, id: u32) {
        self.streams.lock().remove(&id);
        let mut w = self.writer.lock();
        w.stream_windows.remove(&id);
        w.stream_unacked.remove(&id);
    }

    /// Ends every stream: the connection is gone.
    fn break_all(&self, why: &str) {
        {
            let mut w = self.writer.lock();
            w.broken.get_or_insert_with(|| why.to_string());
            w.stream_windows.clear();
            w.stream_unacked.clear();
        }
        self.window.notify_all();
        for (_, tx) in self.streams.lock().drain() {
            tx.send(Event::Closed(why.to_string()));
        }
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        self.writer.lock().out.write_all(bytes)
    }

    fn deliver(&self, id: u32, event: Event) {
        // Under the map's lock: the queue's own lock is never held while taking the map's.
        if let Some(tx) = self.streams.lock().get(&id) {
            tx.send(event);
        }
    }

    /// Reads frames until the socket or the peer fails.
    fn read_loop(&self, socket: Stream) -> io::Result<()> {
        // A call's answer is three frames (HEADERS, DATA, trailers): buffered, one read takes
        // them all, and every answer that arrived meanwhile, instead of two reads a frame.
        let mut socket = io::BufReader::with_capacity(READ_BUFFER, socket);
        let mut decoder = Decoder::new(HEADERS_MAX);
        // A header block in progress: its stream, whether it ends the stream, its bytes.
        let mut block: Option<(u32, bool, Vec<u8>)> = None;
        loop {
            let (head, payload) = read_frame(&mut socket)?;
            if let Some(heard) = &self.heard {
                *heard.lock() = Instant::now();
            }
            if let Some((stream, _, _)) = &block {
                if head.kind != kind::CONTINUATION || head.stream != *stream {
                    return Err(protocol("a header block interrupted by another frame"));
                }
            }
            match head.kind {
                kind::SETTINGS if !head.has(flag::ACK) => {
                    self.apply_settings(&payload)?;
                    let mut ack = Vec::new();
                    frame::write(&mut ack, kind::SETTINGS, flag::ACK, 0, &[]);
                    self.write(&ack)?;
                }
                kind::PING if !head.has(flag::ACK) => {
                    let mut ack = Vec::new();
                    frame::write(&mut ack, kind::PING, flag::ACK, 0, &payload);
                    self.write(&ack)?;
                }
                kind::GOAWAY => {
                    let last = if payload.len() >= 8 { frame::u32_at(&payload) } else { 0 };
                    let debug = String::from_utf8_lossy(payload.get(8..).unwrap_or_default()).into_owned();
                    let why = format!("the server sent GOAWAY ({debug})");
                    self.writer.lock().broken.get_or_insert_with(|| why.clone());
                    // Streams above the last one the server took will never be answered.
                    let mut streams = self.streams.lock();
                    for id in streams.keys().copied().filter(|id| *id > last).collect::<Vec<_>>() {
                        if let Some(tx) = streams.remove(&id) {
                            tx.send(Event::Closed(why.clone()));
                        }
                    }
                }
                kind::WINDOW_UPDATE => {
                    let increment =
                        i64::from(frame::u32_at(payload.get(..4).ok_or_else(|| protocol("short WINDOW_UPDATE"))?));
                    let mut w = self.writer.lock();
                    if head.stream == 0 {
                        w.connection_window += increment;
                    } else if let Some(window) = w.stream_windows.get_mut(&head.stream) {
                        *window += increment;
                    }
                    drop(w);
                    self.window.notify_all();
                }
                kind::RST_STREAM => {
                    let code = frame::u32_at(payload.get(..4).ok_or_else(|| protocol("short RST_STREAM"))?);
                    self.deliver(head.stream, Event::Reset(code));
                    self.forget(head.stream);
                }
                kind::HEADERS | kind::CONTINUATION => {
                    let fragment =
                        if head.kind == kind::HEADERS { headers_fragment(&head, &payload)? } else { &payload };
                    let (stream, ends, mut bytes) =
                        block.take().unwrap_or((head.stream, head.has(flag::END_STREAM), Vec::new()));
                    bytes.extend_from_slice(fragment);
                    if bytes.len() > HEADERS_MAX {
                        return Err(protocol("header block too large"));
                    }
                    if !head.has(flag::END_HEADERS) {
                        block = Some((stream, ends, bytes));
                        continue;
                    }
                    // Decoded even for a stream we abandoned: the HPACK table is the connection's.
                    let fields = decoder.decode(&bytes).map_err(|_| protocol("undecodable header block"))?;
                    self.deliver(stream, Event::Headers(fields, ends));
                }
                kind::DATA => {
                    let data = frame::unpad(&head, &payload).ok_or_else(|| protocol("bad padding"))?;
                    let end = head.has(flag::END_STREAM);
                    let known = self.streams.lock().contains_key(&head.stream);
                    if known {
                        // Padding counts against the window too: give it back at once.
                        let padding = payload.len() - data.len();
                        self.deliver(head.stream, Event::Data(data.to_vec(), end));
                        if padding > 0 {
                            let mut out = Vec::new();
                            frame::window_update(&mut out, 0, padding as u32);
                            self.write(&out)?;
                        }
                    } else if !payload.is_empty() {
                        // An abandoned stream's data: the connection's window must still grow back.
                        let mut out = Vec::new();
                        frame::window_update(&mut out, 0, payload.len() as u32);
                        self.write(&out)?;
                    }
                }
                _ => {}
            }
        }
    }

    fn apply_settings(&self, payload: &[u8]) -> io::Result<()> {
        if !payload.len().is_multiple_of(6) {
            return Err(protocol("SETTINGS of a bad length"));
        }
        let mut w = self.writer.lock();
        for entry in payload.chunks(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = frame::u32_at(&entry[2..]);
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > frame::WINDOW_MAX {
                        return Err(protocol("INITIAL_WINDOW_SIZE past the maximum"));
                    }
                    // RFC 9113 §6.9.2: the change applies to every open stream's window.
                    let delta = i64::from(value) - w.initial_window;
                    w.initial_window = i64::from(value);
                    for window in w.stream_windows.values_mut() {
                        *window += delta;
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::MAX_FRAME_SIZE_DEFAULT as u32..=frame::MAX_FRAME_SIZE_LIMIT).contains(&value) {
                        return Err(protocol("MAX_FRAME_SIZE out of range"));
                    }
                    w.frame_max = value as usize;
                }
                _ => {}
            }
        }
        drop(w);
        self.window.notify_all();
        Ok(())
    }
}

/// The keepalive of one connection, until the connection is dropped or broken.
fn keep_alive(shared: &Weak<Shared>, socket: &Stream, keepalive: Keepalive) {
    loop {
        std::thread::sleep(keepalive.time);
        let Some(conn) = shared.upgrade() else { return };
        if conn.writer.lock().broken.is_some() {
            return;
        }
        // As clientv3 (PermitWithoutStream off): an idle connection is not pinged.
        let sent = Instant::now();
        if conn.streams.lock().is_empty() || sent.duration_since(conn.last_heard()) < keepalive.time {
            continue;
        }
        let mut ping = Vec::with_capacity(frame::HEADER_LEN + 8);
        frame::write(&mut ping, kind::PING, 0, 0, &[0; 8]);
        if conn.write(&ping).is_err() {
            return;
        }
        drop(conn);
        std::thread::sleep(keepalive.timeout);
        let Some(conn) = shared.upgrade() else { return };
        if conn.last_heard() < sent {
            let why = format!("keepalive ping unanswered for {:?}", keepalive.timeout);
            log::warn!("h2c {}: {why}; closing the connection", conn.addr);
            conn.break_all(&why);
            // Ends the reader, blocked on a peer that says nothing; the TCP socket itself, since
            // the blocked reader may hold the TLS session.
            let _ = socket.tcp().shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

fn dial(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::other(format!("{addr}: no address"));
    for socket in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&socket, timeout) {
            Ok(conn) => {
                conn.set_nodelay(true)?;
                conn.set_write_timeout(Some(timeout))?;
                return Ok(conn);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn read_frame(conn: &mut impl Read) -> io::Result<(Head, Vec<u8>)> {
    let mut header = [0u8; frame::HEADER_LEN];
    conn.read_exact(&mut header)?;
    let head = Head::parse(&header).expect("9 bytes");
    if head.len > FRAME_MAX {
        return Err(protocol("a frame larger than we allow"));
    }
    let mut payload = vec![0u8; head.len];
    conn.read_exact(&mut payload)?;
    Ok((head, payload))
}

/// A HEADERS frame's block fragment, without its padding and priority fields.
fn headers_fragment<'a>(head: &Head, payload: &'a [u8]) -> io::Result<&'a [u8]> {
    let unpadded = frame::unpad(head, payload).ok_or_else(|| protocol("bad padding"))?;
    if head.has(flag::PRIORITY) {
        return unpadded.get(5..).ok_or_else(|| protocol("short priority"));
    }
    Ok(unpadded)
}

fn protocol(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_come_in_order_then_closed_once_taken_and_time_out_while_the_stream_lives() {
        let (tx, rx) = stream_events();
        let soon = || Instant::now() + Duration::from_millis(20);
        assert!(matches!(rx.recv_deadline(soon()), Err(RecvTimeoutError::Timeout)));
        tx.send(Event::Data(b"a".to_vec(), false));
        tx.send(Event::Reset(8));
        let waiter = crate::thread::spawn_named("raftkv-test-events", move || {
            let order = (0..3).map(|_| rx.recv_deadline(Instant::now() + Duration::from_secs(10))).collect::<Vec<_>>();
            (order, rx.recv_deadline(Instant::now() + Duration::from_secs(10)))
        })
        .unwrap();
        // The third event wakes a waiter parked on an empty queue.
        std::thread::sleep(Duration::from_millis(50));
        tx.send(Event::Closed("bye".into()));
        drop(tx);
        let (order, after) = waiter.join().unwrap();
        assert!(matches!(order[0], Ok(Event::Data(ref d, false)) if d == b"a"));
        assert!(matches!(order[1], Ok(Event::Reset(8))));
        assert!(matches!(order[2], Ok(Event::Closed(ref why)) if why == "bye"));
        assert!(matches!(after, Err(RecvTimeoutError::Disconnected)));
    }
}
