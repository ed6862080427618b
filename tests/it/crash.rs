//! Crash safety with a real SIGKILL: a child process runs a member and writes as fast as it
//! can from several threads, printing each acknowledged write; the test kills it at a random
//! moment, opens a member on the same data dir and checks that every acknowledged write is
//! there with its value and revision, and that revisions are consistent. Repeated with
//! different kill points on the same data dir (`RAFTKV_CRASH_ROUNDS`, default 4). Then the
//! same check with the child aborting itself at each write boundary's fault point
//! (`raft_before_save`, `raft_after_save`, `apply_before_commit`, `apply_after_commit`): a
//! crash between a Ready's write and its messages, or between an apply batch and its waiters.

use crate::harness::process::this_test;
use crate::harness::*;
use raftkv::pb::*;
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const CHILD_DIR: &str = "RAFTKV_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "RAFTKV_CRASH_CHILD_ROUND";
/// A fault point the child arms with `abort` once it has written a while.
const CHILD_ABORT_AT: &str = "RAFTKV_CRASH_CHILD_ABORT_AT";
const WRITERS: usize = 4;
/// Writes of the first writer before the child arms its fault point.
const WRITES_BEFORE_ABORT: usize = 200;

/// The child: not a test of its own; it only runs when the parent sets `CHILD_DIR`.
#[test]
#[ignore = "run by crash_safety_with_sigkill as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round: u32 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let abort_at = std::env::var(CHILD_ABORT_AT).ok();
    let node = start(dir.as_ref());
    let stdout = std::sync::Arc::new(parking_lot::Mutex::new(std::io::stdout()));
    std::thread::scope(|s| {
        for writer in 0..WRITERS {
            let (node, stdout, abort_at) = (node.clone(), stdout.clone(), abort_at.clone());
            s.spawn(move || {
                for i in 0.. {
                    if let Some(point) = abort_at.as_deref().filter(|_| writer == 0 && i == WRITES_BEFORE_ABORT) {
                        raftkv::failpoint::set(point, "abort").unwrap();
                    }
                    let key = format!("r{round}/w{writer}/{i:08}");
                    let value = format!("{key}={}", i * 7);
                    let resp = node.put(PutRequest::new(key.as_str(), value.as_str())).expect("put");
                    let mut out = stdout.lock();
                    writeln!(out, "ack {key} {value} {}", resp.header.unwrap().revision).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// How a round's child dies.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// SIGKILL from the parent after this long.
    Kill(Duration),
    /// `abort()` at this fault point, armed by the child.
    AbortAt(&'static str),
}

#[test]
fn crash_safety_with_sigkill() {
    init_logs();
    let rounds: u32 = std::env::var("RAFTKV_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = BTreeMap::new();
    let mut rng = rand::thread_rng();
    for round in 0..rounds {
        // Kill points vary from "still starting up" to "writing for a while".
        let after = Duration::from_millis(rng.gen_range(300..2500));
        crash_round(dir.path(), round, Crash::Kill(after), &mut acked_total);
    }
    assert!(!acked_total.is_empty(), "no write was acknowledged in any round");
}

#[test]
fn crash_at_every_write_boundary_keeps_acknowledged_writes() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = BTreeMap::new();
    let points = ["raft_before_save", "raft_after_save", "apply_before_commit", "apply_after_commit"];
    for (round, point) in points.into_iter().enumerate() {
        crash_round(dir.path(), round as u32, Crash::AbortAt(point), &mut acked_total);
    }
}

/// One child run on `dir` until `crash`, then every write acknowledged in any round so far
/// checked on a member reopened there.
fn crash_round(dir: &Path, round: u32, crash: Crash, acked_total: &mut BTreeMap<String, (String, i64)>) {
    let mut env = vec![(CHILD_DIR, dir.display().to_string()), (CHILD_ROUND, round.to_string())];
    if let Crash::AbortAt(point) = crash {
        env.push((CHILD_ABORT_AT, point.to_string()));
    }
    let mut child = this_test("crash::crash_child", &env).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("ack ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                acked.push((parts[0].to_string(), parts[1].to_string(), parts[2].parse::<i64>().unwrap()));
            }
        }
        acked
    });
    match crash {
        Crash::Kill(after) => {
            std::thread::sleep(after);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        Crash::AbortAt(point) => {
            let died = eventually(Duration::from_secs(60), || child.try_wait().unwrap().is_some());
            if !died {
                child.kill().unwrap();
                panic!("the child never reached {point}");
            }
            use std::os::unix::process::ExitStatusExt;
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(6), "{point}: the child died by abort(), not {status:?}");
        }
    }
    let acked = reader.join().unwrap();
    eprintln!("round {round}: {} writes acknowledged before {crash:?}", acked.len());
    if let Crash::AbortAt(point) = crash {
        assert!(acked.len() >= WRITES_BEFORE_ABORT, "{point}: the child crashed before arming it");
    }

    let node = start(dir);
    // A linearizable read waits until every committed entry is re-applied.
    node.range(RangeRequest::key("after-crash")).unwrap();
    let current = node.revision();
    let mut revisions = std::collections::HashSet::new();
    for (key, value, revision) in &acked {
        assert!(revisions.insert(*revision), "two acknowledged writes share revision {revision}");
        assert!(*revision <= current, "acked revision {revision} beyond store revision {current}");
        acked_total.insert(key.clone(), (value.clone(), *revision));
    }
    // Every acknowledged write of every round so far, with its value and revision (one
    // read of the whole keyspace keeps long soak runs linear).
    let stored: BTreeMap<Vec<u8>, KeyValue> =
        node.range(RangeRequest::prefix("r")).unwrap().kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    for (key, (value, revision)) in acked_total.iter() {
        let kv = stored.get(key.as_bytes()).unwrap_or_else(|| panic!("acknowledged key {key} lost"));
        assert_eq!(kv.value, value.as_bytes(), "value of {key}");
        assert_eq!((kv.mod_revision, kv.create_revision, kv.version), (*revision, *revision, 1), "{key}");
    }
    // Writes continue at the next revision.
    assert_eq!(put(&node, "after-crash", &round.to_string()), current + 1);
    node.stop().unwrap();
}
