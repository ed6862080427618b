//! gRPC as a client, framed as grpc-go frames it (length-prefixed messages, `grpc-timeout`,
//! the status in the trailers or in the headers of a trailers-only refusal), over one
//! multiplexed [`Connection`] per endpoint ([`Channel`]): any number of threads make unary
//! calls and hold streams (watch, lease keepalive, snapshot, observe) on it at once.
//! `raftkv::Client`'s gRPC transport and `raftkvctl` are built on it, for raftkv and etcd
//! alike. Blocking, on the caller's thread; the connection's reader thread delivers answers.

use std::time::{Duration, Instant};

use crossbeam::channel;
use parking_lot::Mutex;
use prost::Message;

use super::h2::{Connection, Event, Fields, Keepalive, StreamEvents};
use super::{Error, Result};
use crate::api::grpc::{first_message, framed};
use crate::error::Code;
use crate::service::Method;
use crate::tls::ClientTls;

/// Largest message accepted from a server: etcd's client default (`MaxCallRecvMsgSize`,
/// math.MaxInt32) is unbounded in practice; this keeps a broken server from exhausting memory.
const MESSAGE_MAX: usize = 256 << 20;

/// The connection to one endpoint, made on first use and made again once broken.
pub struct Channel {
    /// `host:port`.
    addr: String,
    dial_timeout: Duration,
    /// TLS for an `https://` endpoint (ALPN `h2`).
    tls: Option<ClientTls>,
    keepalive: Option<Keepalive>,
    conn: Mutex<Option<Connection>>,
    /// The auth token sent as the `token` metadata of every call.
    token: super::Token,
}

impl Channel {
    /// A plaintext channel to `endpoint` (`host:port` or `http://host:port`).
    pub fn new(endpoint: &str, dial_timeout: Duration) -> Channel {
        Channel::with_tls(endpoint, dial_timeout, None, None)
    }

    /// A channel to `endpoint`, over TLS when `tls` is given (`https://` is stripped too),
    /// its connections pinged as `keepalive` says.
    pub fn with_tls(
        endpoint: &str,
        dial_timeout: Duration,
        tls: Option<ClientTls>,
        keepalive: Option<Keepalive>,
    ) -> Channel {
        let addr = endpoint.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
        let tls = tls.map(|t| t.with_alpn(&[b"h2"]));
        Channel {
            addr: addr.to_string(),
            dial_timeout,
            tls,
            keepalive,
            conn: Mutex::new(None),
            token: Default::default(),
        }
    }

    /// The same channel sending the token `token` holds (once it holds one).
    pub(super) fn with_token(mut self, token: super::Token) -> Channel {
        self.token = token;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn unreachable(&self, reason: impl Into<String>) -> Error {
        Error::Unreachable { endpoint: self.addr.clone(), reason: reason.into() }
    }

    fn connection(&self) -> Result<Connection> {
        let mut conn = self.conn.lock();
        if let Some(c) = conn.as_ref().filter(|c| c.broken().is_none()) {
            return Ok(c.clone());
        }
        let c = Connection::connect(&self.addr, self.dial_timeout, self.tls.as_ref(), self.keepalive)
            .map_err(|e| self.unreachable(format!("dial tcp {}: {e}", self.addr)))?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Opens a call of `method` with its first request, if any (`body`, already framed); `end`
    /// when that is the whole of our side.
    fn open(
        &self,
        method: Method,
        timeout: Option<Duration>,
        body: &[u8],
        end: bool,
        deadline: Instant,
    ) -> Result<(Connection, u32, StreamEvents)> {
        let conn = self.connection()?;
        // grpc-go's form: at most 8 digits, in milliseconds (every command timeout up to a day).
        let grpc_timeout = timeout.map(|t| format!("{}m", t.as_millis().clamp(1, 99_999_999)));
        let mut headers = vec![
            (":method", "POST"),
            (":scheme", if self.tls.is_some() { "https" } else { "http" }),
            (":path", method.rpc().grpc),
            (":authority", self.addr.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        if let Some(t) = &grpc_timeout {
            headers.push(("grpc-timeout", t.as_str()));
        }
        let token = self.token.read().clone();
        if let Some(token) = &token {
            headers.push(("token", token.as_str()));
        }
        // A stream the connection refused to open, or whose request did not go out whole, was
        // never seen by the server.
        let (id, events) = conn.open(&headers, body, end, deadline).map_err(|e| self.unreachable(e.to_string()))?;
        Ok((conn, id, events))
    }

    /// Calls `method` with `request` and waits (within `timeout`) for its answer: the server's
    /// refusal is [`Error::Server`], a deadline `DeadlineExceeded` with grpc-go's message, a
    /// broken connection [`Error::Unreachable`]; [`Failed::sent`] says whether the request may
    /// have reached the server.
    pub fn unary<Req: Message, Resp: Message + Default>(
        &self,
        method: Method,
        request: &Req,
        timeout: Duration,
    ) -> std::result::Result<Resp, Failed> {
        self.unary_past_deadline(method, request, timeout, timeout)
    }

    /// As [`Channel::unary`], but waiting `wait` for the answer of a call whose `grpc-timeout`
    /// is `timeout`: how a test sees what a server answers when the deadline it was given
    /// passes (a client's own deadline usually ends the call first, as in grpc-go).
    pub fn unary_past_deadline<Req: Message, Resp: Message + Default>(
        &self,
        method: Method,
        request: &Req,
        timeout: Duration,
        wait: Duration,
    ) -> std::result::Result<Resp, Failed> {
        let deadline = Instant::now() + wait;
        let not_sent = |error| Failed { error, sent: false };
        let body = framed(&request.encode_to_vec());
        let (conn, id, events) = self.open(method, Some(timeout), &body, true, deadline).map_err(not_sent)?;
        let mut call = Call::new(self, conn, id, events);
        self.answer(&mut call, deadline).map_err(|error| Failed { error, sent: true })
    }

    fn answer<Resp: Message + Default>(&self, call: &mut Call<'_>, deadline: Instant) -> Result<Resp> {
        let Some(message) = call.next(deadline)? else {
            return Err(match call.status.take() {
                Some(Err(e)) => e,
                _ => self.unreachable("answer without its message"),
            });
        };
        // The status after the message: an error there wins, as in grpc-go.
        call.finish(deadline)?;
        Resp::decode(&message[..]).map_err(|e| self.unreachable(format!("undecodable answer: {e}")))
    }

    /// Opens a stream of `method` (watch, keepalive, snapshot, observe): send requests with
    /// [`Stream::send`], read answers with [`Stream::recv`].
    pub fn stream(&self, method: Method) -> Result<Stream<'_>> {
        let (conn, id, events) = self.open(method, None, &[], false, Instant::now())?;
        Ok(Stream { call: Call::new(self, conn, id, events) })
    }
}

/// One call's answer as it comes in.
struct Call<'a> {
    channel: &'a Channel,
    conn: Connection,
    id: u32,
    events: StreamEvents,
    /// Body bytes not yet cut into messages.
    pending: Vec<u8>,
    /// The call's end, `Ok` or the server's error, until taken.
    status: Option<Result<()>>,
    /// Whether the stream ended (a status came, or the connection went).
    ended: bool,
    headers_seen: bool,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.conn.close(self.id, &self.events, !self.ended);
    }
}

impl<'a> Call<'a> {
    fn new(channel: &'a Channel, conn: Connection, id: u32, events: StreamEvents) -> Call<'a> {
        Call { channel, conn, id, events, pending: Vec::new(), status: None, ended: false, headers_seen: false }
    }

    fn end(&mut self, status: Result<()>) {
        self.ended = true;
        self.status = Some(status);
    }

    /// The next message, or `None` once the stream ended (its status in `self.status`).
    fn next(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        loop {
            match first_message(&self.pending, MESSAGE_MAX) {
                Ok(Some((message, used))) => {
                    let message = message.to_vec();
                    self.pending.drain(..used);
                    return Ok(Some(message));
                }
                Ok(None) => {}
                Err((code, reason)) => return Err(Error::Server { code, message: reason }),
            }
            if self.ended {
                if matches!(self.status, Some(Ok(()))) && !self.pending.is_empty() {
                    return Err(self.channel.unreachable("the stream ended inside a message"));
                }
                return Ok(None);
            }
            let event = match self.events.recv_deadline(deadline) {
                Ok(event) => event,
                Err(channel::RecvTimeoutError::Timeout) => {
                    return Err(Error::Server {
                        code: Code::DeadlineExceeded,
                        message: "context deadline exceeded".into(),
                    })
                }
                Err(channel::RecvTimeoutError::Disconnected) => Event::Closed("connection closed".into()),
            };
            match event {
                Event::Headers(fields, end) => {
                    let first = !self.headers_seen;
                    self.headers_seen = true;
                    if first {
                        let status = field(&fields, ":status");
                        if status.as_deref() != Some("200") {
                            let refused = self.channel.unreachable(format!("HTTP status {status:?}, not gRPC"));
                            self.end(Err(refused));
                            continue;
                        }
                    }
                    if end || !first {
                        let status = grpc_status(self.channel, &fields);
                        self.end(status);
                    }
                }
                Event::Data(bytes, end) => {
                    self.conn.consumed(self.id, bytes.len());
                    self.pending.extend_from_slice(&bytes);
                    if end {
                        let missing = self.channel.unreachable("the stream ended without a status");
                        self.end(Err(missing));
                    }
                }
                Event::Reset(code) => {
                    let message = format!("stream terminated by RST_STREAM with error code: {code}");
                    self.end(Err(Error::Server { code: Code::Internal, message }));
                }
                Event::Closed(why) => {
                    let closed = self.channel.unreachable(why);
                    self.end(Err(closed));
                }
            }
        }
    }

    /// Reads to the end of the stream: its status (messages after the first are ignored).
    fn finish(&mut self, deadline: Instant) -> Result<()> {
        while !self.ended {
            self.next(deadline)?;
        }
        self.status.take().unwrap_or(Ok(()))
    }
}

/// An open stream: requests go out as they are sent, answers are read as they come.
pub struct Stream<'a> {
    call: Call<'a>,
}

impl Stream<'_> {
    /// Sends one request message; `end` ends our side (no more requests).
    pub fn send<Req: Message>(&mut self, request: &Req, end: bool, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.call
            .conn
            .send(self.call.id, &framed(&request.encode_to_vec()), end, deadline)
            .map_err(|e| self.call.channel.unreachable(e.to_string()))
    }

    /// The next answer (waiting until `deadline`, or forever with `None`); `Ok(None)` once the
    /// server ended the stream with OK, its error if it ended it with one.
    pub fn recv<Resp: Message + Default>(&mut self, deadline: Option<Instant>) -> Result<Option<Resp>> {
        // A far deadline stands for none: a watch waits as long as its owner does.
        let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        match self.call.next(deadline)? {
            Some(message) => Resp::decode(&message[..])
                .map(Some)
                .map_err(|e| self.call.channel.unreachable(format!("undecodable answer: {e}"))),
            None => self.call.status.take().unwrap_or(Ok(())).map(|()| None),
        }
    }
}

fn field(fields: &Fields, name: &str) -> Option<String> {
    fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// The call's outcome from the header block carrying `grpc-status`.
fn grpc_status(channel: &Channel, fields: &Fields) -> Result<()> {
    let code = match field(fields, "grpc-status") {
        Some(code) => {
            code.parse().map(Code::from_u32).map_err(|_| channel.unreachable(format!("grpc-status {code:?}")))?
        }
        None => return Err(channel.unreachable("answer without grpc-status")),
    };
    if code == Code::Ok {
        return Ok(());
    }
    Err(Error::Server { code, message: percent_decode(&field(fields, "grpc-message").unwrap_or_default()) })
}

/// A unary call that failed: why, and whether the request may have reached the server (a
/// call that may have been applied must not be sent again blindly).
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub sent: bool,
}

/// One unary call on a connection of its own (raftkvctl's per-endpoint verbs).
pub fn call<Req: Message, Resp: Message + Default>(
    endpoint: &str,
    method: Method,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    Channel::new(endpoint, timeout).unary(method, request, timeout).map_err(|f| f.error)
}

/// grpc-go's `decodeGrpcMessage`, the inverse of the server's `percent_encode`: `%XX` is the
/// byte XX; a `%` not followed by two hex digits stays as it is.
fn percent_decode(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_decode_as_grpc_go_encodes_them() {
        let message = "etcdserver: 100% ünïcode\n";
        assert_eq!(percent_decode(&crate::api::grpc::percent_encode(message)), message);
        assert_eq!(percent_decode("a%2"), "a%2", "a cut escape stays");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
