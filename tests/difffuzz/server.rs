//! The two servers under comparison, as real processes on 127.0.0.1 (etcd 3.4 from the
//! system, raftkv from this build), and a raw HTTP/1.1 client that reports exactly what came
//! back: status, headers, framing, body, trailers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::Conn;
pub use crate::http::Reply;

pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// One HTTP request, as sent to both servers.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    /// Path and query string.
    pub target: String,
    pub body: Vec<u8>,
}

pub struct Server {
    child: Child,
    port: u16,
    conn: Option<Conn>,
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
                None => match Conn::open(("127.0.0.1", self.port), Duration::from_secs(20)) {
                    Ok(conn) => conn,
                    Err(_) => return Reply::dropped(),
                },
            };
            match exchange(conn, req) {
                Ok((reply, conn)) => {
                    self.conn = conn;
                    return reply;
                }
                // A kept connection may have been closed by an idle timeout: retry on a new one.
                Err(_) if !fresh && attempt == 0 => {}
                Err(_) => return Reply::dropped(),
            }
        }
        Reply::dropped()
    }

    /// Sends a streaming request on a connection of its own and collects what arrives until
    /// nothing has for `quiet` (a watch never ends by itself); then hangs up.
    pub fn stream(&mut self, req: &Request, quiet: Duration) -> Reply {
        let Ok(mut conn) = Conn::open(("127.0.0.1", self.port), quiet) else { return Reply::dropped() };
        if conn.request(req.method, &req.target, &[], &req.body).is_err() {
            return Reply::dropped();
        }
        // No head at all within the quiet time: a stream that has said nothing.
        let Ok(mut reply) = conn.read_head() else { return Reply { status: 0, closed: false, ..Reply::dropped() } };
        if !reply.chunked {
            return match conn.read_body(&mut reply) {
                Ok(()) => reply,
                Err(_) => Reply::dropped(),
            };
        }
        // Chunks until a read times out (quiet) or the stream ends. Chunk boundaries are part
        // of the answer: each chunk is ended with a mark.
        while let Ok(Some(chunk)) = conn.read_chunk(&mut reply) {
            reply.body.extend_from_slice(&chunk);
            reply.body.push(b'|');
        }
        reply
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request and its answer; the connection back if it may be reused.
fn exchange(mut conn: Conn, req: &Request) -> std::io::Result<(Reply, Option<Conn>)> {
    conn.request(req.method, &req.target, &["Content-Type: application/json"], &req.body)?;
    let reply = conn.read_reply()?;
    let conn = (!reply.closed).then_some(conn);
    Ok((reply, conn))
}
