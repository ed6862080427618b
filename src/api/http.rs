//! A small synchronous HTTP/1.1 server: an accept thread and a bounded pool of connection
//! threads, with the request parsing of `httparse` under our own connection loop (so streamed
//! responses can flush one chunk per message, which the gateway's watch and keepalive need).
//!
//! Threads: `raftkv-http-accept` accepts and hands connections over a bounded queue
//! ([`ACCEPT_QUEUE_MAX`]) to `raftkv-http-N` workers, spawned on demand up to
//! [`WORKERS_MAX`]; a worker serves one connection (keep-alive, pipelining, HTTP/1.0,
//! `Expect: 100-continue`, chunked request bodies) until it closes. Reads time out every
//! [`POLL_INTERVAL`] so workers notice shutdown; a client that hangs up mid-request only ends
//! its own connection.
//!
//! Responses are written the way Go's net/http writes them (handler headers sorted, then
//! `Date`, `Content-Length`, a sniffed `Content-Type`, `Connection`, `Transfer-Encoding`), so
//! byte-level comparisons with etcd only differ where behaviour does.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam::channel::{self, Receiver, RecvTimeoutError};
use parking_lot::Mutex;

use crate::{Error, Result};

/// Connections accepted but not yet picked up by a worker.
pub const ACCEPT_QUEUE_MAX: usize = 256;
/// Most connections served at once; each holds one thread.
pub const WORKERS_MAX: usize = 1024;
/// How often blocked reads wake up to check for shutdown.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Largest request head (request line + headers).
const HEAD_MAX: usize = 64 * 1024;
/// Largest request body read into memory. Above etcd's 2 MiB gRPC limit plus base64's growth,
/// so etcd's own size errors decide every request a real client sends.
pub const BODY_MAX: usize = 8 << 20;
/// An idle keep-alive connection is closed after this long.
const IDLE_MAX: Duration = Duration::from_secs(300);

/// A parsed request.
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
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
    /// A body produced over time (watch, lease keepalive): each message received is sent as one
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

/// Handles one request. Implementations are shared by all worker threads.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Response;
}

/// A running server; dropping or [`HttpServer::stop`] stops it and joins its threads.
pub struct HttpServer {
    stopping: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HttpServer {
    pub fn start(listener: TcpListener, handler: Arc<dyn Handler>) -> Result<HttpServer> {
        let addr = listener.local_addr().map_err(|e| Error::Config(format!("listener: {e}")))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = Arc::new(Mutex::new(Vec::new()));
        let (conn_tx, conn_rx) = channel::bounded::<TcpStream>(ACCEPT_QUEUE_MAX);
        let pool = Pool {
            handler,
            conn_rx,
            stopping: stopping.clone(),
            idle: Arc::new(AtomicUsize::new(0)),
            workers: workers.clone(),
        };
        let stop = stopping.clone();
        let acceptor = std::thread::Builder::new()
            .name("raftkv-http-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        Ok(conn) => {
                            pool.reserve_worker();
                            if conn_tx.send(conn).is_err() {
                                break;
                            }
                        }
                        // Out of file descriptors and the like: log, back off, keep serving.
                        Err(e) => {
                            log::warn!("http: accept failed: {e}");
                            std::thread::sleep(POLL_INTERVAL);
                        }
                    }
                }
            })
            .map_err(|source| Error::Spawn { name: "raftkv-http-accept".into(), source })?;
        Ok(HttpServer { stopping, addr, acceptor: Some(acceptor), workers })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, closes connections, joins threads.
    pub fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let workers = std::mem::take(&mut *self.workers.lock());
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Pool {
    handler: Arc<dyn Handler>,
    conn_rx: Receiver<TcpStream>,
    stopping: Arc<AtomicBool>,
    /// Workers free and not yet claimed by a queued connection.
    idle: Arc<AtomicUsize>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Pool {
    /// Makes sure a worker will take the next queued connection: claims an idle one, or
    /// spawns one. Claiming at accept time (not when a worker wakes) matters: a worker serves
    /// a keep-alive connection for as long as the client keeps it, so a connection queued
    /// behind busy workers would otherwise wait for one of those clients to leave. At
    /// `WORKERS_MAX`, connections queue until a worker is free.
    fn reserve_worker(&self) {
        let claimed = self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
        if claimed {
            return;
        }
        let mut workers = self.workers.lock();
        if workers.len() >= WORKERS_MAX {
            log::warn!("http: all {WORKERS_MAX} workers busy; connection queued");
            return;
        }
        let n = workers.len();
        let (handler, conn_rx, stopping, idle) =
            (self.handler.clone(), self.conn_rx.clone(), self.stopping.clone(), self.idle.clone());
        // The new worker is born claimed: it takes the connection being queued now.
        let spawned = std::thread::Builder::new().name(format!("raftkv-http-{n}")).spawn(move || loop {
            match conn_rx.recv_timeout(POLL_INTERVAL) {
                Ok(conn) => {
                    serve(conn, &*handler, &stopping);
                    idle.fetch_add(1, Ordering::AcqRel);
                }
                Err(RecvTimeoutError::Timeout) if !stopping.load(Ordering::Acquire) => {}
                Err(_) => return,
            }
        });
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("http: cannot spawn worker: {e}"),
        }
    }
}

/// Why reading a request ended without one.
enum ReadEnd {
    /// Clean end: the peer closed, went idle too long, or the server is stopping.
    Closed,
    /// Malformed request: answer with this status and body, then close.
    Bad(u16, &'static str),
}

fn serve(conn: TcpStream, handler: &dyn Handler, stopping: &AtomicBool) {
    let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    if conn.set_read_timeout(Some(POLL_INTERVAL)).is_err() {
        return;
    }
    let _ = conn.set_nodelay(true);
    let Ok(write_half) = conn.try_clone() else { return };
    let mut reader = BufReader::with_capacity(16 * 1024, conn);
    let mut writer = io::BufWriter::with_capacity(16 * 1024, write_half);
    loop {
        let head = match read_head(&mut reader, stopping) {
            Ok(head) => head,
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::Bad(status, msg)) => {
                let _ = write_plain(&mut writer, (1, 1), status, msg, true);
                return;
            }
        };
        if head.expect_continue
            && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").and_then(|_| writer.flush()).is_err()
        {
            return;
        }
        let body = match read_body(&mut reader, &head, stopping) {
            Ok(body) => body,
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::Bad(status, msg)) => {
                let _ = write_plain(&mut writer, head.version, status, msg, true);
                return;
            }
        };
        let (close, echo_close) = (head.close, head.echo_close);
        let response = handler.handle(Request { method: head.method, path: head.path, body });
        if let Response::Stream { status, headers, messages, on_close } = response {
            if let Err(e) = write_stream(&mut writer, head.version, status, headers, messages, stopping) {
                log::debug!("http: {peer}: stream ended: {e}");
            }
            if let Some(on_close) = on_close {
                on_close();
            }
            // A stream ends its connection: the client cannot tell where a new response starts
            // if it stopped reading the old one.
            return;
        }
        if let Err(e) = write_response(&mut writer, head.version, response, echo_close) {
            log::debug!("http: {peer}: write failed: {e}");
            return;
        }
        if close || stopping.load(Ordering::Acquire) {
            return;
        }
    }
}

struct Head {
    method: String,
    path: String,
    version: (u8, u8),
    content_length: usize,
    chunked: bool,
    close: bool,
    /// The client asked to close: Go then says `Connection: close` in its answer.
    echo_close: bool,
    expect_continue: bool,
}

fn read_head(reader: &mut BufReader<TcpStream>, stopping: &AtomicBool) -> std::result::Result<Head, ReadEnd> {
    let mut buf = Vec::new();
    let mut idle = Duration::ZERO;
    // Read line by line until the empty line that ends the head.
    loop {
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return Err(ReadEnd::Closed),
            Ok(_) => {
                idle = Duration::ZERO;
                if buf.len() > HEAD_MAX {
                    return Err(ReadEnd::Bad(431, "Request Header Fields Too Large"));
                }
                // Tolerate blank lines before the request line, as Go does.
                if buf[..] == b"\r\n"[..] || buf[..] == b"\n"[..] {
                    buf.clear();
                    continue;
                }
                if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                idle += POLL_INTERVAL;
                if stopping.load(Ordering::Acquire) || (buf.is_empty() && idle >= IDLE_MAX) {
                    return Err(ReadEnd::Closed);
                }
            }
            Err(_) => return Err(ReadEnd::Closed),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ReadEnd::Bad(400, "Bad Request")),
    }
    let version = (1, req.version.unwrap_or(1));
    let target = req.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut head = Head {
        method: req.method.unwrap_or("GET").to_string(),
        path,
        version,
        content_length: 0,
        chunked: false,
        // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
        close: version.1 == 0,
        echo_close: false,
        expect_continue: false,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| ReadEnd::Bad(400, "Bad Request: bad Content-Length"))?;
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
    Ok(head)
}

/// `read_exact` that survives the poll timeouts and gives up only when the peer is gone.
fn read_full(
    reader: &mut BufReader<TcpStream>,
    mut out: &mut [u8],
    stopping: &AtomicBool,
) -> std::result::Result<(), ReadEnd> {
    let mut idle = Duration::ZERO;
    while !out.is_empty() {
        match reader.read(out) {
            Ok(0) => return Err(ReadEnd::Closed),
            Ok(n) => {
                out = &mut out[n..];
                idle = Duration::ZERO;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                idle += POLL_INTERVAL;
                if stopping.load(Ordering::Acquire) || idle >= IDLE_MAX {
                    return Err(ReadEnd::Closed);
                }
            }
            Err(_) => return Err(ReadEnd::Closed),
        }
    }
    Ok(())
}

fn read_line(reader: &mut BufReader<TcpStream>, stopping: &AtomicBool) -> std::result::Result<String, ReadEnd> {
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Err(ReadEnd::Closed),
            Ok(_) if line.ends_with(b"\n") => return Ok(String::from_utf8_lossy(&line).trim().to_string()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stopping.load(Ordering::Acquire) {
                    return Err(ReadEnd::Closed);
                }
            }
            Err(_) => return Err(ReadEnd::Closed),
        }
        if line.len() > HEAD_MAX {
            return Err(ReadEnd::Bad(400, "Bad Request"));
        }
    }
}

fn read_body(
    reader: &mut BufReader<TcpStream>,
    head: &Head,
    stopping: &AtomicBool,
) -> std::result::Result<Vec<u8>, ReadEnd> {
    if !head.chunked {
        if head.content_length > BODY_MAX {
            return Err(ReadEnd::Bad(413, "Request Entity Too Large"));
        }
        let mut body = vec![0; head.content_length];
        read_full(reader, &mut body, stopping)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, stopping)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ReadEnd::Bad(400, "Bad Request: bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            while !read_line(reader, stopping)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > BODY_MAX {
            return Err(ReadEnd::Bad(413, "Request Entity Too Large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        read_full(reader, &mut body[start..], stopping)?;
        read_line(reader, stopping)?;
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
    stopping: &AtomicBool,
) -> io::Result<()> {
    let mut head = Some(headers);
    loop {
        match messages.recv_timeout(POLL_INTERVAL) {
            Ok(message) => {
                let mut out = Vec::with_capacity(message.len() + 512);
                if let Some(headers) = head.take() {
                    status_line(&mut out, version, status);
                    for (k, v) in sorted_headers(headers) {
                        let _ = write!(out, "{k}: {v}\r\n");
                    }
                    // Go's gateway streams never announce `Connection: close`.
                    let _ = write!(out, "Date: {}\r\nTransfer-Encoding: chunked\r\n\r\n", http_date());
                }
                let _ = write!(out, "{:x}\r\n", message.len());
                out.extend_from_slice(&message);
                out.extend_from_slice(b"\r\n");
                w.write_all(&out)?;
                w.flush()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                if stopping.load(Ordering::Acquire) || peer_closed(w.get_ref()) {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if head.is_none() {
                    w.write_all(b"0\r\n\r\n")?;
                    w.flush()?;
                }
                return Ok(());
            }
        }
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

    #[test]
    fn dates_look_like_gos() {
        let d = http_date();
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }
}
