//! `check perf`, as etcdctl 3.4's: puts of 1 KiB values under `--prefix` from `clients`
//! connections at `limit` writes/s for 60 s (the `--load` model), then the prefix deleted and
//! the verdict: PASS when throughput is over 90% of the rate, the slowest put under 500 ms and
//! the standard deviation under 100 ms, with etcdctl's lines and exit code.

use super::bench::{self, Load, Workload};
use super::*;

/// etcdctl's models: (writes/s, clients).
fn model(load: &str) -> Option<(u64, usize)> {
    match load {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

/// etcdctl's run length; `RAFTKVCTL_CHECK_PERF_SECS` shortens it for raftkv's own tests.
fn duration_secs() -> u64 {
    std::env::var("RAFTKVCTL_CHECK_PERF_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

impl Ctl {
    pub(crate) fn check_perf(
        &self,
        endpoints: &[String],
        load: &str,
        prefix: &str,
        auto_compact: bool,
        auto_defrag: bool,
    ) -> Outcome {
        let Some((limit, clients)) = model(load) else {
            return Err(CtlError::Usage(format!("unknown load option {load}")));
        };
        let existing = self.client.range(&RangeRequest { limit: 1, ..RangeRequest::prefix(prefix) })?;
        if !existing.kvs.is_empty() {
            return Err(CtlError::Usage(format!(
                "prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"
            )));
        }
        let secs = duration_secs();
        let run = Load {
            endpoints: endpoints.to_vec(),
            conns: clients,
            clients,
            total: limit * secs,
            rate: limit,
            timeout: Duration::from_secs(secs.max(5)),
            target_leader: false,
            progress: true,
            gateway: self.gateway,
        };
        let workload = Workload::Put {
            key_size: 256,
            val_size: 1024,
            sequential: false,
            key_space: u64::MAX,
            prefix: prefix.as_bytes().to_vec(),
        };
        let report = bench::run(&run, &workload)?;
        let deleted = self.client.delete_range(&DeleteRangeRequest::prefix(prefix))?;
        if auto_compact {
            let revision = deleted.header.map_or(0, |h| h.revision);
            println!("Compacting with revision {revision}");
            self.client.compact(&CompactionRequest { revision, physical: true })?;
            println!("Compacted with revision {revision}");
        }
        if auto_defrag {
            for endpoint in endpoints.iter().flat_map(|e| e.split(',')) {
                println!("Defragmenting {endpoint:?}");
                dial(&[endpoint.to_string()], Duration::from_secs(30), self.dial_timeout, self.gateway)?
                    .defragment()?;
                println!("Defragmented {endpoint:?}");
            }
        }

        let mut ok = true;
        if !report.errors.is_empty() {
            println!("FAIL: too many errors");
            for (error, n) in &report.errors {
                println!("FAIL: ERROR({error}) -> {n}");
            }
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
}
