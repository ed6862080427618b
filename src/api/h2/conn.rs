//! One HTTP/2 connection as its server sees it, without I/O: bytes in, [`Event`]s and bytes
//! out. Runs on the event loop that owns the socket.
//!
//! Streams are the client's (odd ids, increasing); the server pushes nothing. A unary
//! request's body is gathered until the client ends its side, then handed on whole; its
//! answer is written as HEADERS, DATA as the peer's windows allow, and trailers. A stream the
//! client resets while its handler works stays in the table (and counts against the
//! concurrency limit) until the handler answers, so opening and resetting streams quickly (the
//! "rapid reset" attack) cannot start more work than the limit.
//!
//! A streaming call ([`Settings::streams`] says which) is handed on at its headers
//! ([`Event::Open`]); its DATA follows frame by frame ([`Event::Data`]) and its answer comes
//! as [`Part`]s, queued until the windows allow. Its streams leave the table when either
//! side ends them; [`Connection::take_closed`] tells the caller which, so it can drop their
//! sessions (a reset watch stream must stop its watchers).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN, INITIAL_WINDOW, WINDOW_MAX};
use super::hpack::{self, DecodeError, Fields};
use super::stream::{Outbox, Outgoing, Part};

/// Streams open at once per connection (announced as SETTINGS_MAX_CONCURRENT_STREAMS).
pub const STREAMS_MAX: usize = 1024;
/// Each stream's receive window, and the connection's: a 1.5 MiB put needs no round trip
/// for credit.
pub const RECV_WINDOW: i64 = 4 << 20;
/// Most bytes of decoded headers per block (SETTINGS_MAX_HEADER_LIST_SIZE).
pub const HEADER_LIST_MAX: usize = 64 * 1024;
/// Most bytes of one header block across its CONTINUATION frames: a block that never ends
/// must not grow without bound.
const HEADER_BLOCK_MAX: usize = 4 * HEADER_LIST_MAX;
/// Largest request body gathered by default ([`Settings::body_max`]); past it the stream is
/// reset.
pub const BODY_MAX: usize = 8 << 20;

/// What the server's handler decides about each of its connections.
#[derive(Clone, Copy)]
pub struct Settings {
    /// Whether a path is a streaming call: its data is handed over as it comes
    /// ([`Event::Open`], [`Event::Data`]) rather than gathered into one request.
    pub streams: fn(&str) -> bool,
    /// The least time between a client's pings while it has streams open (etcd's
    /// `--grpc-keepalive-min-time`); clients that ping more often are sent away.
    pub ping_min_time: Duration,
    /// The largest unary request body gathered; past it the stream is reset.
    pub body_max: usize,
    /// After this long with nothing read, the server pings the client (etcd's
    /// `--grpc-keepalive-interval`)...
    pub keepalive_time: Duration,
    /// ...and closes the connection if still nothing is read this long after the ping
    /// (`--grpc-keepalive-timeout`): a client gone without a FIN must not hold its watches.
    pub keepalive_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            streams: |_| false,
            ping_min_time: Duration::from_secs(5),
            body_max: BODY_MAX,
            keepalive_time: KEEPALIVE_TIME,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
        }
    }
}
/// grpc-go's server keepalive defaults, which etcd's flags default to (and which grpc-go
/// uses when etcd leaves either flag at 0).
pub const KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 3600);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pings sooner than the policy allows that a connection may send (grpc-go's
/// `maxPingStrikes`); one more gets GOAWAY `ENHANCE_YOUR_CALM` "too_many_pings".
const PING_STRIKES_MAX: u32 = 2;
/// Without a stream open, pings closer together than this are strikes (grpc-go's
/// `defaultPingTimeout`, for `PermitWithoutStream = false` as etcd sets it).
const IDLE_PING_MIN: Duration = Duration::from_secs(2 * 3600);
/// Stream ids remembered as closed, to tell a frame on a closed stream (STREAM_CLOSED) from
/// one on a stream that never opened (PROTOCOL_ERROR).
const CLOSED_REMEMBERED: usize = 256;

/// A complete request.
pub struct Request {
    pub stream: u32,
    pub method: String,
    pub path: String,
    /// The regular header fields, names in lower case as HTTP/2 requires.
    pub fields: Fields,
    pub body: Vec<u8>,
    /// The common name of the client's verified TLS certificate, set by the event loop
    /// (etcd takes it as the user with `--client-cert-auth`).
    pub common_name: Option<String>,
}

impl Request {
    /// The value of the header field `name` (lower case), if present and UTF-8.
    pub fn field(&self, name: &str) -> Option<&str> {
        let (_, value) = self.fields.iter().find(|(n, _)| n == name.as_bytes())?;
        std::str::from_utf8(value).ok()
    }
}

/// What the server answers on a stream.
pub enum Response {
    /// Headers (`:status` first), a body (no DATA frame if empty) and trailers (none: the
    /// headers end the stream when the body is empty too).
    Full { headers: Vec<(&'static str, String)>, body: Vec<u8>, trailers: Vec<(&'static str, String)> },
    /// The stream is reset instead (the request was not one the server takes).
    Reset(Reason),
}

pub enum Event {
    /// A unary request, its body complete.
    Request(Request),
    /// A streaming call's headers (its body empty); answer it through `outbox`.
    Open(Request, Arc<Outbox>),
    /// A DATA frame's payload of a streaming call; `end`: the client ended its side.
    Data { stream: u32, data: Vec<u8>, end: bool },
    /// The client reset a unary stream whose request was handed on; its answer will be dropped.
    Reset(u32),
}

enum State {
    /// Receiving the request.
    Open { method: String, path: String, fields: Fields, body: Vec<u8>, recv_window: i64, credit: i64 },
    /// The request was handed on; waiting for its answer.
    Waiting,
    /// Reset by the client while waiting: the answer will be dropped when it comes.
    Cancelled,
    /// Writing the answer as the windows allow.
    Sending { body: Vec<u8>, sent: usize, trailers: Vec<(&'static str, String)> },
    /// A streaming call: the client's side (`None` once it ended) and the answer so far.
    Streaming { recv: Option<Recv>, send: Outgoing },
}

/// A stream's receive window and the credit consumed and not yet returned.
struct Recv {
    window: i64,
    credit: i64,
}

struct Stream {
    state: State,
    send_window: i64,
}

/// A header block being received across CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    self_dependent: bool,
    bytes: Vec<u8>,
}

/// A connection error: GOAWAY with this reason, then close.
struct ConnError(Reason, &'static str);

type Handled = Result<(), ConnError>;

pub struct Connection {
    decoder: hpack::Decoder,
    streams: BTreeMap<u32, Stream>,
    closed: VecDeque<u32>,
    /// The highest stream id the client opened.
    last_stream: u32,
    block: Option<Block>,
    /// The peer's SETTINGS so far: none yet means the preface is not complete.
    peer_settings_seen: bool,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    /// Connection credit consumed and not yet returned in a WINDOW_UPDATE.
    credit: i64,
    out: Vec<u8>,
    /// A GOAWAY was sent: no new stream is taken.
    draining: bool,
    /// A connection error was sent: nothing more is read; close once written.
    failed: bool,
    /// Streaming calls that left the table since [`Connection::take_closed`].
    closed_streams: Vec<u32>,
    settings: Settings,
    last_ping: Option<Instant>,
    ping_strikes: u32,
    /// Headers or data went out since the last ping: the next ping is no strike (grpc-go's
    /// `resetPingStrikes`; clients' BDP pings follow data they received).
    ping_strikes_reset: bool,
    /// When a frame was last read: the keepalive's measure of a live client.
    last_read: Instant,
    /// When our keepalive PING went out, while nothing has been read since.
    keepalive_sent: Option<Instant>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for stream in self.streams.values() {
            if let State::Streaming { send, .. } = &stream.state {
                send.outbox.close();
            }
        }
    }
}

impl Connection {
    /// A connection whose preface was read; our SETTINGS (and the connection window's growth)
    /// are the first bytes out, as grpc-go's client requires.
    pub fn new(settings: Settings) -> Connection {
        let mut out = Vec::new();
        frame::settings(
            &mut out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, STREAMS_MAX as u32),
                (setting::INITIAL_WINDOW_SIZE, RECV_WINDOW as u32),
                (setting::MAX_FRAME_SIZE, frame::MAX_FRAME_SIZE_DEFAULT as u32),
                (setting::MAX_HEADER_LIST_SIZE, HEADER_LIST_MAX as u32),
            ],
        );
        frame::window_update(&mut out, 0, (RECV_WINDOW - INITIAL_WINDOW) as u32);
        Connection {
            decoder: hpack::Decoder::new(HEADER_LIST_MAX),
            streams: BTreeMap::new(),
            closed: VecDeque::new(),
            last_stream: 0,
            block: None,
            peer_settings_seen: false,
            peer_initial_window: INITIAL_WINDOW,
            peer_max_frame: frame::MAX_FRAME_SIZE_DEFAULT,
            send_window: INITIAL_WINDOW,
            recv_window: RECV_WINDOW,
            credit: 0,
            out,
            draining: false,
            failed: false,
            closed_streams: Vec::new(),
            settings,
            last_ping: None,
            ping_strikes: 0,
            ping_strikes_reset: false,
            last_read: Instant::now(),
            keepalive_sent: None,
        }
    }

    /// grpc-go's server keepalive: a PING after [`Settings::keepalive_time`] with nothing read,
    /// and `false` (close the connection, as grpc-go does, without a GOAWAY) when nothing has
    /// been read for [`Settings::keepalive_timeout`] after it. Called about once a second.
    pub fn keepalive(&mut self, now: Instant) -> bool {
        if let Some(sent) = self.keepalive_sent {
            if self.last_read <= sent {
                return now < sent + self.settings.keepalive_timeout;
            }
            self.keepalive_sent = None;
        }
        if !self.failed && now >= self.last_read + self.settings.keepalive_time {
            frame::write(&mut self.out, kind::PING, 0, 0, &[0; 8]);
            self.keepalive_sent = Some(now);
        }
        true
    }

    /// The streaming calls that ended since the last call (by either side, or a stream error).
    pub fn take_closed(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.closed_streams)
    }

    /// Bytes are waiting to be taken.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes to write, taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// A connection error was sent: close once the output is written.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Draining and nothing left in flight.
    pub fn finished(&self) -> bool {
        self.draining && self.streams.is_empty()
    }

    /// No stream in flight.
    pub fn idle(&self) -> bool {
        self.streams.is_empty()
    }

    /// Streams whose answer this connection still waits for or writes.
    pub fn in_flight(&self) -> usize {
        self.streams.len()
    }

    /// Whether unary stream `id` was handed on and still waits for its answer (neither
    /// answered nor reset by the client).
    pub fn awaits_answer(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| matches!(s.state, State::Waiting))
    }

    /// Stops taking streams (GOAWAY with the last stream id, NO_ERROR); those in flight finish.
    pub fn go_away(&mut self) {
        if !self.draining && !self.failed {
            self.draining = true;
            frame::goaway(&mut self.out, self.last_stream, Reason::NoError, b"");
        }
    }

    /// Handles every complete frame at the front of `input` (taking them out of it), pushing
    /// the requests that completed, the streaming calls' data and the streams the client
    /// reset.
    pub fn receive(&mut self, input: &mut Vec<u8>, events: &mut Vec<Event>) {
        let mut at = 0;
        while !self.failed {
            let Some(head) = Head::parse(&input[at..]) else { break };
            if head.len > frame::MAX_FRAME_SIZE_DEFAULT {
                self.fail(ConnError(Reason::FrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE"));
                break;
            }
            let end = at + HEADER_LEN + head.len;
            if input.len() < end {
                break;
            }
            if let Err(e) = self.on_frame(head, &input[at + HEADER_LEN..end], events) {
                self.fail(e);
            }
            at = end;
        }
        if at > 0 {
            // Whole frames only, as grpc-go counts a read: a frame's dribbled bytes are no sign
            // of a live client.
            self.last_read = Instant::now();
        }
        if self.failed {
            input.clear();
        } else {
            input.drain(..at);
        }
    }

    fn fail(&mut self, ConnError(reason, why): ConnError) {
        log::debug!("h2: connection error {reason:?}: {why}");
        frame::goaway(&mut self.out, self.last_stream, reason, why.as_bytes());
        self.failed = true;
    }

    fn on_frame(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Handled {
        if !self.peer_settings_seen && (head.kind != kind::SETTINGS || head.has(flag::ACK)) {
            return Err(ConnError(Reason::ProtocolError, "the preface must be followed by SETTINGS"));
        }
        if self.block.is_some() && head.kind != kind::CONTINUATION {
            return Err(ConnError(Reason::ProtocolError, "a header block was interrupted"));
        }
        match head.kind {
            kind::DATA => self.on_data(head, payload, events),
            kind::HEADERS => self.on_headers(head, payload, events),
            kind::PRIORITY => self.on_priority(head, payload),
            kind::RST_STREAM => self.on_rst_stream(head, payload, events),
            kind::SETTINGS => self.on_settings(head, payload),
            kind::PUSH_PROMISE => Err(ConnError(Reason::ProtocolError, "a client may not push")),
            kind::PING => self.on_ping(head, payload),
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err(ConnError(Reason::ProtocolError, "GOAWAY on a stream"));
                }
                // The client leaves: its streams finish and it closes the connection.
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(head, payload),
            kind::CONTINUATION => self.on_continuation(head, payload, events),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    /// Whether `id`, not in the table, was a stream (closed) or never opened (idle).
    fn is_idle(&self, id: u32) -> bool {
        id > self.last_stream
    }

    fn close(&mut self, id: u32) {
        if let Some(Stream { state: State::Streaming { send, .. }, .. }) = self.streams.remove(&id) {
            send.outbox.close();
            self.closed_streams.push(id);
        }
        if self.closed.len() == CLOSED_REMEMBERED {
            self.closed.pop_front();
        }
        self.closed.push_back(id);
    }

    /// A stream error: RST_STREAM; a stream still waiting for its answer is kept until then.
    fn reset(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, id, reason);
        match self.streams.get_mut(&id) {
            Some(stream) if matches!(stream.state, State::Waiting | State::Cancelled) => {
                stream.state = State::Cancelled
            }
            _ => self.close(id),
        }
    }

    fn on_data(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Handled {
        if head.stream == 0 {
            return Err(ConnError(Reason::ProtocolError, "DATA on stream 0"));
        }
        let len = payload.len() as i64;
        self.recv_window -= len;
        if self.recv_window < 0 {
            return Err(ConnError(Reason::FlowControlError, "DATA beyond the connection window"));
        }
        self.return_credit(len);
        let data = frame::unpad(&head, payload).ok_or(ConnError(Reason::ProtocolError, "bad padding"))?;
        let id = head.stream;
        let Some(stream) = self.streams.get_mut(&id) else {
            if self.is_idle(id) {
                return Err(ConnError(Reason::ProtocolError, "DATA on an idle stream"));
            }
            frame::rst_stream(&mut self.out, id, Reason::StreamClosed);
            return Ok(());
        };
        let end_stream = head.has(flag::END_STREAM);
        let (body, recv_window, credit) = match &mut stream.state {
            State::Open { body, recv_window, credit, .. } => (Some(body), recv_window, credit),
            State::Streaming { recv: Some(recv), .. } => (None, &mut recv.window, &mut recv.credit),
            _ => {
                self.reset(id, Reason::StreamClosed);
                return Ok(());
            }
        };
        *recv_window -= len;
        if *recv_window < 0 {
            self.reset(id, Reason::FlowControlError);
            return Ok(());
        }
        let Some(body) = body else {
            // A streaming call's data goes on at once; its handler bounds what it keeps.
            events.push(Event::Data { stream: id, data: data.to_vec(), end: end_stream });
            if end_stream {
                if let State::Streaming { recv, .. } = &mut stream.state {
                    *recv = None;
                }
            } else {
                Self::return_stream_credit(&mut self.out, id, recv_window, credit, len);
            }
            return Ok(());
        };
        if body.len() + data.len() > self.settings.body_max {
            log::debug!("h2: a request body passed {} bytes; resetting its stream", self.settings.body_max);
            self.reset(id, Reason::EnhanceYourCalm);
            return Ok(());
        }
        body.extend_from_slice(data);
        if end_stream {
            return self.complete(id, events);
        }
        Self::return_stream_credit(&mut self.out, id, recv_window, credit, len);
        Ok(())
    }

    /// Returns a stream's credit in batches of half its window.
    fn return_stream_credit(out: &mut Vec<u8>, id: u32, window: &mut i64, credit: &mut i64, len: i64) {
        *credit += len;
        if *credit >= RECV_WINDOW / 2 {
            let increment = std::mem::take(credit);
            *window += increment;
            frame::window_update(out, id, increment as u32);
        }
    }

    /// Returns connection credit in batches of half the window.
    fn return_credit(&mut self, len: i64) {
        self.credit += len;
        if self.credit >= RECV_WINDOW / 2 {
            let increment = std::mem::take(&mut self.credit);
            self.recv_window += increment;
            frame::window_update(&mut self.out, 0, increment as u32);
        }
    }

    fn on_headers(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Handled {
        if head.stream == 0 {
            return Err(ConnError(Reason::ProtocolError, "HEADERS on stream 0"));
        }
        let mut fragment = frame::unpad(&head, payload).ok_or(ConnError(Reason::ProtocolError, "bad padding"))?;
        let mut self_dependent = false;
        if head.has(flag::PRIORITY) {
            if fragment.len() < 5 {
                return Err(ConnError(Reason::FrameSizeError, "HEADERS too short for its priority"));
            }
            self_dependent = frame::u32_at(fragment) & 0x7fff_ffff == head.stream;
            fragment = &fragment[5..];
        }
        let block = Block {
            stream: head.stream,
            end_stream: head.has(flag::END_STREAM),
            self_dependent,
            bytes: fragment.to_vec(),
        };
        if head.has(flag::END_HEADERS) {
            return self.on_block(block, events);
        }
        self.block = Some(block);
        Ok(())
    }

    fn on_continuation(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Handled {
        let Some(mut block) = self.block.take() else {
            return Err(ConnError(Reason::ProtocolError, "CONTINUATION without HEADERS"));
        };
        if head.stream != block.stream {
            return Err(ConnError(Reason::ProtocolError, "CONTINUATION on another stream"));
        }
        if block.bytes.len() + payload.len() > HEADER_BLOCK_MAX {
            return Err(ConnError(Reason::EnhanceYourCalm, "header block too large"));
        }
        block.bytes.extend_from_slice(payload);
        if head.has(flag::END_HEADERS) {
            return self.on_block(block, events);
        }
        self.block = Some(block);
        Ok(())
    }

    /// A complete header block: a new request, or the trailers that end one.
    fn on_block(&mut self, block: Block, events: &mut Vec<Event>) -> Handled {
        let decoded = match self.decoder.decode(&block.bytes) {
            Ok(fields) => Ok(fields),
            Err(DecodeError::Compression) => return Err(ConnError(Reason::CompressionError, "bad HPACK")),
            Err(DecodeError::TooLarge) => Err(()),
        };
        let id = block.stream;
        if let Some(stream) = self.streams.get_mut(&id) {
            // Trailers: they must end the stream; what they say is not used.
            let receiving = match &stream.state {
                State::Open { .. } => true,
                State::Streaming { recv, .. } => recv.is_some(),
                _ => false,
            };
            if !receiving {
                self.reset(id, Reason::StreamClosed);
            } else if !block.end_stream || decoded.is_err() {
                self.reset(id, Reason::ProtocolError);
            } else if let State::Streaming { recv, .. } = &mut stream.state {
                *recv = None;
                events.push(Event::Data { stream: id, data: Vec::new(), end: true });
            } else {
                self.complete(id, events)?;
            }
            return Ok(());
        }
        if id.is_multiple_of(2) {
            return Err(ConnError(Reason::ProtocolError, "a client stream id must be odd"));
        }
        if !self.is_idle(id) {
            if self.closed.contains(&id) {
                return Err(ConnError(Reason::StreamClosed, "HEADERS on a closed stream"));
            }
            return Err(ConnError(Reason::ProtocolError, "stream ids must increase"));
        }
        self.last_stream = id;
        if self.draining || self.streams.len() >= STREAMS_MAX {
            frame::rst_stream(&mut self.out, id, Reason::RefusedStream);
            self.close(id);
            return Ok(());
        }
        let request = decoded.ok().and_then(|fields| request_head(fields).ok());
        let Some((method, path, fields)) = request.filter(|_| !block.self_dependent) else {
            frame::rst_stream(&mut self.out, id, Reason::ProtocolError);
            self.close(id);
            return Ok(());
        };
        if (self.settings.streams)(&path) {
            let send = Outgoing::default();
            let outbox = send.outbox.clone();
            let recv = (!block.end_stream).then_some(Recv { window: RECV_WINDOW, credit: 0 });
            let state = State::Streaming { recv, send };
            self.streams.insert(id, Stream { state, send_window: self.peer_initial_window });
            let req = Request { stream: id, method, path, fields, body: Vec::new(), common_name: None };
            events.push(Event::Open(req, outbox));
            if block.end_stream {
                events.push(Event::Data { stream: id, data: Vec::new(), end: true });
            }
            return Ok(());
        }
        let state = State::Open { method, path, fields, body: Vec::new(), recv_window: RECV_WINDOW, credit: 0 };
        self.streams.insert(id, Stream { state, send_window: self.peer_initial_window });
        if block.end_stream {
            self.complete(id, events)?;
        }
        Ok(())
    }

    /// The client ended its side: the request goes to the handler.
    fn complete(&mut self, id: u32, events: &mut Vec<Event>) -> Handled {
        let Some(stream) = self.streams.get_mut(&id) else { return Ok(()) };
        let State::Open { method, path, fields, body, .. } = std::mem::replace(&mut stream.state, State::Waiting)
        else {
            return Ok(());
        };
        let length = fields.iter().find(|(n, _)| n == b"content-length").map(|(_, v)| v.clone());
        if length.is_some_and(|l| l != body.len().to_string().as_bytes()) {
            frame::rst_stream(&mut self.out, id, Reason::ProtocolError);
            self.close(id);
            return Ok(());
        }
        events.push(Event::Request(Request { stream: id, method, path, fields, body, common_name: None }));
        Ok(())
    }

    fn on_priority(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream == 0 {
            return Err(ConnError(Reason::ProtocolError, "PRIORITY on stream 0"));
        }
        if payload.len() != 5 {
            frame::rst_stream(&mut self.out, head.stream, Reason::FrameSizeError);
            return Ok(());
        }
        if frame::u32_at(payload) & 0x7fff_ffff == head.stream {
            self.reset(head.stream, Reason::ProtocolError);
        }
        Ok(())
    }

    fn on_rst_stream(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Handled {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FrameSizeError, "RST_STREAM of the wrong length"));
        }
        if head.stream == 0 || self.is_idle(head.stream) {
            return Err(ConnError(Reason::ProtocolError, "RST_STREAM on an idle stream"));
        }
        match self.streams.get_mut(&head.stream) {
            Some(stream) if matches!(stream.state, State::Waiting) => {
                stream.state = State::Cancelled;
                events.push(Event::Reset(head.stream));
            }
            Some(stream) if matches!(stream.state, State::Cancelled) => {}
            Some(_) => self.close(head.stream),
            None => {}
        }
        Ok(())
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream != 0 {
            return Err(ConnError(Reason::ProtocolError, "SETTINGS on a stream"));
        }
        if head.has(flag::ACK) {
            if !payload.is_empty() {
                return Err(ConnError(Reason::FrameSizeError, "SETTINGS ACK with a payload"));
            }
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(ConnError(Reason::FrameSizeError, "SETTINGS of the wrong length"));
        }
        for entry in payload.chunks_exact(6) {
            let (id, value) = (u16::from_be_bytes([entry[0], entry[1]]), frame::u32_at(&entry[2..]));
            match id {
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(ConnError(Reason::ProtocolError, "ENABLE_PUSH must be 0 or 1"))
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > WINDOW_MAX {
                        return Err(ConnError(Reason::FlowControlError, "INITIAL_WINDOW_SIZE too large"));
                    }
                    // Every open stream's window moves by the change (RFC 9113 §6.9.2).
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > WINDOW_MAX {
                            return Err(ConnError(Reason::FlowControlError, "a stream window passed 2^31-1"));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::MAX_FRAME_SIZE_DEFAULT as u32..=frame::MAX_FRAME_SIZE_LIMIT).contains(&value) {
                        return Err(ConnError(Reason::ProtocolError, "MAX_FRAME_SIZE out of range"));
                    }
                    self.peer_max_frame = value as usize;
                }
                // The table size only bounds an encoder that indexes, and ours never does;
                // we push nothing; unknown settings are ignored.
                _ => {}
            }
        }
        self.peer_settings_seen = true;
        frame::write(&mut self.out, kind::SETTINGS, flag::ACK, 0, &[]);
        self.flush_all();
        Ok(())
    }

    fn on_ping(&mut self, head: Head, payload: &[u8]) -> Handled {
        if payload.len() != 8 {
            return Err(ConnError(Reason::FrameSizeError, "PING of the wrong length"));
        }
        if head.stream != 0 {
            return Err(ConnError(Reason::ProtocolError, "PING on a stream"));
        }
        if head.has(flag::ACK) {
            return Ok(());
        }
        frame::write(&mut self.out, kind::PING, flag::ACK, 0, payload);
        self.police_ping(Instant::now())
    }

    /// grpc-go's server keepalive enforcement, as etcd configures it: a ping sooner than
    /// `ping_min_time` after the previous one (or than two hours with no stream open) is a
    /// strike unless we sent headers or data since; the third strike ends the connection.
    fn police_ping(&mut self, now: Instant) -> Handled {
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.ping_strikes_reset) {
            self.ping_strikes = 0;
            return Ok(());
        }
        let min = if self.streams.is_empty() { IDLE_PING_MIN } else { self.settings.ping_min_time };
        if last.is_some_and(|last| now < last + min) {
            self.ping_strikes += 1;
        }
        if self.ping_strikes > PING_STRIKES_MAX {
            return Err(ConnError(Reason::EnhanceYourCalm, "too_many_pings"));
        }
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Handled {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FrameSizeError, "WINDOW_UPDATE of the wrong length"));
        }
        let increment = i64::from(frame::u32_at(payload) & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(ConnError(Reason::ProtocolError, "WINDOW_UPDATE of 0"));
            }
            self.send_window += increment;
            if self.send_window > WINDOW_MAX {
                return Err(ConnError(Reason::FlowControlError, "the connection window passed 2^31-1"));
            }
            self.flush_all();
            return Ok(());
        }
        if self.is_idle(head.stream) {
            return Err(ConnError(Reason::ProtocolError, "WINDOW_UPDATE on an idle stream"));
        }
        if increment == 0 {
            self.reset(head.stream, Reason::ProtocolError);
            return Ok(());
        }
        let Some(stream) = self.streams.get_mut(&head.stream) else { return Ok(()) };
        stream.send_window += increment;
        if stream.send_window > WINDOW_MAX {
            self.reset(head.stream, Reason::FlowControlError);
            return Ok(());
        }
        self.flush(head.stream);
        Ok(())
    }

    /// Writes the answer to stream `id`, as far as the windows allow; the rest follows as
    /// the client returns credit. An answer to a stream that is gone is dropped.
    pub fn respond(&mut self, id: u32, response: Response) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        if !matches!(stream.state, State::Waiting) {
            if matches!(stream.state, State::Cancelled) {
                self.close(id);
            }
            return;
        }
        let (headers, body, trailers) = match response {
            Response::Full { headers, body, trailers } => (headers, body, trailers),
            Response::Reset(reason) => {
                frame::rst_stream(&mut self.out, id, reason);
                self.close(id);
                return;
            }
        };
        let end = body.is_empty() && trailers.is_empty();
        self.write_headers(id, &headers, end);
        if end {
            self.close(id);
            return;
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.state = State::Sending { body, sent: 0, trailers };
        }
        self.flush(id);
    }

    /// Takes the next part of streaming call `id`'s answer; a part for a stream that is gone
    /// is dropped.
    pub fn send(&mut self, id: u32, part: Part) {
        let Some(Stream { state: State::Streaming { send, .. }, .. }) = self.streams.get_mut(&id) else { return };
        match part {
            Part::Headers(fields) => send.head = fields,
            Part::Message(message) => send.queue.push_back(message),
            Part::Trailers(fields) => send.trailers = Some(fields),
            Part::Reset(reason) => {
                frame::rst_stream(&mut self.out, id, reason);
                self.close(id);
                return;
            }
        }
        self.flush(id);
    }

    fn write_headers(&mut self, id: u32, fields: &[(&'static str, String)], end_stream: bool) {
        self.ping_strikes_reset = true;
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut block = Vec::new();
        hpack::encode(&mut block, &fields);
        let end = if end_stream { flag::END_STREAM } else { 0 };
        let mut chunks = block.chunks(self.peer_max_frame).enumerate().peekable();
        while let Some((i, chunk)) = chunks.next() {
            let last = if chunks.peek().is_none() { flag::END_HEADERS } else { 0 };
            let (kind, flags) = if i == 0 { (kind::HEADERS, end | last) } else { (kind::CONTINUATION, last) };
            frame::write(&mut self.out, kind, flags, id, chunk);
        }
    }

    fn flush_all(&mut self) {
        let sending: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| match &s.state {
                State::Sending { .. } => true,
                State::Streaming { send, .. } => send.has_pending(),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in sending {
            if self.send_window <= 0 {
                return;
            }
            self.flush(id);
        }
    }

    /// Sends what the windows allow of stream `id`'s answer, and its trailers after the body.
    fn flush(&mut self, id: u32) {
        let max_frame = self.peer_max_frame;
        let Some(stream) = self.streams.get_mut(&id) else { return };
        if matches!(stream.state, State::Streaming { .. }) {
            return self.flush_streaming(id);
        }
        let State::Sending { body, sent, trailers } = &mut stream.state else { return };
        while *sent < body.len() {
            let room = stream.send_window.min(self.send_window).min(max_frame as i64);
            if room <= 0 {
                return;
            }
            let n = (body.len() - *sent).min(room as usize);
            let last = *sent + n == body.len() && trailers.is_empty();
            frame::write(
                &mut self.out,
                kind::DATA,
                if last { flag::END_STREAM } else { 0 },
                id,
                &body[*sent..*sent + n],
            );
            *sent += n;
            self.ping_strikes_reset = true;
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
        }
        let trailers = std::mem::take(trailers);
        if !trailers.is_empty() {
            self.write_headers(id, &trailers, true);
        }
        self.close(id);
    }

    /// Sends a streaming call's headers (with its first message), the messages the windows
    /// allow, and the trailers once nothing is queued before them.
    fn flush_streaming(&mut self, id: u32) {
        let max_frame = self.peer_max_frame as i64;
        let Some(Stream { state: State::Streaming { send, .. }, .. }) = self.streams.get_mut(&id) else { return };
        if !send.head_sent && send.has_pending() {
            send.head_sent = true;
            let head = std::mem::take(&mut send.head);
            if send.queue.is_empty() {
                // Trailers only: one HEADERS frame ends the stream.
                let mut fields = head;
                fields.extend(send.trailers.take().unwrap_or_default());
                self.write_headers(id, &fields, true);
                return self.close(id);
            }
            self.write_headers(id, &head, false);
        }
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let State::Streaming { send, .. } = &mut stream.state else { return };
        while let Some(front) = send.queue.front() {
            let room = stream.send_window.min(self.send_window).min(max_frame);
            if room <= 0 {
                return;
            }
            let n = (front.len() - send.sent).min(room as usize);
            frame::write(&mut self.out, kind::DATA, 0, id, &front[send.sent..send.sent + n]);
            self.ping_strikes_reset = true;
            send.sent += n;
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
            if send.sent == front.len() {
                send.pop_front();
            }
        }
        if let Some(trailers) = send.trailers.take() {
            self.write_headers(id, &trailers, true);
            self.close(id);
        }
    }
}

/// The pseudo-header fields of a request and its regular fields, checked as RFC 9113 §8.2-8.3
/// asks: pseudo fields first, each known one once, the required ones present, names in lower
/// case, no connection-specific fields.
fn request_head(fields: Fields) -> Result<(String, String, Fields), ()> {
    let (mut method, mut path, mut scheme) = (None, None, false);
    let mut regular = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if let Some(pseudo) = name.strip_prefix(b":") {
            if !regular.is_empty() {
                return Err(());
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"path" => &mut path,
                b"scheme" if !scheme => {
                    scheme = true;
                    continue;
                }
                b"authority" => continue,
                _ => return Err(()),
            };
            if slot.is_some() {
                return Err(());
            }
            *slot = Some(String::from_utf8(value).map_err(|_| ())?);
            continue;
        }
        let valid = !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase());
        let connection_specific = matches!(
            &name[..],
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
        );
        if !valid || connection_specific || (name == b"te" && value != b"trailers") {
            return Err(());
        }
        regular.push((name, value));
    }
    match (method, path) {
        (Some(method), Some(path)) if scheme && !path.is_empty() => Ok((method, path, regular)),
        _ => Err(()),
    }
}
