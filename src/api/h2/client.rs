//! HTTP/2 with prior knowledge from the client's side, one request per connection: what
//! `raftkvctl` needs for the calls etcd serves over gRPC only (HashKV has no gateway path in
//! etcd 3.4). Blocking, on the caller's thread, over the same frames and HPACK decoder as the
//! server; the request's headers are written as the server writes its own (literals never
//! indexed), so no encoder table is kept.
//!
//! Flow control: the request body must fit the initial window (the server's window is not
//! waited for), and every DATA frame received is given back at once on the stream and the
//! connection, so an answer of any size up to `ANSWER_MAX` (64 MiB) flows.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::frame::{self, flag, kind, Head};
use super::hpack::Decoder;
pub use super::hpack::Fields;

/// Largest answer body read.
const ANSWER_MAX: usize = 64 << 20;
/// Largest header block (the headers or the trailers) read, before and after decoding.
const HEADERS_MAX: usize = 64 << 10;
/// Our stream: the first a client opens.
const STREAM: u32 = 1;

/// A whole answer: its headers, body and trailers (empty when the headers ended the stream).
pub struct Answer {
    pub headers: Fields,
    pub body: Vec<u8>,
    pub trailers: Fields,
}

/// Sends `headers` (pseudo-headers first) and `body` on a new connection to `addr`
/// (`host:port`) and reads the answer; everything within `timeout`.
pub fn request(addr: &str, headers: &[(&str, &str)], body: &[u8], timeout: Duration) -> io::Result<Answer> {
    if body.len() > frame::INITIAL_WINDOW as usize {
        return Err(io::Error::other("request body larger than HTTP/2's initial window"));
    }
    let deadline = Instant::now() + timeout;
    let mut conn = connect(addr, timeout)?;
    let mut out = frame::PREFACE.to_vec();
    frame::settings(&mut out, &[(frame::setting::ENABLE_PUSH, 0)]);
    let mut block = Vec::new();
    super::hpack::encode(&mut block, headers);
    frame::write(&mut out, kind::HEADERS, flag::END_HEADERS, STREAM, &block);
    let mut chunks = body.chunks(frame::MAX_FRAME_SIZE_DEFAULT).peekable();
    if chunks.peek().is_none() {
        frame::write(&mut out, kind::DATA, flag::END_STREAM, STREAM, &[]);
    }
    while let Some(chunk) = chunks.next() {
        let end = if chunks.peek().is_none() { flag::END_STREAM } else { 0 };
        frame::write(&mut out, kind::DATA, end, STREAM, chunk);
    }
    conn.write_all(&out)?;
    read_answer(&mut conn, deadline)
}

fn connect(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::other(format!("{addr}: no address"));
    for socket in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&socket, timeout) {
            Ok(conn) => {
                conn.set_nodelay(true)?;
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))?;
                return Ok(conn);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads frames until our stream ends, answering what the connection asks of a client
/// (SETTINGS and PING acks, window updates for the data read).
fn read_answer(conn: &mut TcpStream, deadline: Instant) -> io::Result<Answer> {
    let mut decoder = Decoder::new(HEADERS_MAX);
    let mut header_blocks: Vec<Fields> = Vec::new();
    let mut block = Vec::new();
    let mut body = Vec::new();
    // Set by END_STREAM; the answer is whole once the header block it came with is too.
    let mut ended = false;
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer before the deadline"));
        }
        let (head, payload) = read_frame(conn)?;
        let mut reply = Vec::new();
        match head.kind {
            kind::SETTINGS if !head.has(flag::ACK) => frame::write(&mut reply, kind::SETTINGS, flag::ACK, 0, &[]),
            kind::PING if !head.has(flag::ACK) => frame::write(&mut reply, kind::PING, flag::ACK, 0, &payload),
            kind::GOAWAY => {
                let debug = payload.get(8..).unwrap_or_default();
                return Err(protocol(format!("GOAWAY: {}", String::from_utf8_lossy(debug))));
            }
            _ if head.stream != STREAM => {}
            kind::RST_STREAM => return Err(protocol(format!("stream reset (code {})", frame::u32_at(&payload)))),
            kind::HEADERS | kind::CONTINUATION => {
                let fragment = if head.kind == kind::HEADERS { headers_fragment(&head, &payload)? } else { &payload };
                block.extend_from_slice(fragment);
                if block.len() > HEADERS_MAX {
                    return Err(protocol("header block too large".into()));
                }
                if head.has(flag::END_HEADERS) {
                    let fields = decoder.decode(&block).map_err(|_| protocol("undecodable header block".into()))?;
                    header_blocks.push(fields);
                    block.clear();
                }
                // CONTINUATION has no END_STREAM: its HEADERS' flag covers it.
                ended |= head.kind == kind::HEADERS && head.has(flag::END_STREAM);
            }
            kind::DATA => {
                let data = frame::unpad(&head, &payload).ok_or_else(|| protocol("bad padding".into()))?;
                if body.len() + data.len() > ANSWER_MAX {
                    return Err(protocol("answer too large".into()));
                }
                body.extend_from_slice(data);
                if !payload.is_empty() {
                    frame::window_update(&mut reply, 0, payload.len() as u32);
                    frame::window_update(&mut reply, STREAM, payload.len() as u32);
                }
                ended |= head.has(flag::END_STREAM);
            }
            _ => {}
        }
        if !reply.is_empty() {
            conn.write_all(&reply)?;
        }
        if ended && block.is_empty() {
            let mut blocks = header_blocks.into_iter();
            let headers = blocks.next().ok_or_else(|| protocol("stream ended without headers".into()))?;
            return Ok(Answer { headers, body, trailers: blocks.next().unwrap_or_default() });
        }
    }
}

fn read_frame(conn: &mut TcpStream) -> io::Result<(Head, Vec<u8>)> {
    let mut header = [0u8; frame::HEADER_LEN];
    conn.read_exact(&mut header)?;
    let head = Head::parse(&header).expect("9 bytes");
    // We announced no larger frames than the default.
    if head.len > frame::MAX_FRAME_SIZE_DEFAULT {
        return Err(protocol(format!("frame of {} bytes", head.len)));
    }
    let mut payload = vec![0u8; head.len];
    conn.read_exact(&mut payload)?;
    Ok((head, payload))
}

/// A HEADERS frame's block fragment, without its padding and priority fields.
fn headers_fragment<'a>(head: &Head, payload: &'a [u8]) -> io::Result<&'a [u8]> {
    let unpadded = frame::unpad(head, payload).ok_or_else(|| protocol("bad padding".into()))?;
    if head.has(flag::PRIORITY) {
        return unpadded.get(5..).ok_or_else(|| protocol("short priority".into()));
    }
    Ok(unpadded)
}

fn protocol(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}
