//! Watch and lease load on one embedded member (fsync on), for issue 4's numbers:
//! put throughput with and without 10,000 watchers, event delivery latency p50/p99 and RSS;
//! then 100,000 leases granted and kept alive, with RSS and CPU.
//!
//! `cargo bench --bench watch_lease` measures; under `cargo test` it runs a tiny version so it
//! keeps compiling and working.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel;
use hdrhistogram::Histogram;
use raftkv::pb::{LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, WatchCreateRequest};
use raftkv::watch::{Sink, SinkError};
use raftkv::{Config, Node};

struct Scale {
    watchers: usize,
    leases: usize,
    phase: Duration,
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Writers putting `keys` distinct keys as fast as they can for `phase`; each value carries
/// the send time (µs since `epoch`) so watchers can measure delivery latency.
fn write_load(node: &Node, keys: usize, phase: Duration, epoch: Instant) -> f64 {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..16 {
            let (node, done) = (node.clone(), &done);
            s.spawn(move || {
                let mut i = t;
                while start.elapsed() < phase {
                    let sent = epoch.elapsed().as_micros() as u64;
                    let req = PutRequest::new(format!("w/{}", i % keys), sent.to_string());
                    node.put(req).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 16;
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let scale = if measuring {
        Scale { watchers: 10_000, leases: 100_000, phase: Duration::from_secs(5) }
    } else {
        Scale { watchers: 10, leases: 10, phase: Duration::from_millis(200) }
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(Config::new("bench", dir.path())).unwrap();
    let epoch = Instant::now();

    let baseline = write_load(&node, scale.watchers, scale.phase, epoch);
    println!("put, 16 writers, no watchers:          {baseline:>8.0} puts/s   RSS {:.0} MiB", rss_mib());

    // One watcher per key, all into one channel (as a gateway stream multiplexes them).
    let (tx, rx) = channel::bounded::<raftkv::pb::WatchResponse>(65_536);
    let mut watches = Vec::with_capacity(scale.watchers);
    for i in 0..scale.watchers {
        let tx = tx.clone();
        let sink: Sink = Box::new(move |resp| match tx.try_send(resp) {
            Ok(()) => Ok(()),
            Err(channel::TrySendError::Full(_)) => Err(SinkError::Full),
            Err(channel::TrySendError::Disconnected(_)) => Err(SinkError::Closed),
        });
        let req = WatchCreateRequest { key: format!("w/{i}").into_bytes(), ..Default::default() };
        watches.push(node.watch_into(req, sink));
    }
    drop(tx);
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut latency = Histogram::<u64>::new(3).unwrap();
            let mut events = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(resp) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
                let now = epoch.elapsed().as_micros() as u64;
                for e in resp.events {
                    let sent: u64 = e.kv.map_or(0, |kv| String::from_utf8_lossy(&kv.value).parse().unwrap_or(now));
                    latency.record(now.saturating_sub(sent).max(1)).unwrap();
                    events += 1;
                }
            }
            (latency, events)
        })
    };
    let with_watchers = write_load(&node, scale.watchers, scale.phase, epoch);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (latency, events) = drainer.join().unwrap();
    println!(
        "put, 16 writers, {} watchers:        {with_watchers:>8.0} puts/s   RSS {:.0} MiB   {events} events, delivery p50 {:.2} ms p99 {:.2} ms",
        scale.watchers,
        rss_mib(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    drop(watches);

    // Leases: grant through raft from 64 threads, then keep every one alive.
    let rss_before = rss_mib();
    let cpu_before = cpu_seconds();
    let grant_start = Instant::now();
    let ids: Vec<i64> = std::thread::scope(|s| {
        let per = scale.leases.div_ceil(64);
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let node = node.clone();
                s.spawn(move || {
                    (0..per)
                        .map(|_| node.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).unwrap().id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let granted_in = grant_start.elapsed();
    let keep_start = Instant::now();
    let cpu_keep = cpu_seconds();
    // Every lease renewed once per second: 3× more often than clients renewing at TTL/3 of
    // a 10 s TTL would.
    let mut rounds = 0u32;
    while keep_start.elapsed() < scale.phase {
        let round_start = Instant::now();
        for id in &ids {
            node.lease_keep_alive(LeaseKeepAliveRequest { id: *id }).unwrap();
        }
        rounds += 1;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(round_start.elapsed()));
    }
    println!(
        "{} leases: granted in {:.1} s ({:.0}/s), RSS {:.0} MiB (+{:.0}), {rounds} rounds of keepalives in {:.1} s, CPU {:.2} s granting, {:.2} CPU s/s keeping alive",
        ids.len(),
        granted_in.as_secs_f64(),
        ids.len() as f64 / granted_in.as_secs_f64(),
        rss_mib(),
        rss_mib() - rss_before,
        keep_start.elapsed().as_secs_f64(),
        cpu_keep - cpu_before,
        (cpu_seconds() - cpu_keep) / keep_start.elapsed().as_secs_f64()
    );
    node.stop().unwrap();
}
