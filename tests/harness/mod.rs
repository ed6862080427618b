//! What every integration test binary shares: real members on real RocksDB in temp dirs, real
//! TCP on 127.0.0.1, real processes.
//!
//! - this file: one in-process member, the JSON gateway on one ([`Gateway`]), and the small
//!   helpers every test uses (free ports, polling with a bound);
//! - [`cluster`]: in-process clusters over real TCP, with partitions;
//! - [`process`]: `raftkv` and `raftkvctl` as processes (SIGKILL, SIGTERM), and this test
//!   binary re-run as a child;
//! - [`http`]: a raw HTTP/1.1 client that reports exactly what came back.

pub mod cluster;
pub mod http;
pub mod process;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use raftkv::embed;
use raftkv::pb::*;
use raftkv::{Config, Node};

pub fn init_logs() {
    let _ =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).is_test(true).try_init();
}

/// A free port on 127.0.0.1 for a listener the test names before it starts (peer URLs must be
/// in `--initial-cluster` before any member binds).
///
/// Taken below the kernel's ephemeral range (32768–60999 here): a port from `bind(":0")`, once
/// released, is also a candidate for any outgoing connection's local port, and with a hundred
/// tests connecting in parallel one of them took a peer port between the check and the
/// member's bind (CI saw "start member" fail that way). Ports below the range are only ever
/// handed out by this counter; it starts at an offset from the pid so that two test processes
/// rarely walk the same ports, and skips any port something else holds.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `cond` until it holds or `limit` passes; says whether it held. A bound on waiting,
/// never a speed assertion.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A single-member config on `dir` with timings short enough for tests.
pub fn config(dir: &Path) -> Config {
    let mut cfg = Config::new("test", dir);
    cfg.request_timeout_ms = 5_000;
    cfg
}

pub fn start(dir: &Path) -> Node {
    init_logs();
    Node::start(config(dir)).expect("start node")
}

pub fn put(node: &Node, key: &str, value: &str) -> i64 {
    node.put(PutRequest::new(key, value)).expect("put").header.unwrap().revision
}

pub fn get(node: &Node, key: &str) -> Option<KeyValue> {
    node.range(RangeRequest::key(key)).expect("range").kvs.into_iter().next()
}

pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

pub fn rev(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().expect("header").revision
}

/// A member serving the JSON gateway on a free port: [`embed::Member`], as the CLI runs it.
pub struct Gateway {
    pub member: embed::Member,
    pub node: Node,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn start() -> Gateway {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.listen_client_urls = vec!["http://127.0.0.1:0".into()];
        let member = embed::Member::start(cfg).expect("start member");
        Gateway { node: member.node().clone(), member, _dir: dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.member.client_addrs()[0]
    }

    pub fn send(&self, raw: &[u8]) -> http::Reply {
        http::send(self.addr(), raw)
    }

    pub fn post(&self, path: &str, body: &str) -> http::Reply {
        http::post(self.addr(), path, body)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.member.stop().expect("clean stop");
    }
}

/// A call through the service layer as `credentials`, answered on the calling thread (the
/// adapters' part played inline), within 10 s.
pub fn service_call(
    service: &raftkv::service::Service,
    request: raftkv::service::Request,
    credentials: &raftkv::auth::Credentials,
) -> raftkv::Result<raftkv::service::Response> {
    use raftkv::service::{Answer, Responder, Response, Waiting};
    struct Inline(std::sync::mpsc::Sender<raftkv::Result<Response>>);
    impl Responder for Inline {
        fn later(self: Box<Self>, answer: Answer) {
            let _ = self.0.send(answer());
        }
        fn blocking(self: Box<Self>, work: Answer) {
            let _ = self.0.send(work());
        }
        fn waiting(self: Box<Self>, work: Waiting) {
            let _ = self.0.send(work(raftkv::wait::Cancel::never()));
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    service.call(request, credentials, Box::new(Inline(tx)));
    rx.recv_timeout(Duration::from_secs(10)).expect("an answer")
}
