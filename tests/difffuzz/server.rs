//! The two servers under comparison, as real processes on 127.0.0.1 (etcd 3.4 from the
//! system, raftkv from this build), and a raw HTTP/1.1 client that reports exactly what came
//! back: status, headers, framing, body, trailers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// One HTTP request, as sent to both servers.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    /// Path and query string.
    pub target: String,
    pub body: Vec<u8>,
}

/// What a server answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub chunked: bool,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The server closed the connection after (or instead of) answering.
    pub closed: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An answer that never came (the connection dropped first).
    fn dropped() -> Reply {
        Reply { status: 0, headers: Vec::new(), chunked: false, body: Vec::new(), trailers: Vec::new(), closed: true }
    }
}

pub struct Server {
    child: Child,
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// A fresh single-member etcd with its data in `dir`.
    pub fn etcd(dir: &Path) -> Server {
        Server::start("etcd", dir, |port, dir, log| {
            let peer = free_port();
            let (client_url, peer_url) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{peer}"));
            let mut command = Command::new(ETCD_BIN);
            command
                .args([
                    "--name",
                    "difffuzz",
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                ])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("difffuzz={peer_url}"), "--initial-cluster-token", "difffuzz"])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .arg("--data-dir")
                .arg(dir)
                .stderr(log);
            command
        })
    }

    /// A fresh raftkv member (this build's binary) with its data in `dir`.
    pub fn raftkv(dir: &Path) -> Server {
        Server::start("raftkv", dir, |port, dir, log| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_raftkv"));
            command
                .args(["--name", "difffuzz", "--listen-client-urls", &format!("http://127.0.0.1:{port}")])
                .args(["--listen-peer-urls", "http://127.0.0.1:0", "--log-level", "warn"])
                .arg("--data-dir")
                .arg(dir)
                .stderr(log);
            command
        })
    }

    fn start(name: &'static str, dir: &Path, command: impl Fn(u16, &Path, Stdio) -> Command) -> Server {
        let log = dir.with_extension("log");
        // A free port can be taken between the probe and the bind: try a few.
        for _ in 0..3 {
            let port = free_port();
            let out = std::fs::File::create(&log).unwrap();
            let child = command(port, dir, Stdio::from(out)).stdin(Stdio::null()).stdout(Stdio::null()).spawn();
            let child = child.unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let mut server = Server { child, port, conn: None, log: log.clone() };
            if server.wait_healthy() {
                return server;
            }
        }
        panic!("{name} did not start; see {}", log.display());
    }

    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let health = Request { method: "GET", target: "/health".into(), body: Vec::new() };
        while Instant::now() < deadline {
            if !self.alive() {
                return false;
            }
            if self.send(&health).status == 200 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `req` on the kept-alive connection (a new one if there is none) and reads the
    /// answer. A connection the server closed is reopened once for a request that was never
    /// answered.
    pub fn send(&mut self, req: &Request) -> Reply {
        for attempt in 0..2 {
            let fresh = self.conn.is_none();
            let conn = match self.conn.take() {
                Some(conn) => conn,
                None => match TcpStream::connect(("127.0.0.1", self.port)) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        BufReader::new(stream)
                    }
                    Err(_) => return Reply::dropped(),
                },
            };
            match exchange(conn, req) {
                Ok((reply, conn)) => {
                    self.conn = conn;
                    return reply;
                }
                // A kept connection may have been closed by an idle timeout: retry on a new one.
                Err(()) if !fresh && attempt == 0 => {}
                Err(()) => return Reply::dropped(),
            }
        }
        Reply::dropped()
    }
}

impl Server {
    /// Sends a streaming request on a connection of its own and collects what arrives until
    /// nothing has for `quiet` (a watch never ends by itself); then hangs up.
    pub fn stream(&mut self, req: &Request, quiet: Duration) -> Reply {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return Reply::dropped() };
        stream.set_read_timeout(Some(quiet)).unwrap();
        let mut conn = BufReader::new(stream);
        match exchange_until_quiet(&mut conn, req) {
            Ok(reply) => reply,
            Err(()) => Reply::dropped(),
        }
    }
}

/// A streamed answer: the head, then whole chunks until the stream goes quiet or ends.
fn exchange_until_quiet(conn: &mut BufReader<TcpStream>, req: &Request) -> Result<Reply, ()> {
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        req.method,
        req.target,
        req.body.len()
    );
    conn.get_mut().write_all(head.as_bytes()).map_err(|_| ())?;
    conn.get_mut().write_all(&req.body).map_err(|_| ())?;
    let status_line = match line(conn) {
        Ok(l) => l,
        // No head at all within the quiet time: a stream that has said nothing.
        Err(()) => {
            return Ok(Reply {
                status: 0,
                headers: Vec::new(),
                chunked: false,
                body: Vec::new(),
                trailers: Vec::new(),
                closed: false,
            })
        }
    };
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(())?;
    let mut reply =
        Reply { status, headers: Vec::new(), chunked: false, body: Vec::new(), trailers: Vec::new(), closed: false };
    loop {
        let h = line(conn)?;
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or(())?;
        reply.headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    reply.chunked = reply.header("transfer-encoding") == Some("chunked");
    if !reply.chunked {
        let len = reply.header("content-length").and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
        reply.body.resize(len, 0);
        conn.read_exact(&mut reply.body).map_err(|_| ())?;
        return Ok(reply);
    }
    // Chunks until a read times out (quiet) or the stream ends.
    while let Ok(size) = line(conn) {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 {
            break;
        }
        let start = reply.body.len();
        reply.body.resize(start + size, 0);
        if conn.read_exact(&mut reply.body[start..]).is_err() || line(conn).is_err() {
            break;
        }
        // Chunk boundaries are part of the answer: mark them.
        reply.body.extend_from_slice(b"|");
    }
    Ok(reply)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request and its answer; the connection back if it may be reused.
fn exchange(mut conn: BufReader<TcpStream>, req: &Request) -> Result<(Reply, Option<BufReader<TcpStream>>), ()> {
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        req.method,
        req.target,
        req.body.len()
    );
    let out = conn.get_mut();
    out.write_all(head.as_bytes()).map_err(|_| ())?;
    out.write_all(&req.body).map_err(|_| ())?;
    let status_line = line(&mut conn)?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(())?;
    let mut reply =
        Reply { status, headers: Vec::new(), chunked: false, body: Vec::new(), trailers: Vec::new(), closed: false };
    loop {
        let h = line(&mut conn)?;
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or(())?;
        reply.headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    if reply.header("transfer-encoding") == Some("chunked") {
        reply.chunked = true;
        loop {
            let size =
                usize::from_str_radix(line(&mut conn)?.split(';').next().unwrap_or("").trim(), 16).map_err(|_| ())?;
            if size == 0 {
                loop {
                    let t = line(&mut conn)?;
                    if t.is_empty() {
                        break;
                    }
                    let (k, v) = t.split_once(':').ok_or(())?;
                    reply.trailers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                }
                break;
            }
            let start = reply.body.len();
            reply.body.resize(start + size, 0);
            conn.read_exact(&mut reply.body[start..]).map_err(|_| ())?;
            line(&mut conn)?;
        }
    } else if let Some(len) = reply.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        reply.body.resize(len, 0);
        conn.read_exact(&mut reply.body).map_err(|_| ())?;
    }
    reply.closed = reply.header("connection") == Some("close");
    let conn = (!reply.closed).then_some(conn);
    Ok((reply, conn))
}

fn line(conn: &mut BufReader<TcpStream>) -> Result<String, ()> {
    let mut s = String::new();
    match conn.read_line(&mut s) {
        Ok(0) | Err(_) => Err(()),
        Ok(_) => Ok(s.trim_end_matches(['\r', '\n']).to_string()),
    }
}
