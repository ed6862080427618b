//! The history checker (issue 16): clients record what they did and saw, then the history is
//! checked for linearizability against etcd's KV model and every watch for etcd's watch
//! guarantees. Test support, included by the integration binary (`tests/it/main.rs`) the way
//! `tests/harness/` is, for fault-injection tests and the soak to use.
//!
//! - [`record`]: the history's types, the shared monotonic clock and the thread-safe
//!   [`Recorder`];
//! - [`client`]: a recording [`raftkv::Client`] and the translation to and from raftkv's
//!   protobufs;
//! - [`model`]: the KV model (etcd's semantics and revision rule);
//! - [`linearize`]: the WGL/porcupine search with partitions, a time bound and a report;
//! - [`watch`]: the watch validators against the linearized history;
//! - [`json`]: a history saved as JSON lines and loaded back, to replay a failure:
//!   `RAFTKV_HISTORY=<file> cargo test --test it history::replay -- --ignored --nocapture`.
//!
//! docs/reliability.md describes the model, the partitioning and the bounds.

pub mod client;
pub mod json;
pub mod linearize;
pub mod model;
pub mod record;
pub mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;

use std::path::Path;
use std::time::{Duration, Instant};

pub use linearize::Verdict;
pub use record::*;

/// What the checker found in one history.
pub struct Checked {
    pub linearizability: Verdict,
    /// Empty unless the history linearized (the watches are checked against its linearization).
    pub watch_violations: Vec<watch::Violation>,
    pub took: Duration,
}

impl Checked {
    pub fn passed(&self) -> bool {
        matches!(self.linearizability, Verdict::Linearizable { .. }) && self.watch_violations.is_empty()
    }

    /// Every finding, readably.
    pub fn summary(&self) -> String {
        let mut out = match &self.linearizability {
            Verdict::Linearizable { order } => format!("linearizable ({} operations placed)\n", order.len()),
            Verdict::Violation(report) => report.to_string(),
            Verdict::TimedOut { partition } => format!("unknown: the time bound passed checking {partition}\n"),
        };
        for v in &self.watch_violations {
            out.push_str(&format!("{v}\n"));
        }
        out
    }
}

/// Checks `history` (unknown puts a watch saw are resolved first), within `limit`.
pub fn check(history: &mut History, limit: Duration) -> Checked {
    let started = Instant::now();
    watch::resolve(history);
    let start = model::State::from(&history.start);
    let linearizability = linearize::check(&start, &history.ops, limit);
    let watch_violations = match &linearizability {
        Verdict::Linearizable { order } => {
            watch::validate(&history.watches, &watch::committed(&start, &history.ops, order))
        }
        _ => Vec::new(),
    };
    Checked { linearizability, watch_violations, took: started.elapsed() }
}

/// Checks `history`; on a failure saves it to `save_to` and panics with the findings.
pub fn assert_passes(history: &mut History, limit: Duration, save_to: &Path) -> Checked {
    let checked = check(history, limit);
    if !checked.passed() {
        json::save(history, save_to).expect("save the failing history");
        panic!("{}history saved to {} (replay: see tests/history/mod.rs)", checked.summary(), save_to.display());
    }
    checked
}

/// Replays a saved history: `RAFTKV_HISTORY=<file>`.
#[test]
#[ignore = "replays the history file named by RAFTKV_HISTORY"]
fn replay() {
    let path = std::env::var("RAFTKV_HISTORY").expect("RAFTKV_HISTORY names a saved history");
    let mut history = json::load(Path::new(&path)).unwrap();
    let limit = Duration::from_secs(std::env::var("RAFTKV_CHECK_SECONDS").map_or(60, |s| s.parse().unwrap()));
    let checked = check(&mut history, limit);
    println!("{} operations, {} watches, checked in {:?}", history.ops.len(), history.watches.len(), checked.took);
    println!("{}", checked.summary());
    assert!(checked.passed());
}
