//! etcd's gRPC API as an adapter over the [`Service`], on HTTP/2 streams: routes from the RPC
//! table, length-prefixed protobuf messages, `grpc-timeout`, and answers as grpc-go's server
//! writes them (`:status 200`, the message, then `grpc-status`/`grpc-message` trailers; a
//! refusal before any message as trailers only). Errors come from the one table
//! ([`crate::Error::code`]) the gateway uses too.
//!
//! Threads: a call starts on the event loop that read its stream (`raftkv-httpio-N`); the
//! key-value calls are answered by the raft or apply thread and encoded back on the loop,
//! everything else runs on the blocking pool (`raftkv-http-N`).

mod codec;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::h2::{self, Done, Expiry, Reason, Request, Response, Session, StreamTx};
use crate::auth::Credentials;
use crate::error::Code;
use crate::service::{self, Answer, Responder, Rpc, Runs, Service, Waiting, RPCS};
use crate::Ticket;

/// `grpc-message` is cut to this: clients bound the trailers they accept (gRPC's C core to
/// 16 KiB), and etcd's own messages are far shorter.
const STATUS_MESSAGE_MAX: usize = 4096;

/// A call's failure: its gRPC status code and message.
pub type Failure = (Code, String);

pub struct Grpc {
    service: Service,
}

impl Grpc {
    pub fn new(service: Service) -> Arc<Grpc> {
        Arc::new(Grpc { service })
    }
}

/// A message with gRPC's length prefix (uncompressed).
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// A call's outcome as a stream's answer: the message, or a status.
fn answer(outcome: Result<Vec<u8>, Failure>) -> Response {
    match outcome {
        Ok(message) => Response::Full { headers: headers(), body: framed(&message), trailers: status(Code::Ok, "") },
        Err((code, message)) => {
            let mut headers = headers();
            headers.extend(status(code, &message));
            Response::Full { headers, body: Vec::new(), trailers: Vec::new() }
        }
    }
}

fn headers() -> Vec<(&'static str, String)> {
    vec![(":status", "200".into()), ("content-type", "application/grpc".into())]
}

fn status(code: Code, message: &str) -> Vec<(&'static str, String)> {
    vec![("grpc-status", code.as_u32().to_string()), ("grpc-message", percent_encode(message))]
}

/// grpc-go's `encodeGrpcMessage`: bytes outside printable ASCII, and `%`, as `%XX`.
pub fn percent_encode(message: &str) -> String {
    let mut cut = message.len().min(STATUS_MESSAGE_MAX);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut);
    for &b in &message.as_bytes()[..cut] {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error(e: crate::Error) -> Failure {
    (e.code(), e.to_string())
}

fn encode(outcome: crate::Result<service::Response>) -> Response {
    answer(outcome.map(|r| codec::encode_response(&r)).map_err(error))
}

/// The service's answers, back to the stream that asked.
struct GrpcResponder(Done);

impl Responder for GrpcResponder {
    fn later(self: Box<Self>, answer: Answer) {
        self.0.respond_with(move || encode(answer()));
    }

    fn blocking(self: Box<Self>, work: Answer) {
        self.0.spawn_blocking(move || encode(work()));
    }

    fn waiting(self: Box<Self>, work: Waiting) {
        let cancel = self.0.cancel();
        self.0.spawn_blocking(move || encode(work(cancel)));
    }
}

/// The one message of a unary call's body, checked as grpc-go's `recvMsg` checks it.
fn unary_message(body: &[u8], max: usize) -> Result<&[u8], Failure> {
    match first_message(body, max)? {
        Some((message, _)) => Ok(message),
        None if body.is_empty() => Err((Code::Unknown, "EOF".into())),
        None => Err((Code::Unknown, "unexpected EOF".into())),
    }
}

/// The first message of `bytes` and the bytes it takes with its prefix; `None` while it is
/// incomplete. A compressed flag, an unknown one or a length over `max` (etcd's limit on a
/// received message, [`crate::Config::grpc_message_max`]) is refused as soon as the prefix
/// is in.
pub fn first_message(bytes: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, Failure> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<5>() else { return Ok(None) };
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    match prefix[0] {
        0 => {}
        1 => return Err((Code::Internal, "grpc: compressed flag set with identity or empty encoding".into())),
        other => return Err((Code::Internal, format!("grpc: received unexpected payload format {other}"))),
    }
    if len > max {
        return Err((Code::ResourceExhausted, format!("grpc: received message larger than max ({len} vs. {max})")));
    }
    Ok(rest.get(..len).map(|message| (message, 5 + len)))
}

/// `grpc-timeout`: at most 8 digits and a unit (Hours, Minutes, Seconds, milli, micro, nano).
fn timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Gives up on a call at the earlier of the client's deadline and the call's own: the
/// client's is `context deadline exceeded` with `code` (DeadlineExceeded, except for the
/// calls that wait, see [`deadline_code`]), the call's the error its [`Ticket`] names.
fn expiry(ticket: Option<Ticket>, client_deadline: Option<Instant>, code: Code) -> Option<Expiry> {
    let client_first = match (&ticket, client_deadline) {
        (Some(ticket), Some(at)) => at < ticket.deadline(),
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if client_first {
        let at = client_deadline?;
        let answer = Box::new(move || answer(Err((code, "context deadline exceeded".into()))));
        return Some(Expiry { at, answer });
    }
    let ticket = ticket?;
    Some(Expiry { at: ticket.deadline(), answer: Box::new(move || answer(Err(error(ticket.expire())))) })
}

/// The code of a call's answer at the client's deadline. etcd's lock and election recipes
/// return their context's error as a plain Go error, which grpc-go answers as Unknown (a real
/// etcd 3.4.23 answers a `Lock` past its `grpc-timeout` with status 2).
fn deadline_code(rpc: &Rpc) -> Code {
    match rpc.runs {
        Runs::Waits => Code::Unknown,
        Runs::Loop | Runs::Pool => Code::DeadlineExceeded,
    }
}

/// The caller's credentials: etcd's `token` metadata, else `authorization` (what etcd's
/// gateway forwards), as `AuthInfoFromCtx` looks them up, and the client certificate's name.
pub(super) fn credentials(req: &Request) -> Credentials {
    let token = req.field("token").or_else(|| req.field("authorization")).map(str::to_string);
    Credentials { token, common_name: req.common_name.clone() }
}

/// Whether `path` is one of etcd's streaming calls.
fn streams(path: &str) -> bool {
    RPCS.iter().any(|rpc| rpc.grpc == path && rpc.kind.streams())
}

/// Why a call is not started.
enum Refusal {
    /// Not gRPC at all: grpc-go resets the stream.
    Reset,
    Status(Code, String),
}

impl Grpc {
    /// The call `req` asks for and the client's deadline, checked as grpc-go checks a new
    /// stream's headers.
    fn route(&self, req: &Request) -> Result<(&'static Rpc, Option<Instant>), Refusal> {
        if !req.field("content-type").is_some_and(|t| t.starts_with("application/grpc")) {
            return Err(Refusal::Reset);
        }
        let Some(rpc) = RPCS.iter().find(|rpc| rpc.grpc == req.path) else {
            return Err(Refusal::Status(Code::Unimplemented, unknown(&req.path)));
        };
        if let Some(encoding) = req.field("grpc-encoding").filter(|e| *e != "identity") {
            let message = format!("grpc: Decompressor is not installed for grpc-encoding \"{encoding}\"");
            return Err(Refusal::Status(Code::Unimplemented, message));
        }
        let client_deadline = match req.field("grpc-timeout").map(timeout) {
            None => None,
            Some(Some(timeout)) => Some(Instant::now() + timeout),
            Some(None) => {
                let raw = req.field("grpc-timeout").unwrap_or_default();
                return Err(Refusal::Status(Code::Internal, format!("transport: malformed grpc-timeout: {raw:?}")));
            }
        };
        Ok((rpc, client_deadline))
    }
}

impl h2::Handler for Grpc {
    fn handle(&self, req: Request, done: Done) -> Option<Expiry> {
        let (rpc, client_deadline) = match self.route(&req) {
            Ok(route) => route,
            Err(Refusal::Reset) => {
                done.respond(Response::Reset(Reason::ProtocolError));
                return None;
            }
            Err(Refusal::Status(code, message)) => {
                done.respond(answer(Err((code, message))));
                return None;
            }
        };
        let max = self.service.node().config().grpc_message_max();
        let request = match unary_message(&req.body, max).and_then(|m| codec::decode_request(rpc.method, m)) {
            Ok(request) => request,
            Err(refused) => {
                done.respond(answer(Err(refused)));
                return None;
            }
        };
        let ticket = self.service.call(request, &credentials(&req), Box::new(GrpcResponder(done)));
        expiry(ticket, client_deadline, deadline_code(rpc))
    }

    fn settings(&self) -> h2::Settings {
        let cfg = self.service.node().config();
        // etcd hands grpc-go its keepalive only when both are set; grpc-go's own defaults
        // (the flags' defaults too) apply otherwise.
        let (keepalive_time, keepalive_timeout) =
            if cfg.grpc_keepalive_interval.is_zero() || cfg.grpc_keepalive_timeout.is_zero() {
                (h2::KEEPALIVE_TIME, h2::KEEPALIVE_TIMEOUT)
            } else {
                (cfg.grpc_keepalive_interval, cfg.grpc_keepalive_timeout)
            };
        h2::Settings {
            streams,
            ping_min_time: cfg.grpc_keepalive_min_time,
            // Room for a whole message at etcd's limit, so that an oversize one gets gRPC's
            // `ResourceExhausted` from its prefix rather than a reset stream.
            body_max: h2::BODY_MAX.max(2 * cfg.grpc_message_max()),
            keepalive_time,
            keepalive_timeout,
        }
    }

    fn open(&self, req: Request, tx: StreamTx) -> Option<Box<dyn Session>> {
        match self.route(&req) {
            Ok((rpc, deadline)) => stream::open(&self.service, rpc.method, &req, deadline, tx),
            Err(Refusal::Reset) => {
                tx.reset(Reason::ProtocolError);
                None
            }
            Err(Refusal::Status(code, message)) => {
                tx.headers(headers());
                tx.finish(status(code, &message));
                None
            }
        }
    }
}

/// Feeds `input` to a server-side HTTP/2 connection as a client's bytes (cut into reads where
/// its first byte says), decoding each request it yields as the gRPC server would: every
/// unary method's message for a unary stream, watch and keepalive messages for streaming
/// ones, and answering every stream so the send side runs too. The fuzz target's entry
/// (`fuzz/`), also run over its corpus by a unit test. Must never panic.
#[doc(hidden)]
pub fn fuzz_one(input: &[u8]) {
    use prost::Message;
    const MAX: usize = crate::config::DEFAULT_MAX_REQUEST_BYTES + crate::config::GRPC_OVERHEAD_BYTES;
    let Some((&cut, input)) = input.split_first() else { return };
    let mut conn = h2::Connection::new(h2::Settings { streams, ..h2::Settings::default() });
    let mut pending = Vec::new();
    let mut buffers: std::collections::HashMap<u32, Vec<u8>> = std::collections::HashMap::new();
    for read in input.chunks(usize::from(cut).max(1) * 16) {
        pending.extend_from_slice(read);
        let mut events = Vec::new();
        conn.receive(&mut pending, &mut events);
        for event in events {
            match event {
                h2::Event::Request(req) => {
                    if let Ok(message) = unary_message(&req.body, MAX) {
                        for rpc in RPCS.iter().filter(|rpc| !rpc.kind.streams()) {
                            let _ = codec::decode_request(rpc.method, message);
                        }
                    }
                    conn.respond(req.stream, answer(Err((Code::Unknown, "fuzz".into()))));
                }
                h2::Event::Open(req, outbox) => {
                    buffers.insert(req.stream, Vec::new());
                    conn.send(req.stream, h2::Part::Headers(headers()));
                    if outbox.reserve(5).is_ok() {
                        conn.send(req.stream, h2::Part::Message(framed(b"")));
                    }
                }
                h2::Event::Data { stream, data, end } => {
                    let buffer = buffers.entry(stream).or_default();
                    buffer.extend_from_slice(&data);
                    while let Ok(Some((message, len))) = first_message(buffer, MAX) {
                        let _ = crate::pb::WatchRequest::decode(message);
                        let _ = crate::pb::LeaseKeepAliveRequest::decode(message);
                        let _ = crate::pb::LeaderRequest::decode(message);
                        buffer.drain(..len);
                    }
                    if end {
                        conn.send(stream, h2::Part::Trailers(status(Code::Ok, "")));
                    }
                }
                h2::Event::Reset(_) => {}
            }
        }
        conn.take_output();
        conn.take_closed();
        if conn.failed() {
            return;
        }
    }
}

/// grpc-go's answer to a path it has no handler for.
fn unknown(path: &str) -> String {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    if RPCS.iter().any(|rpc| rpc.grpc.trim_start_matches('/').starts_with(&format!("{service}/"))) {
        format!("unknown method {method} for service {service}")
    } else {
        format!("unknown service {service}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_corpus_goes_through_http2_and_grpc() {
        for input in crate::jsonpb::tests::corpus("h2") {
            fuzz_one(&input);
        }
    }

    #[test]
    fn timeouts_parse_as_grpc_go_parses_them() {
        let cases = [
            ("1998887u", Some(Duration::from_micros(1_998_887))),
            ("997m", Some(Duration::from_millis(997))),
            ("2H", Some(Duration::from_secs(7200))),
            ("5S", Some(Duration::from_secs(5))),
            ("123456789S", None),
            ("S", None),
            ("", None),
            ("10x", None),
            ("-1S", None),
        ];
        for (value, want) in cases {
            assert_eq!(timeout(value), want, "{value:?}");
        }
    }

    #[test]
    fn unary_messages_are_checked_as_grpc_go_checks_them() {
        const MAX: usize = 2 * 1024 * 1024;
        let big = (MAX as u32 + 1).to_be_bytes();
        type Case<'a> = (&'a [u8], Result<&'a [u8], (Code, &'a str)>);
        let cases: [Case; 6] = [
            (b"\x00\x00\x00\x00\x02ab", Ok(b"ab")),
            (b"", Err((Code::Unknown, "EOF"))),
            (b"\x00\x00\x00\x00\x03ab", Err((Code::Unknown, "unexpected EOF"))),
            (
                b"\x01\x00\x00\x00\x00",
                Err((Code::Internal, "grpc: compressed flag set with identity or empty encoding")),
            ),
            (b"\x07\x00\x00\x00\x00", Err((Code::Internal, "grpc: received unexpected payload format 7"))),
            (
                &[0, big[0], big[1], big[2], big[3]],
                Err((Code::ResourceExhausted, "grpc: received message larger than max (2097153 vs. 2097152)")),
            ),
        ];
        for (body, want) in cases {
            let got = unary_message(body, MAX);
            assert_eq!(
                got.as_ref().map_err(|(c, m)| (*c, m.as_str())),
                want.as_ref().map_err(|(c, m)| (*c, *m)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn unknown_paths_and_status_messages_read_as_grpc_go_writes_them() {
        assert_eq!(unknown("/etcdserverpb.KV/Nope"), "unknown method Nope for service etcdserverpb.KV");
        assert_eq!(unknown("/nosuch.Service/X"), "unknown service nosuch.Service");
        assert_eq!(percent_encode("etcdserver: key is not provided"), "etcdserver: key is not provided");
        assert_eq!(percent_encode("100% \u{e9}\n"), "100%25 %C3%A9%0A");
    }
}
