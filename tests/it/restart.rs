//! A member stopped cleanly comes back with everything: data, revisions, compaction state,
//! applied index; and a data dir in use by another member is refused with an error, not a
//! panic.

use crate::harness::*;
use raftkv::pb::*;
use raftkv::raft::storage::RaftStorage;
use raftkv::storage::Db;
use raftkv::{Error, Node};
use std::sync::Arc;

#[test]
fn state_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    for i in 0..50 {
        put(&node, &format!("key/{i:02}"), &format!("value-{i}"));
    }
    node.delete_range(DeleteRangeRequest::key("key/07")).unwrap();
    put(&node, "key/01", "again");
    let compact_at = node.revision() - 5;
    node.compact(CompactionRequest { revision: compact_at, physical: true }).unwrap();
    let revision = node.revision();
    let applied = node.applied_index();
    let before = node.range(RangeRequest::prefix("key/")).unwrap();
    let ids = (node.member_id(), node.cluster_id());
    node.stop().unwrap();
    // The data dir is released with the last handle.
    drop(node);

    let node = start(dir.path());
    assert_eq!((node.member_id(), node.cluster_id()), ids);
    assert_eq!(node.revision(), revision);
    // Only the new leader's empty entry is applied on top: re-applying old writes would have
    // moved the revision and the versions.
    assert!(
        (applied..=applied + 1).contains(&node.applied_index()),
        "applied {} after {applied}",
        node.applied_index()
    );
    let after = node.range(RangeRequest::prefix("key/")).unwrap();
    assert_eq!(after.kvs, before.kvs);
    assert_eq!(get(&node, "key/01"), Some(kv("key/01", "again", 3, revision, 2)));
    let old = node.range(RangeRequest { revision: compact_at - 1, ..RangeRequest::key("key/01") });
    assert!(matches!(old, Err(Error::Compacted)), "{old:?}");
    assert_eq!(put(&node, "key/new", "x"), revision + 1);
    node.stop().unwrap();
}

#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let second = Node::start(config(dir.path()));
    match second {
        Err(err @ Error::DataDir { .. }) => assert!(err.to_string().contains("lock"), "{err}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("two members opened one data dir"),
    }
    node.stop().unwrap();
}

#[test]
fn snapshots_compact_the_raft_log_and_restart_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_count = 100;
    cfg.snapshot_catchup_entries = 20;
    init_logs();
    let node = Node::start(cfg.clone()).unwrap();
    for i in 0..450 {
        put(&node, &format!("k{}", i % 30), &i.to_string());
    }
    let applied = node.applied_index();
    node.stop().unwrap();
    drop(node);

    let db = Arc::new(Db::open(dir.path()).unwrap());
    let log = RaftStorage::open(db.clone()).unwrap();
    let snap = log.snapshot_metadata().index;
    assert!(snap >= 400 && snap <= applied, "snapshot index {snap}, applied {applied}");
    assert_eq!(log.first_index(), snap - 20, "the log keeps the catch-up entries");
    drop((log, db));

    let node = Node::start(cfg).unwrap();
    assert_eq!(get(&node, "k29").unwrap().value, b"449");
    assert!(node.applied_index() > applied, "the log after the snapshot is replayed and extended");
    node.stop().unwrap();
}

#[test]
fn a_new_member_leads_its_own_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    assert_eq!(put(&node, "x", "y"), 2);
    assert_eq!(node.leader_id(), node.member_id());
    node.stop().unwrap();
}
