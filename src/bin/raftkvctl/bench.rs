//! `raftkvctl bench`: load generation modelled on etcd's `tools/benchmark`, speaking only the
//! JSON gateway so it measures raftkv and etcd alike.
//!
//! `--clients` threads share `--conns` keep-alive connections (each connection serves one
//! request at a time, as a gRPC stream does in etcd's tool); every request's latency goes into
//! an HDR histogram. `watch-latency` instead opens one watch stream per watcher and measures
//! the time from sending a put to each watcher receiving its event. Prints etcd's summary and
//! histogram, or one JSON object (`--json`); a progress line on stderr when it is a terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use raftkv::client::Error as CtlError;
use raftkv::pb::request_op::Request;
use raftkv::pb::*;
use raftkv::Client;

use crate::dial;

/// What one request does, given its sequence number.
pub enum Workload {
    Put {
        key_size: usize,
        val_size: usize,
        sequential: bool,
        key_space: u64,
        /// Written before each key (`check perf` writes under its own prefix).
        prefix: Vec<u8>,
    },
    /// A txn of `ops` puts on consecutive keys (etcd's `txn-put --txn-ops`).
    TxnPut {
        key_size: usize,
        val_size: usize,
        key_space: u64,
        ops: usize,
    },
    Range {
        key: Vec<u8>,
        range_end: Vec<u8>,
        serializable: bool,
    },
    /// Keepalives, each client renewing a lease it granted itself.
    LeaseKeepalive,
    /// `total` puts to `key` at `--rate` (100/s if unset), watched by `watchers` streams.
    WatchLatency {
        watchers: usize,
        key: Vec<u8>,
        val_size: usize,
    },
}

pub struct Load {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
    /// Requests per second across all clients; 0 = as fast as possible.
    pub rate: u64,
    pub timeout: Duration,
    /// Send everything to the leader (found with status), not to all endpoints.
    pub target_leader: bool,
    pub progress: bool,
    /// Over the JSON gateway (HTTP/1.1, one connection per `--conns`) instead of gRPC (one
    /// HTTP/2 connection per `--conns`, the clients' calls multiplexed on it).
    pub gateway: bool,
}

pub struct Report {
    pub elapsed: Duration,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
}

/// A key of `size` bytes for request `n`: its number, zero-padded (etcd's tool does the same).
fn key(n: u64, size: usize) -> Vec<u8> {
    let mut k = format!("{n:0size$}").into_bytes();
    k.truncate(size.max(1));
    k
}

/// Per-thread tallies, merged at the end.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ok: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally { latency: Histogram::new(3).expect("histogram"), errors: BTreeMap::new(), ok: 0 }
    }

    fn record(&mut self, outcome: Result<Duration, CtlError>) {
        match outcome {
            Ok(took) => {
                self.ok += 1;
                let _ = self.latency.record(took.as_micros().max(1) as u64);
            }
            Err(e) => *self.errors.entry(e.to_string()).or_insert(0) += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        self.ok += other.ok;
    }
}

pub fn run(load: &Load, workload: &Workload) -> Result<Report, CtlError> {
    let endpoints = if load.target_leader { vec![leader_endpoint(load)?] } else { load.endpoints.clone() };
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let tally = std::thread::scope(|s| {
        if load.progress && std::io::stderr().is_terminal() {
            spawn_named(s, "raftkvctl-progress".into(), || show_progress(&done, &finished, load.total, start));
        }
        let tally = match workload {
            Workload::WatchLatency { watchers, key, val_size } => {
                watch_latency(load, &endpoints, *watchers, key, *val_size, &done)
            }
            _ => request_loop(load, &endpoints, workload, &done),
        };
        finished.store(true, Ordering::Release);
        tally
    })?;
    Ok(Report { elapsed: start.elapsed(), ok: tally.ok, errors: tally.errors, latency: tally.latency })
}

/// etcd's `--target-leader`: the endpoint whose member is the leader.
fn leader_endpoint(load: &Load) -> Result<String, CtlError> {
    for endpoint in load.endpoints.iter().flat_map(|e| e.split(',')) {
        let Ok(status) =
            dial(&[endpoint.to_string()], load.timeout, load.timeout, load.gateway).and_then(|c| c.status())
        else {
            continue;
        };
        if status.header.is_some_and(|h| h.member_id == status.leader) {
            return Ok(endpoint.to_string());
        }
    }
    Err(CtlError::Usage(format!("no leader among {:?}", load.endpoints)))
}

fn show_progress(done: &AtomicU64, finished: &AtomicBool, total: u64, start: Instant) {
    while !finished.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(250));
        let n = done.load(Ordering::Relaxed);
        let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-3);
        let width = 40;
        let filled = (n as usize * width / total.max(1) as usize).min(width);
        eprint!("\r [{}{}] {n}/{total} {rate:.0} req/s", "#".repeat(filled), " ".repeat(width - filled));
    }
    eprintln!();
}

fn request_loop(load: &Load, endpoints: &[String], workload: &Workload, done: &AtomicU64) -> Result<Tally, CtlError> {
    let conns: Vec<Client> = (0..load.conns.max(1))
        .map(|_| dial(endpoints, load.timeout, load.timeout, load.gateway))
        .collect::<Result<_, _>>()?;
    let next = AtomicU64::new(0);
    let totals = Mutex::new(Tally::new());
    let start = Instant::now();
    let val_size = match workload {
        Workload::Put { val_size, .. } | Workload::TxnPut { val_size, .. } => *val_size,
        _ => 0,
    };
    let value = vec![b'v'; val_size];
    std::thread::scope(|s| {
        for c in 0..load.clients.max(1) {
            let (client, next, totals, value) = (&conns[c % conns.len()], &next, &totals, &value);
            spawn_named(s, format!("raftkvctl-client-{c}"), move || {
                let mut tally = Tally::new();
                // lease-keepalive: every client renews a lease of its own.
                let lease = match workload {
                    Workload::LeaseKeepalive => match client.lease_grant(&LeaseGrantRequest { ttl: 60, id: 0 }) {
                        Ok(resp) => resp.id,
                        Err(e) => {
                            tally.record(Err(e));
                            totals.lock().merge(tally);
                            return;
                        }
                    },
                    _ => 0,
                };
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= load.total {
                        break;
                    }
                    if load.rate > 0 {
                        // Open-loop pacing: request n is due at n / rate seconds.
                        let due = start + Duration::from_secs_f64(n as f64 / load.rate as f64);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    let began = Instant::now();
                    let outcome = one_request(client, workload, n, value, lease);
                    tally.record(outcome.map(|()| began.elapsed()));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                totals.lock().merge(tally);
            });
        }
    });
    Ok(totals.into_inner())
}

fn one_request(client: &Client, workload: &Workload, n: u64, value: &[u8], lease: i64) -> Result<(), CtlError> {
    match workload {
        Workload::Put { key_size, sequential, key_space, prefix, .. } => {
            let k = if *sequential { n % key_space.max(&1) } else { spread(n) % key_space.max(&1) };
            let req = PutRequest {
                key: [&prefix[..], &key(k, *key_size)].concat(),
                value: value.to_vec(),
                ..Default::default()
            };
            client.put(&req).map(|_| ())
        }
        Workload::TxnPut { key_size, key_space, ops, .. } => {
            let first = spread(n) % key_space.max(&1);
            let success = (0..*ops as u64)
                .map(|i| RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: key((first + i) % key_space.max(&1), *key_size),
                        value: value.to_vec(),
                        ..Default::default()
                    })),
                })
                .collect();
            client.txn(&TxnRequest { success, ..Default::default() }).map(|_| ())
        }
        Workload::Range { key, range_end, serializable } => {
            let req = RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                serializable: *serializable,
                ..Default::default()
            };
            client.range(&req).map(|_| ())
        }
        Workload::LeaseKeepalive => client.lease_keep_alive(&LeaseKeepAliveRequest { id: lease }).map(|_| ()),
        Workload::WatchLatency { .. } => unreachable!("watch-latency has its own loop"),
    }
}

/// etcd's `watch-latency`: `watchers` streams watch `key`; puts go out at the rate and every
/// watcher's event is timed from its put's start. The put number travels in the value.
fn watch_latency(
    load: &Load,
    endpoints: &[String],
    watchers: usize,
    key: &[u8],
    val_size: usize,
    done: &AtomicU64,
) -> Result<Tally, CtlError> {
    let total = load.total;
    let rate = if load.rate == 0 { 100 } else { load.rate };
    let sent: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    let origin = Instant::now();
    let created = AtomicUsize::new(0);
    let totals = Mutex::new(Tally::new());
    let putter = dial(endpoints, load.timeout, load.timeout, load.gateway)?;
    std::thread::scope(|s| {
        for w in 0..watchers.max(1) {
            let (sent, created, totals) = (&sent, &created, &totals);
            spawn_named(s, format!("raftkvctl-watcher-{w}"), move || {
                let mut tally = Tally::new();
                let req = WatchCreateRequest { key: key.to_vec(), ..Default::default() };
                let watched = dial(endpoints, load.timeout, load.timeout, load.gateway).and_then(|client| {
                    client.watch(&req, |resp| {
                        if resp.created {
                            created.fetch_add(1, Ordering::AcqRel);
                        }
                        let mut last = false;
                        for event in resp.events {
                            let kv = event.kv.unwrap_or_default();
                            let Some(n) = std::str::from_utf8(&kv.value[..kv.value.len().min(20)])
                                .ok()
                                .and_then(|v| v.trim_end_matches('.').parse::<u64>().ok())
                                .filter(|n| *n < total)
                            else {
                                continue;
                            };
                            let at = Duration::from_nanos(sent[n as usize].load(Ordering::Acquire));
                            tally.record(Ok(origin.elapsed().saturating_sub(at)));
                            done.fetch_add(1, Ordering::Relaxed);
                            last |= n + 1 == total;
                        }
                        !last
                    })
                });
                if let Err(e) = watched {
                    tally.record(Err(e));
                }
                totals.lock().merge(tally);
            });
        }
        // Puts start once every watcher is in place.
        let deadline = Instant::now() + load.timeout;
        while created.load(Ordering::Acquire) < watchers.max(1) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = Instant::now();
        for n in 0..total {
            let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let mut value = n.to_string().into_bytes();
            value.resize(val_size.max(value.len()), b'.');
            sent[n as usize].store(origin.elapsed().as_nanos() as u64, Ordering::Release);
            if let Err(e) = putter.put(&PutRequest { key: key.to_vec(), value, ..Default::default() }) {
                totals.lock().record(Err(e));
            }
        }
    });
    Ok(totals.into_inner())
}

/// A cheap deterministic spread of request numbers over the key space (splitmix64).
fn spread(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Report {
    fn secs(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e6
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// etcd benchmark's summary, histogram and latency distribution.
    pub fn print(&self) {
        println!("\nSummary:");
        println!("  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        println!("  Slowest:\t{:.4} secs.", self.latency.max() as f64 / 1e6);
        println!("  Fastest:\t{:.4} secs.", self.latency.min() as f64 / 1e6);
        println!("  Average:\t{:.4} secs.", self.latency.mean() / 1e6);
        println!("  Stddev:\t{:.4} secs.", self.latency.stdev() / 1e6);
        println!("  Requests/sec:\t{:.4}", self.requests_per_sec());
        self.print_histogram();
        println!("\nLatency distribution:");
        for (label, q) in [
            ("10", 0.1),
            ("25", 0.25),
            ("50", 0.5),
            ("75", 0.75),
            ("90", 0.9),
            ("95", 0.95),
            ("99", 0.99),
            ("99.9", 0.999),
        ] {
            println!("  {label}% in {:.4} secs.", self.secs(q));
        }
        if !self.errors.is_empty() {
            println!("\nErrors:");
            for (msg, n) in &self.errors {
                println!("  [{n}]\t{msg}");
            }
        }
    }

    /// etcd's "Response time histogram": ten equal buckets from fastest to slowest.
    fn print_histogram(&self) {
        if self.latency.is_empty() {
            return;
        }
        let (min, max) = (self.latency.min(), self.latency.max());
        let step = ((max - min) / 10).max(1);
        let buckets: Vec<(u64, u64)> = (1..=10)
            .map(|i| {
                let upper = if i == 10 { max } else { min + step * i };
                let lower = if i == 1 { 0 } else { min + step * (i - 1) + 1 };
                (upper, self.latency.count_between(lower, upper))
            })
            .collect();
        let most = buckets.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
        println!("\nResponse time histogram:");
        for (upper, n) in buckets {
            let bar = "∎".repeat((n * 40 / most) as usize);
            println!("  {:.4} [{n}]\t|{bar}", upper as f64 / 1e6);
        }
    }

    pub fn print_json(&self) {
        let errors: Vec<String> =
            self.errors.iter().map(|(m, n)| format!("{{\"error\":{m:?},\"count\":{n}}}")).collect();
        println!(
            "{{\"total_secs\":{:.6},\"requests\":{},\"requests_per_sec\":{:.2},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"errors\":[{}]}}",
            self.elapsed.as_secs_f64(),
            self.ok,
            self.requests_per_sec(),
            self.secs(0.5) * 1e3,
            self.secs(0.9) * 1e3,
            self.secs(0.99) * 1e3,
            self.secs(0.999) * 1e3,
            self.latency.max() as f64 / 1e3,
            errors.join(",")
        );
    }
}

/// A scoped thread with a name, so `top -H` and `perf` tell the load tool's threads apart.
fn spawn_named<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: String,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new().name(name).spawn_scoped(s, f).expect("spawn a load thread")
}
