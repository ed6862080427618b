//! `raftkvctl bench`: load generation modelled on etcd's `tools/benchmark`, speaking only the
//! JSON gateway so it measures raftkv and etcd alike.
//!
//! `--clients` threads share `--conns` keep-alive connections (each connection serves one
//! request at a time, as a gRPC stream does in etcd's tool); every request's latency goes into
//! an HDR histogram. Prints etcd's summary (or `--json`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use raftkv::pb::{PutRequest, RangeRequest};
use raftkv::Client;

/// What one request does, given its sequence number.
pub enum Workload {
    Put { key_size: usize, val_size: usize, sequential: bool, key_space: u64 },
    Range { key: Vec<u8>, range_end: Vec<u8>, serializable: bool },
}

pub struct Load {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
    /// Requests per second across all clients; 0 = as fast as possible.
    pub rate: u64,
    pub timeout: Duration,
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

pub fn run(load: &Load, workload: &Workload) -> Result<Report, raftkv::Error> {
    let conns: Vec<Client> =
        (0..load.conns.max(1)).map(|_| Client::new(&load.endpoints, load.timeout)).collect::<Result<_, _>>()?;
    let next = AtomicU64::new(0);
    let totals = Mutex::new((Histogram::<u64>::new(3).expect("histogram"), BTreeMap::<String, u64>::new(), 0u64));
    let start = Instant::now();
    let value = vec![b'v'; if let Workload::Put { val_size, .. } = workload { *val_size } else { 0 }];
    std::thread::scope(|s| {
        for c in 0..load.clients.max(1) {
            let (client, next, totals, value) = (&conns[c % conns.len()], &next, &totals, &value);
            s.spawn(move || {
                let mut latency = Histogram::<u64>::new(3).expect("histogram");
                let mut errors = BTreeMap::new();
                let mut ok = 0;
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
                    let outcome = match workload {
                        Workload::Put { key_size, sequential, key_space, .. } => {
                            let k = if *sequential { n % key_space.max(&1) } else { spread(n) % key_space.max(&1) };
                            let req = PutRequest { key: key(k, *key_size), value: value.clone(), ..Default::default() };
                            client.put(&req).map(|_| ())
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
                    };
                    match outcome {
                        Ok(()) => {
                            ok += 1;
                            let _ = latency.record(began.elapsed().as_micros().max(1) as u64);
                        }
                        Err(e) => *errors.entry(e.to_string()).or_insert(0) += 1,
                    }
                }
                let mut totals = totals.lock();
                let _ = totals.0.add(&latency);
                for (k, v) in errors {
                    *totals.1.entry(k).or_insert(0) += v;
                }
                totals.2 += ok;
            });
        }
    });
    let (latency, errors, ok) = totals.into_inner();
    Ok(Report { elapsed: start.elapsed(), ok, errors, latency })
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

    /// etcd benchmark's summary.
    pub fn print(&self) {
        println!("\nSummary:");
        println!("  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        println!("  Slowest:\t{:.4} secs.", self.latency.max() as f64 / 1e6);
        println!("  Fastest:\t{:.4} secs.", self.latency.min() as f64 / 1e6);
        println!("  Average:\t{:.4} secs.", self.latency.mean() / 1e6);
        println!("  Stddev:\t{:.4} secs.", self.latency.stdev() / 1e6);
        println!("  Requests/sec:\t{:.4}", self.requests_per_sec());
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
