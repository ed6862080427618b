//! Hostile HTTP/2 clients against a real `raftkv` process: garbage after the preface, frames
//! over the size limit, a header block that never ends, HPACK past the table, 100,000 streams
//! opened and reset at once (CVE-2023-44487), a watch stream that never reads, and broken
//! gRPC messages. Each gets an HTTP/2 or gRPC error, and the member keeps serving others. And
//! the reset a gRPC client sends to cancel a call: a waiting lock's ends it, key and all; and a
//! client that stops answering the keepalive ping is dropped, its watch with it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use prost::Message;
use raftkv::api::h2::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN, PREFACE};
use raftkv::pb::{LeaseGrantRequest, LockRequest, PutRequest, RangeRequest};
use raftkv::wait::Cancel;

use super::grpc::{etcdctl, watchers};
use crate::harness::process::Member;

/// A raw HTTP/2 client connection, past the preface and an empty SETTINGS.
struct Raw {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Raw {
    fn open(endpoint: &str, settings: &[(u16, u32)]) -> Raw {
        let stream = TcpStream::connect(endpoint).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut raw = Raw { stream, input: Vec::new() };
        let mut out = PREFACE.to_vec();
        frame::settings(&mut out, settings);
        raw.send(&out);
        raw
    }

    /// Writes `bytes`; false once the server has closed the connection.
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Frames read within `within`, until the server closes (or sends GOAWAY).
    fn frames(&mut self, within: Duration) -> Vec<(Head, Vec<u8>)> {
        let deadline = Instant::now() + within;
        let mut frames = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            while let Some(head) = Head::parse(&self.input) {
                if self.input.len() < HEADER_LEN + head.len {
                    break;
                }
                let payload = self.input[HEADER_LEN..HEADER_LEN + head.len].to_vec();
                self.input.drain(..HEADER_LEN + head.len);
                let goaway = head.kind == kind::GOAWAY;
                frames.push((head, payload));
                if goaway {
                    return frames;
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return frames,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return frames,
            }
        }
        frames
    }

    /// The reason of the GOAWAY the server ends with.
    fn goaway(&mut self) -> u32 {
        let frames = self.frames(Duration::from_secs(10));
        let (_, payload) = frames.iter().find(|(h, _)| h.kind == kind::GOAWAY).expect("a GOAWAY");
        frame::u32_at(&payload[4..])
    }
}

/// A header block of literals without indexing, raw strings.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        for s in [name, value] {
            assert!(s.len() < 127);
            out.push(s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn grpc_headers(path: &str) -> Vec<u8> {
    block(&[(":method", "POST"), (":scheme", "http"), (":path", path), ("content-type", "application/grpc")])
}

fn headers_frame(stream: u32, end_stream: bool, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
    frame::write(&mut out, kind::HEADERS, flags, stream, &grpc_headers(path));
    out
}

/// The member answers a normal client.
fn serves(endpoint: &str) {
    let (code, _, err) = etcdctl(endpoint, &["put", "alive", "yes"], "");
    assert_eq!(code, Some(0), "the member stopped serving: {err}");
}

/// The `grpc-status` value in the answer frames to `stream` (our encoder writes raw literals).
fn grpc_status(frames: &[(Head, Vec<u8>)], stream: u32) -> Option<String> {
    let block: Vec<u8> = frames
        .iter()
        .filter(|(h, _)| h.stream == stream && h.kind == kind::HEADERS)
        .flat_map(|(_, p)| p.clone())
        .collect();
    let at = block.windows(11).position(|w| w == b"grpc-status")?;
    let len = block[at + 11] as usize;
    Some(String::from_utf8_lossy(&block[at + 12..at + 12 + len]).into())
}

#[test]
fn hostile_http2_clients_get_errors_and_the_member_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("abuse", dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let e = m.endpoint();

    // Garbage where the first frame should be: not SETTINGS, a connection error.
    let mut raw = Raw::open(&e, &[]);
    raw.frames(Duration::from_millis(300));
    raw.send(&[0xff; 4096]);
    assert!(matches!(raw.goaway(), 0x1 | 0x6), "PROTOCOL_ERROR or FRAME_SIZE_ERROR");
    serves(&e);

    // A frame larger than SETTINGS_MAX_FRAME_SIZE.
    let mut raw = Raw::open(&e, &[]);
    let mut big = Vec::new();
    frame::write(&mut big, kind::DATA, 0, 1, &vec![0; 20_000]);
    raw.send(&big);
    assert_eq!(raw.goaway(), Reason::FrameSizeError as u32);
    serves(&e);

    // A header block that never ends: CONTINUATION after CONTINUATION.
    let mut raw = Raw::open(&e, &[]);
    let mut out = Vec::new();
    frame::write(&mut out, kind::HEADERS, 0, 1, &grpc_headers("/etcdserverpb.KV/Range"));
    raw.send(&out);
    let chunk = {
        let mut c = Vec::new();
        frame::write(&mut c, kind::CONTINUATION, 0, 1, &[0x40; 16_000]);
        c
    };
    for _ in 0..1000 {
        if !raw.send(&chunk) {
            break;
        }
    }
    assert_eq!(raw.goaway(), Reason::EnhanceYourCalm as u32);
    serves(&e);

    // HPACK: a table size update past the 4096 bytes we allow.
    let mut raw = Raw::open(&e, &[]);
    let mut out = Vec::new();
    let mut update = vec![0x3f, 0xe1, 0xff, 0x03]; // size update to 65,536
    update.extend(grpc_headers("/etcdserverpb.KV/Range"));
    frame::write(&mut out, kind::HEADERS, flag::END_HEADERS, 1, &update);
    raw.send(&out);
    assert_eq!(raw.goaway(), Reason::CompressionError as u32);
    serves(&e);

    // Rapid reset: 100,000 streams opened and reset at once. Nothing more than the stream
    // limit is ever in flight; the connection may stay or be sent away, the member serves.
    let mut raw = Raw::open(&e, &[]);
    let mut out = Vec::new();
    for i in 0..100_000u32 {
        let id = 2 * i + 1;
        out.extend(headers_frame(id, false, "/etcdserverpb.KV/Range"));
        frame::rst_stream(&mut out, id, Reason::Cancel);
        if out.len() > 1 << 20 {
            if !raw.send(&out) {
                break;
            }
            out.clear();
        }
    }
    raw.send(&out);
    serves(&e);
    drop(raw);

    // Broken gRPC messages on a healthy connection: a truncated one, and bytes that are not
    // protobuf; each its own status, the connection goes on.
    let mut raw = Raw::open(&e, &[]);
    let mut out = headers_frame(1, false, "/etcdserverpb.KV/Range");
    frame::write(&mut out, kind::DATA, flag::END_STREAM, 1, &[0, 0, 0, 0, 10, 1, 2, 3]);
    out.extend(headers_frame(3, false, "/etcdserverpb.KV/Range"));
    frame::write(&mut out, kind::DATA, flag::END_STREAM, 3, &[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
    out.extend(headers_frame(5, false, "/etcdserverpb.Watch/Watch"));
    frame::write(&mut out, kind::DATA, 0, 5, &[0, 0, 0, 0, 2, 0x0a, 0x7f]);
    raw.send(&out);
    let frames = raw.frames(Duration::from_secs(3));
    assert_eq!(grpc_status(&frames, 1).as_deref(), Some("2"), "truncated: Unknown");
    assert_eq!(grpc_status(&frames, 3).as_deref(), Some("13"), "not protobuf: Internal");
    assert_eq!(grpc_status(&frames, 5).as_deref(), Some("13"), "a watch request that does not decode");
    serves(&e);
}

#[test]
fn a_watch_stream_that_never_reads_does_not_hold_up_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("slow-reader", dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let e = m.endpoint();

    // A watch on every key whose client grants no credit at all, and never reads.
    let mut raw = Raw::open(&e, &[(setting::INITIAL_WINDOW_SIZE, 0)]);
    open_watch(&mut raw);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watchers(&e) != 1 {
        assert!(Instant::now() < deadline, "the watch was never created");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 12 MiB of changes: three times what one stream may queue. Writes go on; the watcher
    // falls behind and waits on disk instead of in memory.
    let client = m.client();
    let value = "x".repeat(512 * 1024);
    for i in 0..24 {
        client.put(&PutRequest::new(format!("big/{i}"), value.clone())).expect("writes go on");
    }
    serves(&e);
    assert_eq!(watchers(&e), 1, "the slow watcher is still there");
    drop(raw);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watchers(&e) != 0 {
        assert!(Instant::now() < deadline, "the watcher outlived its connection");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens a watch on every key over `raw` as stream 1.
fn open_watch(raw: &mut Raw) {
    let create = [0x0a, 0x06, 0x0a, 0x01, 0x00, 0x12, 0x01, 0x00]; // create_request{key: "\0", range_end: "\0"}
    let mut out = headers_frame(1, false, "/etcdserverpb.Watch/Watch");
    let mut message = vec![0, 0, 0, 0, create.len() as u8];
    message.extend_from_slice(&create);
    frame::write(&mut out, kind::DATA, 0, 1, &message);
    raw.send(&out);
}

#[test]
fn a_client_that_answers_no_keepalive_ping_is_dropped_with_its_watch_and_one_that_answers_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("keepalive", dir.path());
    m.spawn(&dir.path().join("data"), "", &["--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "1s"]);
    m.wait_healthy(Duration::from_secs(20));
    let e = m.endpoint();

    // Two watch clients, as a client whose host vanished (no FIN, no ack) and a live one.
    let (mut gone, mut live) = (Raw::open(&e, &[]), Raw::open(&e, &[]));
    open_watch(&mut gone);
    open_watch(&mut live);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watchers(&e) != 2 {
        assert!(Instant::now() < deadline, "the watches were never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The live client acks every ping; the silent one reads them and answers none.
    let (mut gone_pinged, deadline) = (false, Instant::now() + Duration::from_secs(15));
    while !gone_pinged || watchers(&e) != 1 {
        assert!(Instant::now() < deadline, "pinged: {gone_pinged}, watchers: {} (want 1)", watchers(&e));
        let ping = |h: &Head, p: &Vec<u8>| h.kind == kind::PING && !h.has(flag::ACK) && p.len() == 8;
        gone_pinged |= gone.frames(Duration::from_millis(100)).iter().any(|(h, p)| ping(h, p));
        for (head, payload) in live.frames(Duration::from_millis(100)) {
            if ping(&head, &payload) {
                let mut ack = Vec::new();
                frame::write(&mut ack, kind::PING, flag::ACK, 0, &payload);
                assert!(live.send(&ack), "the live client was dropped");
            }
        }
    }
    assert_eq!(gone.frames(Duration::from_secs(2)).len(), 0, "the silent client's connection is closed");
    assert!(live.send(&{
        let mut ping = Vec::new();
        frame::write(&mut ping, kind::PING, 0, 0, &[7; 8]);
        ping
    }));
    let answered = live.frames(Duration::from_secs(2));
    assert!(
        answered.iter().any(|(h, p)| h.kind == kind::PING && h.has(flag::ACK) && p == &[7; 8]),
        "the live client is served"
    );
    serves(&e);
}

#[test]
fn a_reset_lock_stream_leaves_the_queue_and_its_connection_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("reset", dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let client = m.client();
    let lease = || client.lease_grant(&LeaseGrantRequest { ttl: 60, id: 0 }).unwrap().id;
    let holder = LockRequest { name: b"rst".to_vec(), lease: lease() };
    client.lock(&holder, &Cancel::never()).unwrap();
    let queued = || client.range(&RangeRequest::prefix("rst/")).unwrap().kvs.len();

    // A second lock waits on stream 1, then the client resets it (grpc-go's cancel).
    let waiter = LockRequest { name: b"rst".to_vec(), lease: lease() }.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(waiter.len() as u32).to_be_bytes());
    body.extend_from_slice(&waiter);
    let mut raw = Raw::open(&m.endpoint(), &[]);
    let mut out = headers_frame(1, false, "/v3lockpb.Lock/Lock");
    frame::write(&mut out, kind::DATA, flag::END_STREAM, 1, &body);
    raw.send(&out);
    assert!(crate::harness::eventually(Duration::from_secs(10), || queued() == 2));
    let mut reset = Vec::new();
    frame::write(&mut reset, kind::RST_STREAM, 0, 1, &(Reason::Cancel as u32).to_be_bytes());
    raw.send(&reset);
    assert!(crate::harness::eventually(Duration::from_secs(10), || queued() == 1), "the reset waiter's key stays");

    // The connection goes on: a lock of another name on stream 3 is answered.
    let other = LockRequest { name: b"other".to_vec(), lease: lease() }.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(other.len() as u32).to_be_bytes());
    body.extend_from_slice(&other);
    let mut out = headers_frame(3, false, "/v3lockpb.Lock/Lock");
    frame::write(&mut out, kind::DATA, flag::END_STREAM, 3, &body);
    raw.send(&out);
    let frames = raw.frames(Duration::from_secs(5));
    assert_eq!(grpc_status(&frames, 3).as_deref(), Some("0"));
    assert_eq!(grpc_status(&frames, 1), None, "a reset stream is not answered");
}
