//! Compaction whose removal of dead rows is cut short by SIGKILL: a child process builds a
//! history, compacts it and keeps writing; its removal runs one batch and then pauses for an
//! hour (`compaction_sleep_interval`), so the kill always lands in the middle. After the kill
//! the data dir says the removal is unfinished; a member opened on it finishes the removal, and
//! every acknowledged write is there.

use crate::harness::process::this_test;
use crate::harness::*;
use raftkv::pb::*;
use raftkv::storage::{meta, Cf, Db};
use raftkv::Node;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const CHILD_DIR: &str = "RAFTKV_COMPACTION_CHILD_DIR";
/// The history compacted: KEYS keys, each put VERSIONS times (one txn per version).
const KEYS: usize = 100;
const VERSIONS: usize = 50;
/// Rows per removal batch in the child: far fewer than the dead rows.
const CHILD_BATCH_ROWS: usize = 100;

fn metric(node: &Node, name: &str) -> f64 {
    let text = node.metrics();
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    line.and_then(|l| l[name.len()..].trim().parse().ok()).unwrap_or_else(|| panic!("no metric {name}"))
}

/// The child: not a test of its own; it only runs when the parent sets `CHILD_DIR`.
#[test]
#[ignore = "run by compaction_interrupted_by_sigkill_resumes as a child process"]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    init_logs();
    let mut cfg = config(dir.as_ref());
    cfg.compaction_batch_limit = CHILD_BATCH_ROWS;
    cfg.compaction_sleep_interval = Duration::from_secs(3600);
    let node = Node::start(cfg).expect("start node");
    for v in 0..VERSIONS {
        let success = (0..KEYS)
            .map(|k| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest::new(format!("h/{k:03}"), format!("{v}")))),
            })
            .collect();
        node.txn(TxnRequest { success, ..Default::default() }).expect("history txn");
    }
    let stdout = std::sync::Arc::new(parking_lot::Mutex::new(std::io::stdout()));
    let ack = |out: &parking_lot::Mutex<std::io::Stdout>, line: String| {
        let mut out = out.lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    std::thread::scope(|s| {
        // A writer racing the removal: every acknowledged put must survive it and the kill.
        s.spawn(|| {
            for i in 0.. {
                let key = format!("w/{i:08}");
                let rev = put(&node, &key, &i.to_string());
                ack(&stdout, format!("ack {key} {i} {rev}"));
            }
        });
        let at = node.revision();
        node.compact(CompactionRequest { revision: at, physical: false }).expect("compact");
        ack(&stdout, format!("compacted {at}"));
        assert!(
            eventually(Duration::from_secs(60), || metric(&node, "etcd_debugging_mvcc_db_compaction_keys_total") > 0.0)
        );
        // A put after the first batch: its synced raft write makes the batch durable too.
        put(&node, "after-first-batch", "x");
        ack(&stdout, "removing".to_string());
    });
}

/// Rows of the `kv` family at or below `rev`, as (key, mod revision).
fn rows_at_or_below(db: &Db, rev: i64) -> Vec<(Vec<u8>, i64)> {
    use prost::Message as _;
    let mut rows = Vec::new();
    for item in db.raw().iterator_cf(db.cf(Cf::Kv), rocksdb::IteratorMode::Start) {
        let (_, value) = item.unwrap();
        let kv = KeyValue::decode(&value[..]).unwrap();
        if kv.mod_revision <= rev {
            rows.push((kv.key, kv.mod_revision));
        }
    }
    rows
}

fn compact_record(dir: &Path, key: &[u8]) -> Option<u64> {
    let db = Db::open(dir).unwrap();
    db.get(Cf::Meta, key).unwrap().map(|_| db.get_meta_u64(key).unwrap())
}

#[test]
fn compaction_interrupted_by_sigkill_resumes() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let env = [(CHILD_DIR, dir.path().display().to_string())];
    let mut child = this_test("compaction::compaction_crash_child", &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut compacted_at = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        // The child's first line follows libtest's "test <name> ... ".
        let line = line.rsplit(" ... ").next().unwrap_or_default();
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["ack", key, value, rev] => {
                acked.insert(key.to_string(), (value.to_string(), rev.parse().unwrap()));
            }
            ["compacted", rev] => compacted_at = Some(rev.parse::<i64>().unwrap()),
            ["removing"] => break,
            _ => {}
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at = compacted_at.expect("the child compacted");
    eprintln!("killed mid-removal of the compaction at {at}; {} writes acknowledged", acked.len());

    // The data dir as the kill left it: scheduled, not finished, dead rows still there.
    assert_eq!(compact_record(dir.path(), meta::SCHEDULED_COMPACT_REVISION), Some(at as u64));
    assert_eq!(compact_record(dir.path(), meta::COMPACT_REVISION), None, "the removal had not finished");
    let dead_left = {
        let db = Db::open(dir.path()).unwrap();
        let rows = rows_at_or_below(&db, at);
        let keys: HashSet<&Vec<u8>> = rows.iter().map(|(k, _)| k).collect();
        rows.len() - keys.len()
    };
    assert!(dead_left > 0, "dead rows remain");

    let node = start(dir.path());
    node.range(RangeRequest::key("after-crash")).unwrap();
    let old = node.range(RangeRequest { revision: at - 1, ..RangeRequest::key("h/001") });
    assert!(matches!(old, Err(raftkv::Error::Compacted)), "{old:?}");
    let finished = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count";
    assert!(eventually(Duration::from_secs(120), || metric(&node, finished) >= 1.0), "the resumed removal finished");
    let stored: BTreeMap<Vec<u8>, KeyValue> =
        node.range(RangeRequest::prefix("w/")).unwrap().kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    for (key, (value, rev)) in &acked {
        let kv = stored.get(key.as_bytes()).unwrap_or_else(|| panic!("acknowledged key {key} lost"));
        assert_eq!((kv.value.as_slice(), kv.mod_revision), (value.as_bytes(), *rev), "{key}");
    }
    for k in [0, KEYS - 1] {
        let kv = get(&node, &format!("h/{k:03}")).unwrap();
        assert_eq!((kv.value, kv.version), ((VERSIONS - 1).to_string().into_bytes(), VERSIONS as i64));
    }
    node.stop().unwrap();
    drop(node);

    // Removal done: one row per key at or below the compact revision, and it says so.
    assert_eq!(compact_record(dir.path(), meta::COMPACT_REVISION), Some(at as u64));
    let db = Db::open(dir.path()).unwrap();
    let rows = rows_at_or_below(&db, at);
    let keys: HashSet<&Vec<u8>> = rows.iter().map(|(k, _)| k).collect();
    assert_eq!(rows.len(), keys.len(), "a dead row survived the resumed removal");
    assert!(rows.iter().filter(|(k, _)| k.starts_with(b"h/")).count() == KEYS);
}
