//! What the measurement reads while a load runs: the member's memory from
//! `/proc/<pid>/status`, and a probe client's latencies (a few threads doing puts and
//! linearizable gets at a steady pace, the "other clients" whose p99 a load must not ruin).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use raftkv::pb::{PutRequest, RangeRequest};
use raftkv::Client;

/// Probe threads: half put, half read.
const PROBE_THREADS: usize = 4;
/// Pause between one probe thread's calls: the probe measures, it is not a load itself
/// (about 200 calls/s in all on an idle member).
const PROBE_PACE: Duration = Duration::from_millis(20);
/// A probe call's timeout; one that takes this long is counted as an error, with its time.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest latency the histograms hold, in µs (longer ones are counted at it).
const LATENCY_MAX_US: u64 = 600_000_000;
/// How often the memory sampler reads `/proc/<pid>/status`.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A process's resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM`).
#[derive(Clone, Copy, Default)]
pub struct Rss {
    pub now_kib: u64,
    pub peak_kib: u64,
}

/// `VmRSS` and `VmHWM` of process `pid`; zeros once it is gone.
pub fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Rss { now_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
}

/// Samples `pid`'s `VmRSS` until `stop` is set; returns the largest seen, in KiB.
pub fn sample_rss(pid: u32, stop: &AtomicBool) -> u64 {
    let mut peak = 0;
    while !stop.load(Ordering::Acquire) {
        peak = peak.max(rss(pid).now_kib);
        std::thread::sleep(SAMPLE_INTERVAL);
    }
    peak.max(rss(pid).now_kib)
}

/// What the probe saw: every call's time (errors too, at the time they took) and the errors
/// by their text.
pub struct Probed {
    pub latencies_us: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

/// A latency histogram of fixed bounds: an auto-resizing one mis-recorded values past its
/// initial 2,048 through `saturating_record` (a p50 of 0 under load).
pub fn latencies() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).unwrap()
}

impl Probed {
    pub fn p50_ms(&self) -> f64 {
        self.latencies_us.value_at_quantile(0.5) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latencies_us.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn calls(&self) -> u64 {
        self.latencies_us.len()
    }
}

/// Runs the probe against `endpoint` until `done` says so (checked between calls).
pub fn probe(endpoint: &str, done: &(dyn Fn() -> bool + Sync)) -> Probed {
    let calls = AtomicU64::new(0);
    let results: Vec<Probed> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..PROBE_THREADS)
            .map(|t| {
                let calls = &calls;
                s.spawn(move || {
                    let client = Client::new(&[endpoint.to_string()], PROBE_TIMEOUT).unwrap();
                    let key = format!("probe/{t}");
                    let mut seen = Probed { latencies_us: latencies(), errors: BTreeMap::new() };
                    while !done() {
                        let n = calls.fetch_add(1, Ordering::Relaxed);
                        let start = Instant::now();
                        let outcome = if t % 2 == 0 {
                            client.put(&PutRequest::new(key.clone(), n.to_string())).map(drop)
                        } else {
                            client.range(&RangeRequest::key(key.clone())).map(drop)
                        };
                        let took = start.elapsed().as_micros() as u64;
                        seen.latencies_us.saturating_record(took.max(1));
                        if let Err(e) = outcome {
                            *seen.errors.entry(e.to_string()).or_default() += 1;
                        }
                        std::thread::sleep(PROBE_PACE);
                    }
                    seen
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut all = Probed { latencies_us: latencies(), errors: BTreeMap::new() };
    for r in results {
        all.latencies_us.add(&r.latencies_us).unwrap();
        for (e, n) in r.errors {
            *all.errors.entry(e).or_default() += n;
        }
    }
    all
}
