//! What runs beside the soak's traffic: the recorded watches of a segment, the lease keeper
//! and the compactor (both for the whole run, not recorded: neither changes a revision).
//!
//! - A [`WatchSpec`] is watched until it vouched for the segment's end revision. A broken
//!   stream resumes on the next member from the revision after the last one seen; a stream
//!   canceled because that revision was compacted relists (a recorded range) and watches
//!   from the list's revision, as a Kubernetes reflector does; a reflector-like watch also
//!   ends its stream on purpose now and then and resumes. Every stream asks for progress
//!   notifications (the members send one each second) and sends a progress request with its
//!   create: the gateway reads a stream body whole, so that is where one can go.
//! - The keeper keeps a lease of a few seconds alive every second through any member and
//!   says whether it ever expired while its keepalives were answered (early), which a
//!   stalled fsync or a lost leader must never cause.
//! - The compactor compacts to a few hundred revisions behind the head every few seconds, so
//!   watches resumed after a fault sometimes find their revision compacted.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use raftkv::pb::{
    watch_request::RequestUnion, CompactionRequest, LeaseGrantRequest, LeaseKeepAliveRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest,
};
use raftkv::Client;

use super::traffic::CLIENT_TIMEOUT;
use crate::history::client::{watch_response, RecordingClient};
use crate::history::*;

pub struct WatchSpec {
    /// Its number in the history.
    pub client: usize,
    pub key: &'static str,
    pub end: &'static str,
    pub prev_kv: bool,
    /// Ends its stream after this long and resumes from the next revision, as a Kubernetes
    /// reflector's watch timeout does.
    pub restart_after: Option<Duration>,
    /// Every other restart waits this long first, as a slow client would: long enough for
    /// the compactor to pass its revision now and then, so the relist path runs too.
    pub slow_restart: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct WatchStats {
    pub streams: u64,
    pub events: u64,
    pub progress: u64,
    /// Resumed on another member after the stream broke.
    pub resumes: u64,
    /// Resumed after ending the stream on purpose.
    pub restarts: u64,
    /// Relisted because the revision to resume from was compacted.
    pub relists: u64,
}

impl WatchStats {
    pub fn merge(&mut self, o: &WatchStats) {
        self.streams += o.streams;
        self.events += o.events;
        self.progress += o.progress;
        self.resumes += o.resumes;
        self.restarts += o.restarts;
        self.relists += o.relists;
    }
}

/// How one stream ended.
enum Ended {
    /// It vouched for the end revision.
    Done,
    Broken,
    Restart,
    Compacted,
}

/// Watches `spec` through `endpoints` (starting at `first`) until it vouched for `end` (once
/// the driver sets it), or `abort`.
pub fn watch(
    spec: &WatchSpec,
    recorder: &Recorder,
    endpoints: &[String],
    first: usize,
    end: &AtomicI64,
    abort: &AtomicBool,
) -> WatchStats {
    let mut stats = WatchStats::default();
    let (mut next_start, mut at) = (0, first);
    while !abort.load(Ordering::Relaxed) {
        let client = Client::new(&[endpoints[at % endpoints.len()].clone()], CLIENT_TIMEOUT).unwrap();
        let (record, ended) = stream(spec, &client, next_start, end, abort);
        stats.streams += 1;
        stats.events += record.events().count() as u64;
        stats.progress += record.responses.iter().filter(|r| r.is_progress_notify()).count() as u64;
        next_start = resume_from(&record, next_start);
        if !record.responses.is_empty() {
            recorder.add_watch(record);
        }
        match ended {
            Ended::Done => break,
            Ended::Broken => {
                stats.resumes += 1;
                at += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ended::Restart => {
                stats.restarts += 1;
                if stats.restarts % 2 == 0 {
                    std::thread::sleep(spec.slow_restart);
                }
            }
            Ended::Compacted => {
                stats.relists += 1;
                next_start = relist(spec, recorder, &client);
            }
        }
    }
    stats
}

/// Where a watch continues after `record`: after the last revision it saw (an event, or the
/// revision its creation answered at).
fn resume_from(record: &WatchRecord, start: i64) -> i64 {
    let created = record.responses.iter().find(|r| r.created && start == 0).map(|r| r.revision + 1);
    let last_event = record.events().map(|e| e.revision() + 1).max();
    [Some(start), created, last_event].into_iter().flatten().max().unwrap_or(0)
}

/// A recorded list of the watched range; the revision after it, or 0 (watch from now) if it
/// failed.
fn relist(spec: &WatchSpec, recorder: &Recorder, client: &Client) -> i64 {
    let recording = RecordingClient { client: client.clone(), recorder, id: spec.client };
    let list = Request::Kv(KvOp::Range { key: spec.key.into(), end: spec.end.into(), limit: 0 });
    match recording.call(list) {
        Outcome::Ok { revision: Some(r), .. } => r + 1,
        _ => 0,
    }
}

fn stream(
    spec: &WatchSpec,
    client: &Client,
    start_revision: i64,
    end: &AtomicI64,
    abort: &AtomicBool,
) -> (WatchRecord, Ended) {
    let create = WatchCreateRequest {
        key: spec.key.into(),
        range_end: spec.end.into(),
        start_revision,
        prev_kv: spec.prev_kv,
        progress_notify: true,
        ..Default::default()
    };
    let requests = [
        WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) },
        WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) },
    ];
    let mut record = WatchRecord {
        client: spec.client,
        key: spec.key.into(),
        end: spec.end.into(),
        start_revision,
        prev_kv: spec.prev_kv,
        responses: Vec::new(),
    };
    let opened = Instant::now();
    let mut vouched = 0;
    let mut ended = Ended::Broken;
    let _ = client.watch_requests(&requests, |resp| {
        let resp = watch_response(resp);
        let seen = resp.events.iter().map(WatchEvent::revision).max();
        let progress = resp.is_progress_notify().then_some(resp.revision);
        vouched = vouched.max(seen.or(progress).unwrap_or(0));
        let canceled = resp.canceled;
        record.responses.push(resp);
        let target = end.load(Ordering::Relaxed);
        ended = if canceled {
            Ended::Compacted
        } else if target > 0 && vouched >= target {
            Ended::Done
        } else if spec.restart_after.is_some_and(|after| opened.elapsed() >= after) {
            Ended::Restart
        } else if abort.load(Ordering::Relaxed) {
            Ended::Broken
        } else {
            return true;
        };
        false
    });
    (record, ended)
}

/// The keeper's lease id: below every recorded one (`traffic::LEASE_ID_BASE`).
const KEEPER_LEASE: i64 = 1;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// A keepalive stuck longer than this on a paused member is given up, and sent elsewhere.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default)]
pub struct KeeperReport {
    pub ttl: i64,
    pub renewals: u64,
    pub failures: u64,
    /// The longest time between the calls of two answered keepalives.
    pub longest_gap: Duration,
    /// Each time the lease was found gone: how long after the last answered keepalive was
    /// sent, and whether that was before its TTL ran out (early).
    pub expiries: Vec<(Duration, bool)>,
}

/// Keeps a `ttl`-second lease alive every second through `endpoints` until `stop`.
pub fn keep_lease(endpoints: &[String], ttl: i64, stop: &AtomicBool) -> KeeperReport {
    let clients: Vec<Client> =
        endpoints.iter().map(|e| Client::new(std::slice::from_ref(e), KEEPALIVE_TIMEOUT).unwrap()).collect();
    let mut report = KeeperReport { ttl, ..KeeperReport::default() };
    let grant = LeaseGrantRequest { ttl, id: KEEPER_LEASE };
    let mut at = 0;
    while clients[at].lease_grant(&grant).is_err() {
        at = (at + 1) % clients.len();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut last_ok = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        match clients[at].lease_keep_alive(&LeaseKeepAliveRequest { id: KEEPER_LEASE }) {
            Ok(resp) if resp.ttl > 0 => {
                report.renewals += 1;
                report.longest_gap = report.longest_gap.max(sent - last_ok);
                last_ok = sent;
                std::thread::sleep(KEEPALIVE_EVERY.saturating_sub(sent.elapsed()));
            }
            Ok(_) => {
                // Gone. Early if this answer came before the TTL counted from the last
                // renewal's call had run out.
                let since = last_ok.elapsed();
                report.expiries.push((since, since < Duration::from_secs(ttl as u64)));
                while clients[at].lease_grant(&grant).is_err() && !stop.load(Ordering::Relaxed) {
                    at = (at + 1) % clients.len();
                }
                last_ok = Instant::now();
            }
            Err(_) => {
                report.failures += 1;
                at = (at + 1) % clients.len();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    report
}

pub const COMPACT_EVERY: Duration = Duration::from_secs(5);
/// Revisions kept behind the head: a few seconds of the soak's writes.
const COMPACT_KEEP: i64 = 300;

/// Compacts every `COMPACT_EVERY` until `stop`; how many were done, how many refused or
/// lost, and the last error.
pub fn compact(endpoints: &[String], stop: &AtomicBool) -> (u64, u64, Option<String>) {
    let client = Client::new(endpoints, Duration::from_secs(3)).unwrap();
    let (mut done, mut failed, mut last, mut error) = (0, 0, 0, None);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(COMPACT_EVERY);
        let Ok(status) = client.status() else { continue };
        let target = status.header.map_or(0, |h| h.revision) - COMPACT_KEEP;
        if target <= last {
            continue;
        }
        match client.compact(&CompactionRequest { revision: target, physical: false }) {
            Ok(_) => {
                done += 1;
                last = target;
            }
            Err(e) => {
                failed += 1;
                error = Some(e.to_string());
            }
        }
    }
    (done, failed, error)
}
