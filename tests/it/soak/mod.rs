//! The fault-injection soak (issue 16): a 3-member cluster of real `raftkv` processes under
//! recorded mixed traffic and a random fault schedule, checked for linearizability, etcd's
//! watch guarantees, lost acknowledged writes, equal HashKV on every member and leases that
//! never expire early. docs/reliability.md describes what it injects and how to replay.
//!
//! It runs `RAFTKV_SOAK_SECONDS` (60 by default: the short run of `make test`; `make soak`
//! sets `SOAK_MINUTES`) with the schedule drawn from `RAFTKV_SOAK_SEED` (random, printed),
//! among the faults `RAFTKV_SOAK_FAULTS` names (`kill,pause,...`, see `Fault::ALL`; all by
//! default), each segment checked within `RAFTKV_SOAK_CHECK_SECONDS` (120).
//! It lives in the integration binary beside the checker and harness it uses (as
//! `crash.rs` does, with its rounds in a variable), not in a binary of its own that would
//! compile both again and run the checker's unit tests twice.
//!
//! The run is a sequence of **segments**: traffic starts, one fault is injected and undone,
//! traffic stops; at the **cut** every member is running, healed and at the same applied
//! index, one recorded write ends the segment's watches, and one recorded read of every key
//! gives the store the next segment starts from. Each segment's history is checked alone
//! (on `soak-check`, while the next one runs), which keeps every check small: a whole run is
//! far beyond the search. This assumes a call of unknown outcome takes effect before the
//! cut or never; by the cut every member has applied everything any leader had, so a late
//! one would show as a violation in the next segment, not pass unseen.

mod background;
mod cluster;
mod faults;
mod report;
mod traffic;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use prost::Message as _;
use raftkv::pb::{HashKvRequest, HashKvResponse, RangeRequest};
use raftkv::Client;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::history::client::RecordingClient;
use crate::history::*;
use background::{WatchSpec, WatchStats};
use cluster::{SoakCluster, MEMBERS};
use faults::Fault;
use report::{Checker, Report, Segment};
use traffic::{Workload, LEASE_ID_BASE, ROOT, ROOT_END};

const CLIENTS: usize = 6;
/// The history's number for the driver's own calls (the cut's write and read).
const DRIVER: usize = CLIENTS + 2;
/// Traffic before the fault and after it is undone, in every segment.
const WARMUP: Duration = Duration::from_secs(2);
const COOLDOWN: Duration = Duration::from_secs(2);
/// The keeper's lease TTL: kept alive every second, it must never run out.
const KEEPER_TTL: i64 = 5;
/// Bounds on the cut: beyond them the cluster is stuck, which is a finding.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
const WATCHES_END_WITHIN: Duration = Duration::from_secs(30);
const CUT_CALL_WITHIN: Duration = Duration::from_secs(30);
const HASHES_AGREE_WITHIN: Duration = Duration::from_secs(20);

struct Settings {
    run: Duration,
    seed: u64,
    check_limit: Duration,
    faults: Vec<Fault>,
}

fn settings() -> Settings {
    let var = |name: &str| std::env::var(name).ok().map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{name}={v}")));
    let seed = var("RAFTKV_SOAK_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        now.as_nanos() as u64 % 1_000_000_000
    });
    Settings {
        run: Duration::from_secs(var("RAFTKV_SOAK_SECONDS").unwrap_or(60)),
        seed,
        check_limit: Duration::from_secs(var("RAFTKV_SOAK_CHECK_SECONDS").unwrap_or(120)),
        faults: Fault::allowed(&std::env::var("RAFTKV_SOAK_FAULTS").unwrap_or_default()),
    }
}

/// The watches every segment records: the whole store with prev_kv, resumed across breaks;
/// and the pods, as a Kubernetes reflector watches them (no prev_kv, a new stream every few
/// seconds).
fn watch_specs() -> [WatchSpec; 2] {
    [
        WatchSpec {
            client: CLIENTS,
            key: ROOT,
            end: ROOT_END,
            prev_kv: true,
            restart_after: None,
            slow_restart: Duration::ZERO,
        },
        WatchSpec {
            client: CLIENTS + 1,
            key: "s/registry/pods/",
            end: "s/registry/pods0",
            prev_kv: false,
            restart_after: Some(Duration::from_secs(4)),
            slow_restart: Duration::from_secs(3),
        },
    ]
}

#[test]
fn faults_keep_linearizability_the_watch_guarantees_and_every_acknowledged_write() {
    let settings = settings();
    eprintln!("soak: seed {} for {:?} (RAFTKV_SOAK_SEED, RAFTKV_SOAK_SECONDS)", settings.seed, settings.run);
    assert!(!settings.faults.is_empty(), "RAFTKV_SOAK_FAULTS allows no fault");
    let dir = tempfile::Builder::new().prefix("raftkv-soak-").tempdir().unwrap();
    let mut cluster = SoakCluster::start(dir.path());
    let endpoints = cluster.endpoints();
    let seed = settings.seed;
    let save_as = move |segment| std::env::temp_dir().join(format!("raftkv-soak-{seed}-segment-{segment}.jsonl"));
    let checker = Checker::spawn(settings.check_limit, save_as);
    let mut report = Report { seed, ..Report::default() };
    // Recorded leases outlive the run: lease expiry is not in the model.
    let lease_ttl = (2 * settings.run.as_secs() as i64).max(3600);
    let mut run = Run {
        workloads: (0..CLIENTS).map(|id| Workload::new(id, seed)).collect(),
        rng: StdRng::seed_from_u64(seed),
        start: Start::default(),
        alive: BTreeSet::new(),
        learners: 0,
        lease_ttl,
        faults: settings.faults.clone(),
    };
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    std::thread::scope(|s| {
        let keeper = named(s, "soak-keeper", || background::keep_lease(&endpoints, KEEPER_TTL, &stop));
        let compactor = named(s, "soak-compact", || background::compact(&endpoints, &stop));
        let mut index = 0;
        while began.elapsed() < settings.run && report.findings.is_empty() {
            index += 1;
            match run.segment(&mut cluster, index, &mut report) {
                Ok(segment) => checker.check(segment),
                Err(finding) => report.findings.push(format!("segment {index}: {finding}")),
            }
        }
        report.traffic = began.elapsed();
        stop.store(true, Ordering::Relaxed);
        report.keeper = keeper.join().expect("the keeper");
        report.compactions = compactor.join().expect("the compactor");
    });
    if report.findings.is_empty() {
        final_checks(&mut cluster, &run, &mut report);
    }
    for w in &run.workloads {
        report.ops.merge(&w.counts);
    }
    report.verdicts = checker.finish();
    eprintln!("{report}");
    if !report.passed() {
        eprintln!("soak: member logs and data kept in {}", dir.keep().display());
        panic!("the soak failed (seed {seed}); see the report above");
    }
}

fn named<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new().name(name.into()).spawn_scoped(s, f).expect("spawn a soak thread")
}

/// What carries over from one segment to the next.
struct Run {
    workloads: Vec<Workload>,
    rng: StdRng,
    /// The store at the last cut.
    start: Start,
    /// The recorded leases alive at the last cut.
    alive: BTreeSet<i64>,
    learners: usize,
    lease_ttl: i64,
    /// The faults the schedule draws from (`RAFTKV_SOAK_FAULTS`, all by default).
    faults: Vec<Fault>,
}

impl Run {
    /// Runs one segment with one fault and cuts it.
    fn segment(&mut self, cluster: &mut SoakCluster, index: usize, report: &mut Report) -> Result<Segment, String> {
        let fault = Fault::draw(&mut self.rng, &self.faults);
        let recorder = Recorder::default();
        let (stop, abort, end_revision) = (AtomicBool::new(false), AtomicBool::new(false), AtomicI64::new(0));
        let endpoints = cluster.endpoints();
        let (rng, learners, alive, lease_ttl) = (&mut self.rng, &mut self.learners, &self.alive, self.lease_ttl);
        let specs = watch_specs();
        let (cut, stats) = std::thread::scope(|s| {
            let watchers: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let (recorder, endpoints, end, abort) = (&recorder, &endpoints, &end_revision, &abort);
                    named(s, "soak-watch", move || background::watch(spec, recorder, endpoints, i, end, abort))
                })
                .collect();
            let clients: Vec<_> = self
                .workloads
                .iter_mut()
                .map(|w| {
                    let (recorder, endpoints, stop) = (&recorder, &endpoints, &stop);
                    named(s, "soak-client", move || w.run(&w.clients(endpoints, recorder), stop, alive, lease_ttl))
                })
                .collect();
            std::thread::sleep(WARMUP);
            let injected = fault.inject(cluster, rng, learners);
            std::thread::sleep(COOLDOWN);
            stop.store(true, Ordering::Relaxed);
            clients.into_iter().for_each(|c| c.join().expect("a client thread"));
            let cut = injected.and_then(|what| {
                eprintln!("soak: segment {index}: {what}");
                report.faults.push((fault.name(), what));
                cut(cluster, index, &recorder, &end_revision, &watchers)
            });
            if cut.is_err() {
                // Killing the members breaks the streams the watches block on.
                abort.store(true, Ordering::Relaxed);
                cluster.members.iter_mut().filter(|m| m.running()).for_each(|m| m.kill());
            }
            let mut stats = WatchStats::default();
            for w in watchers {
                stats.merge(&w.join().expect("a watch thread"));
            }
            (cut, stats)
        });
        report.watches.merge(&stats);
        let cut = cut?;
        report.hash_checks += 1;
        let mut history = recorder.into_history();
        history.start = std::mem::replace(&mut self.start, cut.start);
        self.alive = cut.leases.clone();
        Ok(Segment { index, fault: fault.name(), history, leases: cut.leases })
    }
}

/// What a cut read: the store and the recorded leases alive.
struct Cut {
    start: Start,
    leases: BTreeSet<i64>,
}

/// Heals everything, waits for the members to converge, ends the watches with a recorded
/// write, reads every key (the next segment's start), and checks HashKV on every member.
fn cut(
    cluster: &mut SoakCluster,
    index: usize,
    recorder: &Recorder,
    end_revision: &AtomicI64,
    watchers: &[ScopedJoinHandle<'_, WatchStats>],
) -> Result<Cut, String> {
    cluster.heal_all();
    let leader = cluster.converge(CONVERGE_WITHIN)?;
    let endpoint = cluster.members[leader].endpoint();
    let driver =
        RecordingClient { client: Client::new(&[endpoint], traffic::CLIENT_TIMEOUT).unwrap(), recorder, id: DRIVER };
    let mut attempt = 0;
    let ended = until_answered(|| {
        attempt += 1;
        let value = format!("end-{index}-{attempt}").into_bytes();
        driver.call(Request::Kv(KvOp::Put { key: format!("{ROOT}end").into_bytes(), value, lease: 0 }))
    })?;
    end_revision.store(ended.0, Ordering::Relaxed);
    let deadline = Instant::now() + WATCHES_END_WITHIN;
    while !watchers.iter().all(|w| w.is_finished()) {
        if Instant::now() > deadline {
            return Err(format!("a watch never reached revision {} ({WATCHES_END_WITHIN:?})", ended.0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let everything = Request::Kv(KvOp::Range { key: ROOT.into(), end: ROOT_END.into(), limit: 0 });
    let (revision, response) = until_answered(|| driver.call(everything.clone()))?;
    let Response::Kv(KvResult::Range { kvs, .. }) = response else { unreachable!("a range answers a range") };
    let leases: BTreeSet<i64> = driver
        .client
        .lease_leases()
        .map_err(|e| format!("lease list at the cut: {e}"))?
        .leases
        .into_iter()
        .map(|l| l.id)
        .filter(|id| *id >= LEASE_ID_BASE)
        .collect();
    hashes_agree(cluster, revision)?;
    let start = Start { revision, kvs, leases: leases.iter().copied().collect() };
    Ok(Cut { start, leases })
}

/// Calls `call` until it is answered (within `CUT_CALL_WITHIN`): the answer's revision and
/// response.
fn until_answered(mut call: impl FnMut() -> Outcome) -> Result<(i64, Response), String> {
    let deadline = Instant::now() + CUT_CALL_WITHIN;
    loop {
        if let Outcome::Ok { revision: Some(revision), response } = call() {
            return Ok((revision, response));
        }
        if Instant::now() > deadline {
            return Err(format!("no call at the cut answered within {CUT_CALL_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every member's HashKV at `revision` (a gRPC-only call: etcd's gateway maps it to Hash's
/// path, so raftkv's gateway has none either). Hashes compare only at one compact revision (a
/// hash covers the revisions after it), and the compactor runs on through the cut, so until
/// every member answers the same one the call is repeated.
fn hashes_agree(cluster: &SoakCluster, revision: i64) -> Result<(), String> {
    let request = HashKvRequest { revision }.encode_to_vec();
    let deadline = Instant::now() + HASHES_AGREE_WITHIN;
    loop {
        let mut hashes: Vec<(String, HashKvResponse)> = Vec::new();
        for m in &cluster.members[..MEMBERS] {
            let (trailers, message) =
                crate::grpc::grpc_call(&m.endpoint(), "/etcdserverpb.Maintenance/HashKV", &request);
            let answer = message.get(5..).and_then(|body| HashKvResponse::decode(body).ok());
            let answer = answer.ok_or_else(|| format!("{}: HashKV failed: {}", m.name, trailers.trim()))?;
            hashes.push((m.name.clone(), answer));
        }
        let all = || {
            let each = hashes.iter().map(|(m, h)| format!("{m}: {:x} (compacted at {})", h.hash, h.compact_revision));
            each.collect::<Vec<_>>().join(", ")
        };
        let compacted = hashes[0].1.compact_revision;
        if hashes.iter().all(|(_, h)| h.compact_revision == compacted) {
            if hashes.iter().any(|(_, h)| h.hash != hashes[0].1.hash) {
                return Err(format!("HashKV at revision {revision} differs: {}", all()));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("HashKV at revision {revision}: compact revisions never agreed: {}", all()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// After the last cut: every acknowledged ledger write is on every member.
fn final_checks(cluster: &mut SoakCluster, run: &Run, report: &mut Report) {
    let ledger: Vec<(&Vec<u8>, &traffic::Acked)> = run.workloads.iter().flat_map(|w| w.ledger.iter()).collect();
    report.ledger = (run.workloads.iter().map(|w| w.counts.0.get("ledger put").map_or(0, |c| c.0)).sum(), ledger.len());
    for i in 0..MEMBERS {
        let client = Client::new(&[cluster.members[i].endpoint()], Duration::from_secs(10)).unwrap();
        let read = client.range(&RangeRequest { serializable: true, ..RangeRequest::prefix(format!("{ROOT}ledger/")) });
        let kvs = match read {
            Ok(resp) => resp.kvs,
            Err(e) => {
                report.findings.push(format!("{}: the ledger read failed: {e}", cluster.members[i].name));
                continue;
            }
        };
        for (key, acked) in &ledger {
            let found = kvs.iter().find(|kv| &&kv.key == key);
            let n = found.and_then(|kv| traffic::value_number(&kv.value));
            let kept = found.is_some_and(|kv| kv.mod_revision >= acked.revision) && n.is_some_and(|n| n >= acked.n);
            if !kept {
                let had = found.map_or("nothing".to_string(), |kv| {
                    format!("{} at revision {}", String::from_utf8_lossy(&kv.value), kv.mod_revision)
                });
                report.lost.push(format!(
                    "{}: {} acknowledged write {} at revision {}, holds {had}",
                    cluster.members[i].name,
                    String::from_utf8_lossy(key),
                    acked.n,
                    acked.revision
                ));
            }
        }
    }
}
