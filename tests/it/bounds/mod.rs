//! Resource bounds, measured (issue 16; docs/reliability.md, "Resource bounds"): each load of
//! [`load::SCENARIOS`] runs against a fresh `raftkv` member process on 127.0.0.1 (temp data
//! dir), while a probe client ([`probe`]) does puts and linearizable gets, first without the
//! load (the baseline), then under it. Reported per load: the member's RSS idle, at its peak
//! and after; the probe's p50/p99 and errors against the baseline; what the load's clients got;
//! whether the member is still up and answering.
//!
//! `make bounds` runs [`measure`] (ignored otherwise: it takes minutes and is a measurement,
//! not a check); `RAFTKV_BOUNDS=watch_key,ranges` runs some loads only, and
//! `RAFTKV_BOUNDS_BINARY=path` measures that `raftkv` binary instead of this build's. Speed is reported here,
//! never asserted; what is asserted is that the member survives and answers.

mod load;
mod probe;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raftkv::pb::{PutRequest, RangeRequest};
use raftkv::Client;

use crate::harness::process::Member;
use probe::{probe, rss, sample_rss, Probed, Rss};

/// How long the probe runs without load.
const BASELINE: Duration = Duration::from_secs(5);
/// After a load, how long the member gets before its memory is read again.
const SETTLE: Duration = Duration::from_secs(3);

/// A fresh member and what one scenario found on it.
pub struct Bench {
    member: Member,
    data: PathBuf,
    _dir: tempfile::TempDir,
    pub endpoint: String,
    /// What the load's clients got, as lines for the report.
    pub notes: Vec<String>,
    row: Option<Row>,
}

/// One scenario's figures.
struct Row {
    name: &'static str,
    idle: Rss,
    /// Largest `VmRSS` sampled during the load.
    peak_kib: u64,
    /// `VmHWM` at the load's end (the process's peak, setup included).
    hwm_kib: u64,
    after: Rss,
    baseline: Probed,
    loaded: Probed,
    took: Duration,
    alive: bool,
    answers: Result<(), String>,
    notes: Vec<String>,
    log: Vec<String>,
}

impl Bench {
    fn start(name: &'static str) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let mut member = Member::new(name, dir.path());
        // Another build's member (a copy made before a change, or a release build) to measure.
        if let Ok(binary) = std::env::var("RAFTKV_BOUNDS_BINARY") {
            member.binary = binary.into();
        }
        let data = dir.path().join("data");
        member.spawn(&data, "", &[]);
        member.wait_healthy(Duration::from_secs(60));
        Bench { endpoint: member.endpoint(), member, data, _dir: dir, notes: Vec::new(), row: None }
    }

    /// Stops the member cleanly and starts it again on its data (same ports).
    pub fn restart(&mut self) {
        assert!(self.member.terminate().success(), "member did not stop cleanly");
        self.member.spawn(&self.data, "", &[]);
        self.member.wait_healthy(Duration::from_secs(120));
    }

    pub fn client(&self, timeout: Duration) -> Client {
        Client::new(std::slice::from_ref(&self.endpoint), timeout).unwrap()
    }

    pub fn note(&mut self, line: String) {
        println!("  {line}");
        self.notes.push(line);
    }

    /// The baseline probe, then `load` while the probe runs again until `load` returns (or
    /// `limit` passes: `stop` is then set and `load` must return soon), the member's memory
    /// sampled throughout; then whether the member is up and answers.
    pub fn under_load<T: Send>(
        &mut self,
        name: &'static str,
        limit: Duration,
        load: impl FnOnce(&AtomicBool) -> T + Send,
    ) -> T {
        let pid = self.member.pid();
        let idle = rss(pid);
        let started = Instant::now();
        let baseline = probe(&self.endpoint, &|| started.elapsed() >= BASELINE);
        println!("  baseline: p50 {:.2} ms, p99 {:.2} ms", baseline.p50_ms(), baseline.p99_ms());
        let (stop, done, sampling) = (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false));
        let started = Instant::now();
        let endpoint = self.endpoint.clone();
        let (out, loaded, peak_kib) = std::thread::scope(|s| {
            let sampler = s.spawn(|| sample_rss(pid, &sampling));
            let loader = s.spawn(|| {
                let out = load(&stop);
                done.store(true, Ordering::Release);
                out
            });
            let loaded = probe(&endpoint, &|| {
                if started.elapsed() >= limit {
                    stop.store(true, Ordering::Release);
                }
                done.load(Ordering::Acquire)
            });
            let out = loader.join().unwrap();
            sampling.store(true, Ordering::Release);
            (out, loaded, sampler.join().unwrap())
        });
        let took = started.elapsed();
        let hwm_kib = rss(pid).peak_kib;
        std::thread::sleep(SETTLE);
        let after = rss(pid);
        let alive = !self.member.exited();
        let answers = if alive { self.answers() } else { Err("the member exited".into()) };
        let log = log_lines(&self.member.log);
        let notes = std::mem::take(&mut self.notes);
        self.row =
            Some(Row { name, idle, peak_kib, hwm_kib, after, baseline, loaded, took, alive, answers, notes, log });
        out
    }

    /// A put and a linearizable get of what it wrote, from a new client.
    fn answers(&self) -> Result<(), String> {
        let client = self.client(Duration::from_secs(10));
        client.put(&PutRequest::new("bounds/after", "ok")).map_err(|e| e.to_string())?;
        let got = client.range(&RangeRequest::key("bounds/after")).map_err(|e| e.to_string())?;
        match got.kvs.first() {
            Some(kv) if kv.value == b"ok" => Ok(()),
            _ => Err("the put is not read back".into()),
        }
    }
}

/// The member's warnings and errors, counted by their text without numbers (the first of
/// each kind kept whole).
fn log_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut kinds: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")) {
        let kind: String = line.chars().skip_while(|c| *c != ']').filter(|c| !c.is_ascii_digit()).take(80).collect();
        let entry = kinds.entry(kind).or_insert((0, line.to_string()));
        entry.0 += 1;
    }
    kinds.into_values().map(|(n, first)| format!("{n} × {first}")).collect()
}

/// Raises this process's open-file limit: the loads open 10,000 connections (and a gRPC
/// client takes more than one descriptor), beyond the usual soft limit of 1,024. As root the
/// hard limit may be raised too; otherwise the soft one goes up to it.
fn raise_fd_limit() {
    const WANTED: u64 = 65_536;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with valid structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= WANTED {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: WANTED, rlim_max: limit.rlim_max.max(WANTED) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: limit.rlim_max, ..limit });
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors.iter().map(|(e, n)| format!("{n} × `{e}`")).collect::<Vec<_>>().join("; ")
}

fn print(row: &Row) {
    println!("\n### {}\n", row.name);
    println!("| measure | value |\n|---|---|");
    println!(
        "| RSS idle → peak during load (VmHWM) → after | {} → {} ({}) → {} MiB |",
        mib(row.idle.now_kib),
        mib(row.peak_kib),
        mib(row.hwm_kib),
        mib(row.after.now_kib)
    );
    println!(
        "| probe p50 / p99, baseline | {:.2} / {:.2} ms ({} calls) |",
        row.baseline.p50_ms(),
        row.baseline.p99_ms(),
        row.baseline.calls()
    );
    println!(
        "| probe p50 / p99, under load | {:.2} / {:.2} ms ({} calls in {:.0} s) |",
        row.loaded.p50_ms(),
        row.loaded.p99_ms(),
        row.loaded.calls(),
        row.took.as_secs_f64()
    );
    println!("| p99 factor | {:.1} |", row.loaded.p99_ms() / row.baseline.p99_ms().max(0.001));
    println!("| probe errors | {} |", errors(&row.loaded.errors));
    println!(
        "| member after | {} |",
        match (&row.answers, row.alive) {
            (_, false) => "exited".to_string(),
            (Ok(()), true) => "up, answers a put and a linearizable get".to_string(),
            (Err(e), true) => format!("up, but a put/get failed: {e}"),
        }
    );
    for note in &row.notes {
        println!("| load | {note} |");
    }
    for line in &row.log {
        println!("| member log | {line} |");
    }
}

#[test]
#[ignore = "a measurement of several minutes: make bounds"]
fn measure() {
    crate::harness::init_logs();
    raise_fd_limit();
    let chosen = std::env::var("RAFTKV_BOUNDS").unwrap_or_default();
    let mut failed = Vec::new();
    for scenario in load::SCENARIOS {
        if !chosen.is_empty() && !chosen.split(',').any(|c| c == scenario.name) {
            continue;
        }
        println!("\n{}: {}", scenario.name, scenario.what);
        let mut bench = Bench::start(scenario.name);
        (scenario.run)(&mut bench);
        let mut row = bench.row.take().expect("the scenario ran its load");
        // What the scenario noted after its load (its clients' totals).
        row.notes.append(&mut bench.notes);
        print(&row);
        if !row.alive || row.answers.is_err() {
            failed.push(row.name);
        }
    }
    assert!(failed.is_empty(), "the member did not survive: {failed:?}");
}
