//! `check perf` and `check datascale`, as etcdctl 3.4's.
//!
//! - perf: puts of 1 KiB values under `--prefix` from `clients` connections at `limit`
//!   writes/s for 60 s (the `--load` model), then the prefix deleted and the verdict: PASS
//!   when throughput is over 90% of the rate, the slowest put under 500 ms and the standard
//!   deviation under 100 ms.
//! - datascale: `limit` puts of a 512-byte key and a 512-byte value under `--prefix` from
//!   `clients` connections as fast as they go, then the prefix deleted; the verdict is the
//!   growth of the first endpoint's `process_resident_memory_bytes` (its `/metrics`).
//!
//! Both print etcdctl's lines and exit as it does.

use super::bench::{self, Load, Report, Workload};
use super::*;

/// etcdctl's perf models: (writes/s, clients).
fn perf_model(load: &str) -> Option<(u64, usize)> {
    match load {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

/// etcdctl's datascale models: (key-value pairs, clients); every pair is 1,024 bytes.
fn datascale_model(load: &str) -> Option<(u64, usize)> {
    match load {
        "s" | "small" => Some((10_000, 50)),
        "m" | "medium" => Some((100_000, 200)),
        "l" | "large" => Some((1_000_000, 500)),
        "xl" | "xLarge" => Some((3_000_000, 1000)),
        _ => None,
    }
}

/// etcdctl's run length; `RAFTKVCTL_CHECK_PERF_SECS` shortens it for raftkv's own tests.
fn duration_secs() -> u64 {
    std::env::var("RAFTKVCTL_CHECK_PERF_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

/// The options both checks take after their load.
pub(crate) struct Check<'a> {
    pub endpoints: &'a [String],
    pub prefix: &'a str,
    pub auto_compact: bool,
    pub auto_defrag: bool,
}

impl Ctl {
    pub(crate) fn check_perf(&self, check: &Check, load: &str) -> Outcome {
        let Some((limit, clients)) = perf_model(load) else {
            return Err(CtlError::Usage(format!("unknown load option {load}")));
        };
        self.refuse_used_prefix(check.prefix)?;
        let secs = duration_secs();
        let timeout = Duration::from_secs(secs.max(5));
        let puts = Puts { clients, total: limit * secs, rate: limit, timeout, key_size: 256, val_size: 1024 };
        let report = self.put_load(check, &puts)?;
        self.clean_up(check)?;

        let mut ok = true;
        if !print_errors(&report) {
            ok = false;
        }
        let rps = report.requests_per_sec();
        if rps / limit as f64 <= 0.9 {
            println!("FAIL: Throughput too low: {} writes/s", rps as u64 + 1);
            ok = false;
        } else {
            println!("PASS: Throughput is {} writes/s", rps as u64 + 1);
        }
        let slowest = report.latency.max() as f64 / 1e6;
        if slowest > 0.5 {
            println!("Slowest request took too long: {slowest:.6}s");
            ok = false;
        } else {
            println!("PASS: Slowest request took {slowest:.6}s");
        }
        let stddev = report.latency.stdev() / 1e6;
        if stddev > 0.1 {
            println!("Stddev too high: {stddev:.6}s");
            ok = false;
        } else {
            println!("PASS: Stddev is {stddev:.6}s");
        }
        if ok {
            println!("PASS");
            Ok(())
        } else {
            println!("FAIL");
            Err(CtlError::Usage("check perf failed".into()))
        }
    }

    pub(crate) fn check_datascale(&self, check: &Check, load: &str) -> Outcome {
        let Some((limit, clients)) = datascale_model(load) else {
            return Err(CtlError::Usage(format!("unknown load option {load}")));
        };
        self.refuse_used_prefix(check.prefix)?;
        let first = check.endpoints.iter().flat_map(|e| e.split(',')).next().unwrap_or_default();
        let Some(before) = resident_bytes(first) else {
            println!("FAIL: Could not read process_resident_memory_bytes before the put operations.");
            return Err(CtlError::Usage("check datascale failed".into()));
        };
        println!(
            "Start data scale check for work load [{limit} key-value pairs, 1024 bytes per key-value, {clients} concurrent clients]."
        );
        // etcdctl puts without a deadline; a minute is far past any healthy answer.
        let timeout = Duration::from_secs(60);
        let puts = Puts { clients, total: limit, rate: 0, timeout, key_size: 512, val_size: 512 };
        let report = self.put_load(check, &puts)?;
        let Some(after) = resident_bytes(first) else {
            println!("FAIL: Could not read process_resident_memory_bytes after the put operations.");
            return Err(CtlError::Usage("check datascale failed".into()));
        };
        self.clean_up(check)?;
        if !print_errors(&report) {
            return Err(CtlError::Usage("check datascale failed".into()));
        }
        let used = (after - before) / (1024.0 * 1024.0);
        println!("PASS: Approximate system memory used : {used:.2} MB.");
        Ok(())
    }

    /// The check's puts under its prefix, random keys, one connection per client.
    fn put_load(&self, check: &Check, puts: &Puts) -> Result<Report, CtlError> {
        let run = Load {
            endpoints: check.endpoints.to_vec(),
            conns: puts.clients,
            clients: puts.clients,
            total: puts.total,
            rate: puts.rate,
            timeout: puts.timeout,
            target_leader: false,
            progress: true,
            gateway: self.gateway,
        };
        let workload = Workload::Put {
            key_size: puts.key_size,
            val_size: puts.val_size,
            sequential: false,
            key_space: u64::MAX,
            prefix: check.prefix.as_bytes().to_vec(),
        };
        bench::run(&run, &workload)
    }

    /// etcdctl refuses to run a check over keys it did not write.
    fn refuse_used_prefix(&self, prefix: &str) -> Outcome {
        let existing = self.client.range(&RangeRequest { limit: 1, ..RangeRequest::prefix(prefix) })?;
        if !existing.kvs.is_empty() {
            return Err(CtlError::Usage(format!(
                "prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"
            )));
        }
        Ok(())
    }

    /// Deletes what the check wrote, then compacts and defragments if asked.
    fn clean_up(&self, check: &Check) -> Outcome {
        let deleted = self.client.delete_range(&DeleteRangeRequest::prefix(check.prefix))?;
        if check.auto_compact {
            let revision = deleted.header.map_or(0, |h| h.revision);
            println!("Compacting with revision {revision}");
            self.client.compact(&CompactionRequest { revision, physical: true })?;
            println!("Compacted with revision {revision}");
        }
        if check.auto_defrag {
            for endpoint in check.endpoints.iter().flat_map(|e| e.split(',')) {
                println!("Defragmenting {endpoint:?}");
                dial(&[endpoint.to_string()], Duration::from_secs(30), self.dial_timeout, self.gateway)?
                    .defragment()?;
                println!("Defragmented {endpoint:?}");
            }
        }
        Ok(())
    }
}

/// A check's load: `total` puts from `clients` at `rate` a second (0: as fast as they go).
struct Puts {
    clients: usize,
    total: u64,
    rate: u64,
    timeout: Duration,
    key_size: usize,
    val_size: usize,
}

/// etcdctl's lines for the calls that failed; whether there were none.
fn print_errors(report: &Report) -> bool {
    if report.errors.is_empty() {
        return true;
    }
    println!("FAIL: too many errors");
    for (error, n) in &report.errors {
        println!("FAIL: ERROR({error}) -> {n}");
    }
    false
}

/// The endpoint's `process_resident_memory_bytes`, read from its `/metrics` over HTTP/1.1
/// as etcdctl reads it (it says why when it cannot, and the check fails).
fn resident_bytes(endpoint: &str) -> Option<f64> {
    const KEY: &str = "process_resident_memory_bytes";
    let text = match super::diagnose::fetch(endpoint) {
        Ok(text) => text,
        Err(e) => {
            println!("fetch error: {e}");
            return None;
        }
    };
    let value = text.lines().find_map(|l| l.strip_prefix(KEY)).and_then(|v| v.trim().parse().ok());
    if value.is_none() {
        println!("could not find: {KEY}");
    }
    value
}
