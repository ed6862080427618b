//! Checking the soak's segments and reporting the run.
//!
//! [`Checker`] checks each segment on a thread of its own (`soak-check`) while the next
//! segment runs: linearizability and the watch guarantees with the history checker, then
//! the recorded leases alive at the cut against the ones the linearization leaves (a lease
//! gone early, or a grant lost, shows there and nowhere else, since lease expiry is not in
//! the model). A failing segment is saved as JSON lines, replayable as it is
//! (`tests/history/mod.rs`). [`Report`] gathers everything the run counted and prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Sender};

use super::background::{KeeperReport, WatchStats};
use super::traffic::Counts;
use crate::history::model::{Model, Revisions, State};
use crate::history::*;

/// One segment, cut and ready to check.
pub struct Segment {
    pub index: usize,
    pub fault: &'static str,
    pub history: History,
    /// The recorded leases the members listed at the cut.
    pub leases: BTreeSet<i64>,
}

/// What checking a segment found.
pub struct Verdicts {
    pub index: usize,
    pub ops: usize,
    pub linearizable: bool,
    pub timed_out: bool,
    pub watch_violations: usize,
    pub lease_mismatches: Vec<String>,
    pub took: Duration,
    /// Where the history went when it failed.
    pub saved: Option<PathBuf>,
    pub summary: String,
}

impl Verdicts {
    pub fn passed(&self) -> bool {
        self.linearizable && self.watch_violations == 0 && self.lease_mismatches.is_empty()
    }
}

pub struct Checker {
    segments: Option<Sender<Segment>>,
    thread: Option<JoinHandle<Vec<Verdicts>>>,
}

impl Checker {
    /// `save_as(index)` names the file a failing segment is saved to.
    pub fn spawn(limit: Duration, save_as: impl Fn(usize) -> PathBuf + Send + 'static) -> Checker {
        let (tx, rx) = channel::unbounded::<Segment>();
        let thread = std::thread::Builder::new()
            .name("soak-check".into())
            .spawn(move || rx.iter().map(|segment| check_segment(segment, limit, &save_as)).collect())
            .expect("spawn the checker");
        Checker { segments: Some(tx), thread: Some(thread) }
    }

    pub fn check(&self, segment: Segment) {
        self.segments.as_ref().expect("open").send(segment).expect("the checker runs");
    }

    /// Waits for every segment's verdicts.
    pub fn finish(mut self) -> Vec<Verdicts> {
        drop(self.segments.take());
        self.thread.take().expect("running").join().expect("the checker thread")
    }
}

fn check_segment(mut segment: Segment, limit: Duration, save_as: &impl Fn(usize) -> PathBuf) -> Verdicts {
    let history = &mut segment.history;
    let checked = check(history, limit);
    let lease_mismatches = match &checked.linearizability {
        Verdict::Linearizable { order } => leases_at_cut(history, order, &segment.leases),
        _ => Vec::new(),
    };
    let mut verdicts = Verdicts {
        index: segment.index,
        ops: history.ops.len(),
        linearizable: matches!(checked.linearizability, Verdict::Linearizable { .. }),
        timed_out: matches!(checked.linearizability, Verdict::TimedOut { .. }),
        watch_violations: checked.watch_violations.len(),
        lease_mismatches,
        took: checked.took,
        saved: None,
        summary: checked.summary(),
    };
    if !verdicts.passed() {
        let path = save_as(segment.index);
        match json::save(history, &path) {
            Ok(()) => verdicts.saved = Some(path),
            Err(e) => verdicts.summary += &format!("(saving the history failed: {e})\n"),
        }
        eprintln!("soak: segment {} ({}) FAILED:\n{}{}", segment.index, segment.fault, verdicts.summary, {
            verdicts.lease_mismatches.join("\n")
        });
    }
    verdicts
}

/// The recorded leases the linearization leaves at the cut (the segment's last op, the read
/// of every key) against the ones the members listed there. A lease a grant or revoke of
/// unknown outcome touched may differ: the search only guessed whether it took effect.
fn leases_at_cut(history: &History, order: &[usize], listed: &BTreeSet<i64>) -> Vec<String> {
    let cut = history.ops.len() - 1;
    let model = Model { revisions: Revisions::Exact };
    let mut state = State::from(&history.start);
    for &i in order {
        state = model.step(&state, &history.ops[i]).expect("a linearization the checker found");
        if i == cut {
            break;
        }
    }
    let uncertain: BTreeSet<i64> = history
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .filter_map(|op| match op.request {
            Request::LeaseGrant { id, .. } | Request::LeaseRevoke { id } => Some(id),
            _ => None,
        })
        .collect();
    state
        .leases
        .symmetric_difference(listed)
        .filter(|id| !uncertain.contains(id))
        .map(|id| {
            if listed.contains(id) {
                format!("lease {id}: alive on the members, never granted in the history")
            } else {
                format!("lease {id}: alive in the history, gone from the members (expired early or lost)")
            }
        })
        .collect()
}

/// Everything the run counted.
#[derive(Default)]
pub struct Report {
    pub seed: u64,
    pub traffic: Duration,
    pub ops: Counts,
    /// Each fault's kind, and what happened.
    pub faults: Vec<(&'static str, String)>,
    pub verdicts: Vec<Verdicts>,
    pub watches: WatchStats,
    pub keeper: KeeperReport,
    /// Done, refused or lost, the last error.
    pub compactions: (u64, u64, Option<String>),
    /// Acknowledged ledger writes, and the keys they went to.
    pub ledger: (u64, usize),
    pub lost: Vec<String>,
    pub hash_checks: usize,
    /// What went wrong outside the checker: hangs, crashes, diverging hashes.
    pub findings: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
            && self.lost.is_empty()
            && self.verdicts.iter().all(Verdicts::passed)
            && self.keeper.expiries.iter().all(|(_, early)| !early)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments = self.verdicts.len();
        writeln!(f, "soak report: seed {} ({:.0?} of traffic, {segments} segments)", self.seed, self.traffic)?;
        let (ok, unknown) = self.ops.0.values().fold((0, 0), |(a, b), (o, u)| (a + o, b + u));
        writeln!(f, "operations: {} ({unknown} of unknown outcome)", ok + unknown)?;
        for (kind, (ok, unknown)) in &self.ops.0 {
            writeln!(f, "  {kind:<22} {:>7}  ({unknown} unknown)", ok + unknown)?;
        }
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for (kind, _) in &self.faults {
            *by_kind.entry(kind).or_default() += 1;
        }
        writeln!(f, "faults: {}", self.faults.len())?;
        for (kind, n) in &by_kind {
            writeln!(f, "  {kind:<30} {n:>4}")?;
        }
        let lost_leadership = self.faults.iter().filter(|(_, what)| what.contains("lost the leadership")).count();
        let stalls = self.faults.iter().filter(|(kind, _)| kind.starts_with("fsync stall")).count();
        writeln!(f, "  fsync stalls that cost the leadership: {lost_leadership} of {stalls}")?;
        let linearizable = self.verdicts.iter().filter(|v| v.linearizable).count();
        let timed_out = self.verdicts.iter().filter(|v| v.timed_out).count();
        let slowest = self.verdicts.iter().max_by_key(|v| v.took);
        let largest = self.verdicts.iter().map(|v| v.ops).max().unwrap_or_default();
        writeln!(
            f,
            "linearizability: {linearizable} of {segments} segments linearizable, {} violations, {timed_out} timed out \
             (largest {largest} ops; slowest check {:.1?}, segment {})",
            segments - linearizable - timed_out,
            slowest.map(|v| v.took).unwrap_or_default(),
            slowest.map_or(0, |v| v.index),
        )?;
        let w = &self.watches;
        let violations: usize = self.verdicts.iter().map(|v| v.watch_violations).sum();
        writeln!(
            f,
            "watches: {violations} guarantee violations over {} streams, {} events, {} progress notifications; \
             {} resumed after a break, {} restarted, {} relisted after a compaction",
            w.streams, w.events, w.progress, w.resumes, w.restarts, w.relists
        )?;
        let mismatches: usize = self.verdicts.iter().map(|v| v.lease_mismatches.len()).sum();
        let k = &self.keeper;
        let early = k.expiries.iter().filter(|(_, early)| *early).count();
        writeln!(
            f,
            "leases: keeper lease (TTL {} s, kept alive each second): {} renewals, {} failed calls, longest gap \
             {:.1?}, expired {} times ({early} early); recorded leases at the cuts: {mismatches} mismatches",
            k.ttl,
            k.renewals,
            k.failures,
            k.longest_gap,
            k.expiries.len()
        )?;
        writeln!(
            f,
            "acknowledged writes lost: {} (ledger: {} acknowledged writes on {} keys, read on every member)",
            self.lost.len(),
            self.ledger.0,
            self.ledger.1
        )?;
        for lost in &self.lost {
            writeln!(f, "  {lost}")?;
        }
        writeln!(f, "hashkv: equal on every member at {} cuts", self.hash_checks)?;
        let (done, failed, error) = &self.compactions;
        writeln!(
            f,
            "compactions: {done} ({failed} refused or lost{})",
            error.as_ref().map_or(String::new(), |e| format!(", the last: {e}"))
        )?;
        for finding in &self.findings {
            writeln!(f, "FINDING: {finding}")?;
        }
        for v in self.verdicts.iter().filter(|v| !v.passed()) {
            let saved = v.saved.as_ref().map_or("not saved".to_string(), |p| p.display().to_string());
            writeln!(f, "FAILED segment {}: {}  history: {saved}", v.index, v.summary.lines().next().unwrap_or(""))?;
        }
        writeln!(f, "seed {} (RAFTKV_SOAK_SEED={} reruns this schedule)", self.seed, self.seed)
    }
}
