//! The peer transport: raft messages, forwarded lease calls and snapshots between members over
//! TCP (DESIGN §5), in the frames of [`frame`].
//!
//! Threads and queues:
//! - `raftkv-peer-<id>`, one writer per peer, owns the outgoing connection to it. The raft
//!   thread (and request forwarders) enqueue on its bounded queue without blocking; a full
//!   queue drops the message and reports the peer unreachable, and raft-rs retransmits.
//!   A broken connection is redialled with backoff (50 ms doubling to 1 s).
//! - `raftkv-peer-accept` accepts connections; each gets a reader, `raftkv-peer-rx`, which
//!   checks the hello (magic, cluster id, addressee, a known sender) and every frame (length
//!   cap, kind, decode, sender), steps raft messages into the raft thread through the events
//!   channel, and answers forwarded requests. A bad or foreign peer is refused with one log
//!   line; nothing it sends can panic or stall the member.
//! - `raftkv-snap-send` streams one snapshot file on a connection of its own and reports the
//!   outcome to raft (`report_snapshot`).
//! - [`Transport::call_direct`] runs on its caller's thread: one request on a connection of
//!   its own, answered on it by the peer's `raftkv-peer-rx` (the corruption checks' HashKV).
//!
//! TLS (`tls.rs`): with `https://` peer URLs every connection is TLS; the accepting side
//! handshakes on its `raftkv-peer-rx` thread within the hello timeout, before the hello is
//! read, so a member without a certificate the trusted CA signed never gets to send a frame.
//!
//! Tests can cut this member off from chosen peers ([`Transport::isolate`]): frames to them,
//! from them or both are dropped as if the network lost them (one way only is how a link that
//! loses a direction, or a leader that can send but never hears back, is staged).

pub mod frame;
mod tls;

pub use tls::PeerTls;

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};

use crate::config::url_addr;
use crate::metrics::{IntCounter, IntCounterVec, Registry};
use crate::pb::{MembershipRecord, PeerRequest, PeerResponse};
use crate::snapshot::SnapshotFiles;
use crate::thread::spawn_named;
use crate::tls::Stream;
use crate::{Error, Result};
use frame::{Hello, Kind, Purpose, Verdict};

/// Messages queued for one peer. Beyond this the peer is not keeping up (or is down) and raft
/// is better told so than made to wait.
const PEER_QUEUE_MAX: usize = 4096;
/// Messages written per flush.
const WRITE_BATCH_MAX: usize = 256;
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// A peer that accepts no bytes for this long is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Time for a new connection to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a receiver may take to store and check a snapshot before it acks.
const SNAPSHOT_ACK_TIMEOUT: Duration = Duration::from_secs(120);
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// An incoming connection with no frame for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the transport delivers to the raft thread, on the events channel it is started with
/// (the sink it owns the definition of, as etcd's `rafthttp.Raft`).
pub enum PeerEvent {
    /// A message from a peer, already checked to be from a member and addressed to this one.
    Step(Message),
    /// Messages to this peer were dropped (queue full, connection down): raft-rs slows down
    /// and probes instead of streaming.
    Unreachable(u64),
    /// A snapshot sent to `to` arrived and was accepted (`ok`), or did not.
    SnapshotStatus { to: u64, ok: bool },
    /// Member `by` refused this member as removed from the cluster: it must stop.
    Removed { by: u64 },
}

/// What the member offers its peers: answers to forwarded requests and membership queries.
pub trait PeerServices: Send + Sync {
    fn handle(&self, from: u64, request: PeerRequest) -> PeerResponse;
    fn membership(&self) -> MembershipRecord;
}

/// Which frames a test partition drops (fault injection), seen from this member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Frames this member sends to the peer.
    Out,
    /// Frames the peer sends to this member.
    In,
    Both,
}

/// The peers a test cut off, per direction.
#[derive(Default)]
struct Isolation {
    out: HashSet<u64>,
    inbound: HashSet<u64>,
}

enum Outbound {
    Raft(Message),
    Frame(Kind, Vec<u8>),
}

struct Peer {
    urls: Vec<String>,
    tx: Sender<Outbound>,
    thread: JoinHandle<()>,
}

pub struct Transport {
    me: u64,
    cluster_id: u64,
    events: Sender<PeerEvent>,
    snapshots: Arc<SnapshotFiles>,
    services: Arc<dyn PeerServices>,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Members allowed to connect: the current members other than this one.
    known: RwLock<HashSet<u64>>,
    /// Fault injection: peers whose frames are dropped, by direction.
    isolated: RwLock<Isolation>,
    pending: Mutex<HashMap<u64, Sender<PeerResponse>>>,
    next_request: AtomicU64,
    stopped: AtomicBool,
    local_addr: Option<SocketAddr>,
    /// The accept thread and every reader, joined at stop.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Accepted connections, shut down at stop so their readers return.
    accepted: Mutex<Vec<TcpStream>>,
    /// Peer TLS, when this member's peer URLs (or its peers') are `https://`.
    tls: Option<PeerTls>,
    metrics: PeerMetrics,
}

/// etcd's rafthttp series, by peer (`To`/`From`: the member id in hex, as etcd's
/// `types.ID.String()`). Each writer and reader resolves its peer's children once.
struct PeerMetrics {
    sent_bytes: IntCounterVec,
    received_bytes: IntCounterVec,
    sent_failures: IntCounterVec,
    received_failures: IntCounterVec,
}

impl Default for PeerMetrics {
    fn default() -> PeerMetrics {
        use crate::metrics::counter_vec;
        PeerMetrics {
            sent_bytes: counter_vec(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            received_bytes: counter_vec(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            sent_failures: counter_vec(
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
                &["To"],
            ),
            received_failures: counter_vec(
                "etcd_network_peer_received_failures_total",
                "The total number of receive failures from peers.",
                &["From"],
            ),
        }
    }
}

impl PeerMetrics {
    fn child(vec: &IntCounterVec, peer: u64) -> IntCounter {
        vec.with_label_values(&[&format!("{peer:x}")])
    }
}

impl Transport {
    /// Starts the transport; with a listener it also accepts peers' connections.
    pub fn start(
        me: u64,
        cluster_id: u64,
        listener: Option<TcpListener>,
        events: Sender<PeerEvent>,
        snapshots: Arc<SnapshotFiles>,
        services: Arc<dyn PeerServices>,
        tls: Option<PeerTls>,
    ) -> Result<Arc<Transport>> {
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let transport = Arc::new(Transport {
            me,
            cluster_id,
            events,
            snapshots,
            services,
            peers: Mutex::new(HashMap::new()),
            known: RwLock::new(HashSet::new()),
            isolated: RwLock::new(Isolation::default()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
            local_addr,
            threads: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
            tls,
            metrics: PeerMetrics::default(),
        });
        if let Some(listener) = listener {
            let t = transport.clone();
            let thread = spawn_named("raftkv-peer-accept", move || t.accept_loop(listener))?;
            transport.threads.lock().push(thread);
        }
        Ok(transport)
    }

    pub fn register_metrics(&self, registry: &Registry) {
        let m = &self.metrics;
        for vec in [&m.sent_bytes, &m.received_bytes, &m.sent_failures, &m.received_failures] {
            registry.register(vec.clone());
        }
    }

    /// The address peers connect to, if this member listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Makes the set of peers `members` (id, peer URLs), this member excluded: starts writers
    /// for new ones, stops those of removed ones, redials changed URLs.
    pub fn set_peers(self: &Arc<Self>, members: &[(u64, Vec<String>)]) {
        let wanted: HashMap<u64, &Vec<String>> =
            members.iter().filter(|(id, _)| *id != self.me).map(|(id, urls)| (*id, urls)).collect();
        *self.known.write() = wanted.keys().copied().collect();
        let mut peers = self.peers.lock();
        let stale: Vec<u64> = peers
            .iter()
            .filter(|(id, p)| wanted.get(id).is_none_or(|urls| **urls != p.urls))
            .map(|(id, _)| *id)
            .collect();
        let stale: Vec<Peer> = stale.iter().filter_map(|id| peers.remove(id)).collect();
        if !stale.is_empty() {
            // Joined without the lock: a writer stuck on a dead peer (up to its write timeout)
            // must not hold up the raft thread's sends to the others.
            drop(peers);
            for peer in stale {
                drop(peer.tx);
                let _ = peer.thread.join();
            }
            peers = self.peers.lock();
        }
        for (id, urls) in wanted {
            if peers.contains_key(&id) || self.stopped.load(Ordering::Acquire) {
                continue;
            }
            let (tx, rx) = channel::bounded(PEER_QUEUE_MAX);
            let t = self.clone();
            let urls = urls.clone();
            let writer_urls = urls.clone();
            match spawn_named(format!("raftkv-peer-{}", short_id(id)), move || t.write_loop(id, writer_urls, rx)) {
                Ok(thread) => {
                    peers.insert(id, Peer { urls, tx, thread });
                }
                Err(e) => log::error!("peer transport: {e}"),
            }
        }
    }

    /// Sends raft messages; never blocks. Returns the peers that could not take one, which the
    /// raft thread reports unreachable.
    pub fn send(self: &Arc<Self>, msgs: Vec<Message>) -> Vec<u64> {
        let mut unreachable = Vec::new();
        for msg in msgs {
            let to = msg.to;
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(msg);
            } else if !self.enqueue(to, Outbound::Raft(msg)) {
                unreachable.push(to);
            }
        }
        unreachable
    }

    fn enqueue(&self, to: u64, out: Outbound) -> bool {
        let peers = self.peers.lock();
        let Some(peer) = peers.get(&to) else { return false };
        match peer.tx.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::debug!("peer transport: queue to {to:x} full; message dropped");
                // Rare (a peer not keeping up), so the child is looked up here.
                PeerMetrics::child(&self.metrics.sent_failures, to).inc();
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Asks member `to` (the leader) to answer `request`.
    pub fn call(&self, to: u64, request: &PeerRequest, timeout: Duration) -> Result<PeerResponse> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel::bounded(1);
        self.pending.lock().insert(id, tx);
        let payload = frame::with_u64(id, &request.encode_to_vec());
        let outcome = if self.enqueue(to, Outbound::Frame(Kind::Request, payload)) {
            rx.recv_timeout(timeout).map_err(|_| Error::Timeout)
        } else {
            Err(Error::Timeout)
        };
        self.pending.lock().remove(&id);
        outcome
    }

    /// Asks member `to` on a connection of its own, which carries the answer back, as etcd
    /// makes its peer HTTP calls: for calls any member answers (HashKV). On the stream
    /// connections, which are one-way, the answer would travel on `to`'s stream back to this
    /// member, which a member that has just started does not have yet (`to`'s writer redials
    /// with backoff and drops what comes meanwhile); and a connection of its own fails at once
    /// when `to` is down. Takes at most the dial, the hello and `timeout` for the answer.
    pub fn call_direct(&self, to: u64, request: &PeerRequest, timeout: Duration) -> Result<PeerResponse> {
        let unreachable = |reason: String| Error::PeerUnreachable { peer: to, reason };
        if self.drops_to(to) {
            return Err(unreachable("cut off by the test partition".into()));
        }
        let urls =
            self.peers.lock().get(&to).map(|p| p.urls.clone()).ok_or_else(|| unreachable("not a peer".into()))?;
        let answered = (|| -> std::io::Result<PeerResponse> {
            let mut stream = self.dial(to, &urls, Purpose::Call)?;
            stream.tcp().set_read_timeout(Some(timeout))?;
            // One call per connection: the id only keeps the frame the stream's `Request`.
            frame::write_frame(&mut stream, Kind::Request, &frame::with_u64(0, &request.encode_to_vec()))?;
            match frame::read_frame(&mut stream)? {
                (Kind::Response, payload) => PeerResponse::decode(frame::split_u64(&payload)?.1).map_err(invalid),
                (other, _) => Err(invalid(format!("answered a call with {other:?}"))),
            }
        })();
        answered.map_err(|e| unreachable(e.to_string()))
    }

    /// Test hook: drops every frame to `peers`, from them, or both, until [`Transport::heal`].
    pub fn isolate(&self, peers: &[u64], direction: Direction) {
        let mut isolated = self.isolated.write();
        if direction != Direction::In {
            isolated.out.extend(peers.iter().copied());
        }
        if direction != Direction::Out {
            isolated.inbound.extend(peers.iter().copied());
        }
    }

    pub fn heal(&self) {
        *self.isolated.write() = Isolation::default();
    }

    fn drops_to(&self, peer: u64) -> bool {
        self.isolated.read().out.contains(&peer)
    }

    fn drops_from(&self, peer: u64) -> bool {
        self.isolated.read().inbound.contains(&peer)
    }

    /// Stops every thread of the transport and waits for them.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let peers: Vec<Peer> = self.peers.lock().drain().map(|(_, p)| p).collect();
        for peer in peers {
            drop(peer.tx);
            let _ = peer.thread.join();
        }
        if let Some(addr) = self.local_addr {
            // Wakes the accept loop, which then sees `stopped`.
            let _ = TcpStream::connect_timeout(&addr, DIAL_TIMEOUT);
        }
        for stream in self.accepted.lock().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    // ---- Outgoing ----

    fn dial(&self, to: u64, urls: &[String], purpose: Purpose) -> std::io::Result<Stream> {
        let mut last_err = std::io::Error::other("no peer URL");
        for url in urls {
            let addrs = match url_addr(url) {
                Ok(addrs) => addrs,
                Err(e) => {
                    last_err = e;
                    continue;
                }
            };
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, DIAL_TIMEOUT) {
                    Ok(tcp) => {
                        tcp.set_nodelay(true)?;
                        tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
                        tcp.set_read_timeout(Some(HELLO_TIMEOUT))?;
                        let mut stream = match PeerTls::connect(self.tls.as_ref(), tcp, url) {
                            Ok(stream) => stream,
                            Err(e) => {
                                last_err = std::io::Error::new(e.kind(), format!("tls: {e}"));
                                continue;
                            }
                        };
                        Hello { cluster_id: self.cluster_id, from: self.me, to, purpose }.write(&mut stream)?;
                        return match Verdict::read(&mut stream)? {
                            Verdict::Welcome => Ok(stream),
                            Verdict::Removed => {
                                // Raft stops the member: it can never take part again.
                                let _ = self.events.try_send(PeerEvent::Removed { by: to });
                                Err(std::io::Error::other("this member was removed from the cluster"))
                            }
                            Verdict::Refused(reason) => Err(std::io::Error::other(format!("refused: {reason}"))),
                        };
                    }
                    Err(e) => last_err = e,
                }
            }
        }
        Err(last_err)
    }

    fn write_loop(&self, to: u64, urls: Vec<String>, rx: Receiver<Outbound>) {
        let mut conn: Option<BufWriter<Stream>> = None;
        let mut backoff = BACKOFF_MIN;
        let mut retry_at = Instant::now();
        let mut down_since: Option<Instant> = None;
        let sent_bytes = PeerMetrics::child(&self.metrics.sent_bytes, to);
        let sent_failures = PeerMetrics::child(&self.metrics.sent_failures, to);
        while let Ok(first) = rx.recv() {
            let batch: Vec<Outbound> = std::iter::once(first).chain(rx.try_iter().take(WRITE_BATCH_MAX - 1)).collect();
            if self.drops_to(to) {
                continue;
            }
            if conn.is_none() {
                if Instant::now() < retry_at {
                    sent_failures.inc_by(batch.len() as u64);
                    self.report_unreachable(to);
                    continue;
                }
                match self.dial(to, &urls, Purpose::Stream) {
                    Ok(stream) => {
                        if let Some(since) = down_since.take() {
                            log::info!("peer transport: connected to {to:x} again after {:?}", since.elapsed());
                        }
                        backoff = BACKOFF_MIN;
                        conn = Some(BufWriter::with_capacity(64 << 10, stream));
                    }
                    Err(e) => {
                        if down_since.is_none() {
                            log::warn!("peer transport: cannot reach {to:x} at {}: {e}", urls.join(","));
                            down_since = Some(Instant::now());
                        }
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        sent_failures.inc_by(batch.len() as u64);
                        self.report_unreachable(to);
                        continue;
                    }
                }
            }
            let w = conn.as_mut().expect("connected above");
            let mut bytes = 0;
            let written =
                batch.iter().try_for_each(|out| write_outbound(w, out).map(|n| bytes += n)).and_then(|()| w.flush());
            match written {
                Ok(()) => sent_bytes.inc_by(bytes),
                Err(e) => {
                    log::warn!("peer transport: connection to {to:x} lost: {e}");
                    sent_failures.inc_by(batch.len() as u64);
                    down_since = Some(Instant::now());
                    conn = None;
                    self.report_unreachable(to);
                }
            }
        }
    }

    fn report_unreachable(&self, to: u64) {
        let _ = self.events.try_send(PeerEvent::Unreachable(to));
    }

    fn send_snapshot(self: &Arc<Self>, msg: Message) {
        let to = msg.to;
        let urls = self.peers.lock().get(&to).map(|p| p.urls.clone());
        let t = self.clone();
        let spawned = spawn_named("raftkv-snap-send", move || {
            let meta = msg.get_snapshot().get_metadata().clone();
            let outcome = match (urls, t.snapshots.made(&meta)) {
                (None, _) => Err(std::io::Error::other("not a peer")),
                (_, None) => Err(std::io::Error::other("snapshot file gone")),
                (Some(urls), Some(file)) => t.stream_snapshot(to, &urls, &msg, &file.path),
            };
            match &outcome {
                Ok(()) => log::info!("peer transport: sent snapshot at index {} to {to:x}", meta.index),
                Err(e) => log::warn!("peer transport: snapshot at index {} to {to:x} failed: {e}", meta.index),
            }
            let _ = t.events.send(PeerEvent::SnapshotStatus { to, ok: outcome.is_ok() });
        });
        if let Err(e) = spawned {
            log::error!("peer transport: {e}");
            let _ = self.events.try_send(PeerEvent::SnapshotStatus { to, ok: false });
        }
    }

    fn stream_snapshot(&self, to: u64, urls: &[String], msg: &Message, path: &std::path::Path) -> std::io::Result<()> {
        if self.drops_to(to) {
            return Err(std::io::Error::other("isolated"));
        }
        let stream = self.dial(to, urls, Purpose::Snapshot)?;
        stream.tcp().set_read_timeout(Some(SNAPSHOT_ACK_TIMEOUT))?;
        let mut w = BufWriter::new(stream.try_clone()?);
        frame::write_frame(&mut w, Kind::Raft, &msg.write_to_bytes().map_err(std::io::Error::other)?)?;
        let mut file = std::fs::File::open(path)?;
        let mut chunk = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            frame::write_frame(&mut w, Kind::SnapshotChunk, &chunk[..n])?;
        }
        frame::write_frame(&mut w, Kind::SnapshotEnd, &[])?;
        w.flush()?;
        match frame::read_frame(&mut BufReader::new(stream))? {
            (Kind::SnapshotAck, ack) if ack == [1] => Ok(()),
            _ => Err(std::io::Error::other("receiver refused the snapshot")),
        }
    }

    // ---- Incoming ----

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    log::warn!("peer transport: accept: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let Ok(clone) = stream.try_clone() else { continue };
            self.accepted.lock().push(clone);
            let t = self.clone();
            match spawn_named("raftkv-peer-rx", move || t.serve(stream)) {
                Ok(thread) => {
                    let mut threads = self.threads.lock();
                    threads.retain(|t| !t.is_finished());
                    threads.push(thread);
                }
                Err(e) => log::error!("peer transport: {e}"),
            }
        }
    }

    fn serve(&self, tcp: TcpStream) {
        let peer_addr = tcp.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
        let outcome = tcp
            .set_read_timeout(Some(HELLO_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(WRITE_TIMEOUT)))
            .and_then(|()| tcp.try_clone());
        let stream = match outcome.and_then(|tcp| PeerTls::accept(self.tls.as_ref(), tcp)) {
            Ok(stream) => stream,
            Err(e) => {
                // etcd's `HandshakeFailure` log line.
                log::warn!("peer transport: rejected connection from {peer_addr:?} (error {:?})", e.to_string());
                let _ = tcp.shutdown(Shutdown::Both);
                return self.forget_accepted(&tcp);
            }
        };
        if let Err(e) = self.serve_connection(&stream) {
            if ended_quietly(&e) || self.stopped.load(Ordering::Acquire) {
                log::debug!("peer transport: connection from {peer_addr} ended: {e}");
            } else {
                log::warn!("peer transport: connection from {peer_addr} refused or closed: {e}");
            }
        }
        stream.close();
        self.forget_accepted(&tcp);
    }

    fn forget_accepted(&self, tcp: &TcpStream) {
        if let Ok(local) = tcp.local_addr() {
            let remote = tcp.peer_addr().ok();
            self.accepted.lock().retain(|s| s.local_addr().ok() != Some(local) || s.peer_addr().ok() != remote);
        }
    }

    fn serve_connection(&self, stream: &Stream) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(64 << 10, stream.try_clone()?);
        let hello = Hello::read(&mut r)?;
        if hello.purpose == Purpose::Query {
            let record = self.services.membership();
            let mut w = stream.try_clone()?;
            return frame::write_frame(
                &mut w,
                Kind::Membership,
                &frame::with_u64(self.cluster_id, &record.encode_to_vec()),
            );
        }
        let verdict = self.verdict(&hello);
        verdict.write(&mut stream.try_clone()?)?;
        match verdict {
            Verdict::Welcome => {}
            Verdict::Removed => return Err(invalid(format!("refused {:x}: removed from the cluster", hello.from))),
            Verdict::Refused(reason) => return Err(invalid(reason)),
        }
        // A connection silent this long is dead or unused (followers talk to each other only
        // during elections); closing it frees this thread, and the sender redials when needed.
        stream.tcp().set_read_timeout(Some(IDLE_TIMEOUT))?;
        match hello.purpose {
            // As lost on the way: the sender hears no ack and reports the snapshot failed.
            Purpose::Snapshot if self.drops_from(hello.from) => Err(std::io::Error::other("isolated")),
            Purpose::Snapshot => self.receive_snapshot(hello.from, &mut r, stream),
            Purpose::Call => self.answer_call(hello.from, &mut r, stream),
            _ => {
                let received = self.receive_stream(hello.from, &mut r);
                if received.as_ref().is_err_and(|e| !ended_quietly(e)) {
                    PeerMetrics::child(&self.metrics.received_failures, hello.from).inc();
                }
                received
            }
        }
    }

    fn verdict(&self, hello: &Hello) -> Verdict {
        if hello.cluster_id != self.cluster_id {
            return Verdict::Refused(format!(
                "cluster {:x} is not this cluster ({:x})",
                hello.cluster_id, self.cluster_id
            ));
        }
        if hello.to != self.me {
            return Verdict::Refused(format!("addressed to member {:x}, this is {:x}", hello.to, self.me));
        }
        if !self.known.read().contains(&hello.from) {
            if self.services.membership().removed.contains(&hello.from) {
                return Verdict::Removed;
            }
            return Verdict::Refused(format!("sender {:x} is not a member of this cluster", hello.from));
        }
        Verdict::Welcome
    }

    fn receive_stream(&self, from: u64, r: &mut impl Read) -> std::io::Result<()> {
        let received_bytes = PeerMetrics::child(&self.metrics.received_bytes, from);
        loop {
            let (kind, payload) = frame::read_frame(r)?;
            received_bytes.inc_by(frame::size(&payload));
            if self.stopped.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.drops_from(from) {
                continue;
            }
            // A member removed while connected is cut off here; its redial hears why.
            if !self.known.read().contains(&from) {
                return Err(invalid(format!("sender {from:x} is no longer a member")));
            }
            match kind {
                Kind::Raft => {
                    let msg = self.decode_message(from, &payload)?;
                    if self.events.send(PeerEvent::Step(msg)).is_err() {
                        return Ok(());
                    }
                }
                Kind::Request => {
                    let answer = self.answer(from, &payload)?;
                    self.enqueue(from, Outbound::Frame(Kind::Response, answer));
                }
                Kind::Response => {
                    let (id, body) = frame::split_u64(&payload)?;
                    let response = PeerResponse::decode(body).map_err(invalid)?;
                    if let Some(waiter) = self.pending.lock().remove(&id) {
                        let _ = waiter.try_send(response);
                    }
                }
                other => return Err(invalid(format!("unexpected {other:?} frame on a message stream"))),
            }
        }
    }

    /// The `Response` payload for a `Request` payload from `from`, under the same id.
    fn answer(&self, from: u64, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        let (id, body) = frame::split_u64(payload)?;
        let request = PeerRequest::decode(body).map_err(invalid)?;
        Ok(frame::with_u64(id, &self.services.handle(from, request).encode_to_vec()))
    }

    /// A [`Purpose::Call`] connection: one request, its answer back on the connection, closed.
    fn answer_call(&self, from: u64, r: &mut impl Read, stream: &Stream) -> std::io::Result<()> {
        let (kind, payload) = frame::read_frame(r)?;
        if kind != Kind::Request {
            return Err(invalid(format!("a call starts with {kind:?}")));
        }
        if self.drops_from(from) {
            return Ok(());
        }
        frame::write_frame(&mut stream.try_clone()?, Kind::Response, &self.answer(from, &payload)?)
    }

    fn decode_message(&self, from: u64, payload: &[u8]) -> std::io::Result<Message> {
        let msg = Message::parse_from_bytes(payload).map_err(invalid)?;
        if msg.from != from || msg.to != self.me {
            return Err(invalid(format!("message from {:x} to {:x} on {from:x}'s connection", msg.from, msg.to)));
        }
        Ok(msg)
    }

    fn receive_snapshot(&self, from: u64, r: &mut impl Read, stream: &Stream) -> std::io::Result<()> {
        let (kind, payload) = frame::read_frame(r)?;
        let msg = match kind {
            Kind::Raft => self.decode_message(from, &payload)?,
            other => return Err(invalid(format!("snapshot stream starts with {other:?}"))),
        };
        if msg.get_msg_type() != MessageType::MsgSnapshot {
            return Err(invalid(format!("snapshot stream carries {:?}", msg.get_msg_type())));
        }
        let meta = msg.get_snapshot().get_metadata().clone();
        let tmp = self.snapshots.receiving_path(&meta);
        let received = (|| -> Result<()> {
            let mut file = BufWriter::new(std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?);
            loop {
                match frame::read_frame(r).map_err(|e| io_err(&tmp, e))? {
                    (Kind::SnapshotChunk, chunk) => file.write_all(&chunk).map_err(|e| io_err(&tmp, e))?,
                    (Kind::SnapshotEnd, _) => break,
                    (other, _) => {
                        return Err(io_err(&tmp, invalid(format!("unexpected {other:?} frame in a snapshot"))))
                    }
                }
            }
            let file = file.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io_err(&tmp, e))?;
            self.snapshots.finish_receiving(&meta)?;
            Ok(())
        })();
        let mut w = stream.try_clone()?;
        match received {
            Ok(()) => {
                log::info!(
                    "peer transport: received snapshot at index {} (term {}) from {from:x}",
                    meta.index,
                    meta.term
                );
                let stepped = self.events.send(PeerEvent::Step(msg)).is_ok();
                frame::write_frame(&mut w, Kind::SnapshotAck, &[u8::from(stepped)])
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let _ = frame::write_frame(&mut w, Kind::SnapshotAck, &[0]);
                Err(invalid(e.to_string()))
            }
        }
    }
}

/// Asks the members at `urls` for the cluster id and membership: how a member started with
/// `--initial-cluster-state existing` learns the cluster it was added to.
pub fn query_membership(urls: &[String], tls: Option<&PeerTls>) -> Result<(u64, MembershipRecord)> {
    let mut last = String::from("no peer URLs in --initial-cluster");
    for url in urls {
        let outcome = (|| -> std::io::Result<(u64, MembershipRecord)> {
            let addr = url_addr(url)?.next().ok_or_else(|| std::io::Error::other("no address"))?;
            let tcp = TcpStream::connect_timeout(&addr, DIAL_TIMEOUT)?;
            tcp.set_read_timeout(Some(HELLO_TIMEOUT))?;
            tcp.set_write_timeout(Some(HELLO_TIMEOUT))?;
            let mut stream = PeerTls::connect(tls, tcp, url)?;
            Hello { cluster_id: 0, from: 0, to: 0, purpose: Purpose::Query }.write(&mut stream)?;
            match frame::read_frame(&mut stream)? {
                (Kind::Membership, payload) => {
                    let (cluster_id, body) = frame::split_u64(&payload)?;
                    Ok((cluster_id, MembershipRecord::decode(body).map_err(invalid)?))
                }
                (other, _) => Err(invalid(format!("answered a query with {other:?}"))),
            }
        })();
        match outcome {
            Ok(answer) if answer.0 != 0 => return Ok(answer),
            Ok(_) => last = format!("{url}: member has no cluster yet"),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(Error::Config(format!("cannot fetch the cluster from its members: {last}")))
}

/// Writes one frame; returns its size on the wire.
fn write_outbound(w: &mut impl Write, out: &Outbound) -> std::io::Result<u64> {
    match out {
        Outbound::Raft(msg) => {
            let payload = msg.write_to_bytes().map_err(std::io::Error::other)?;
            frame::write_frame(w, Kind::Raft, &payload).map(|()| frame::size(&payload))
        }
        Outbound::Frame(kind, payload) => frame::write_frame(w, *kind, payload).map(|()| frame::size(payload)),
    }
}

/// The first 4 hex digits of a member id: enough to tell peers apart in `top -H`, within the
/// 15-byte thread name limit.
fn short_id(id: u64) -> String {
    format!("{:04x}", id >> 48)
}

/// A connection whose peer hung up or went quiet (the idle timeout): no failure of either side.
fn ended_quietly(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{TimedOut, UnexpectedEof, WouldBlock};
    matches!(e.kind(), UnexpectedEof | WouldBlock | TimedOut)
}

fn invalid(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    crate::storage::Error::io(path, source).into()
}
