//! A failed write on the Ready path, the apply path, a snapshot install or the removal of
//! compacted revisions stops the member cleanly: the caller gets an error (never a hang or a false success), `stop`
//! reports the fatal error, every thread is joined, and a restart on the same data dir has
//! every acknowledged write.
//! Alone in its binary because fault points are process-wide.

#[path = "harness/mod.rs"]
#[allow(dead_code)] // this binary uses a few of the shared helpers
mod harness;

use harness::*;
use raftkv::{failpoint, Error};

fn fatal_write_stops_the_member(point: &str) {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    assert_eq!(put(&node, "before", "1"), 2);
    failpoint::arm(point);
    let failed = node.put(raftkv::pb::PutRequest::new("during", "x"));
    failpoint::disarm(point);
    assert!(matches!(failed, Err(Error::Stopped)), "{point}: {failed:?}");
    match node.stop() {
        Err(Error::Storage(e)) => assert!(e.to_string().contains(point), "{e}"),
        other => panic!("{point}: stop returned {other:?}"),
    }
    assert!(matches!(node.put(raftkv::pb::PutRequest::new("after", "x")), Err(Error::Stopped)));
    drop(node);
    let node = start(dir.path());
    assert_eq!(get(&node, "before").unwrap().value, b"1");
    put(&node, "after-restart", "ok");
    node.stop().unwrap();
}

/// A failed removal batch stops the member as a failed apply does; the compaction itself is
/// applied, and the next start finishes its removal.
fn failed_removal_stops_the_member(point: &str) {
    use raftkv::pb::CompactionRequest;
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    for i in 0..10 {
        put(&node, "k", &i.to_string());
    }
    let at = node.revision();
    failpoint::arm(point);
    let physical = node.compact(CompactionRequest { revision: at, physical: true });
    failpoint::disarm(point);
    assert!(matches!(physical, Err(Error::Stopped)), "{point}: {physical:?}");
    match node.stop() {
        Err(Error::Storage(e)) => assert!(e.to_string().contains(point), "{e}"),
        other => panic!("{point}: stop returned {other:?}"),
    }
    drop(node);
    let node = start(dir.path());
    assert_eq!(get(&node, "k").unwrap().value, b"9");
    let old = node.range(raftkv::pb::RangeRequest { revision: at - 1, ..raftkv::pb::RangeRequest::key("k") });
    assert!(matches!(old, Err(Error::Compacted)), "{point}: {old:?}");
    // A physical compaction waits for every earlier removal, the resumed one included.
    put(&node, "k", "again");
    node.compact(CompactionRequest { revision: node.revision(), physical: true }).unwrap();
    node.stop().unwrap();
}

/// A follower whose snapshot install fails (before or after the install's WriteBatch) stops
/// alone, the others keep serving, and on restart it installs (again, or resumes from the
/// installed state) and converges.
fn failed_install_stops_only_that_member(point: &str) {
    use harness::cluster::Cluster;
    use std::time::Duration;
    let mut cluster = Cluster::start(3, |cfg| {
        cfg.snapshot_count = 100;
        cfg.snapshot_catchup_entries = 20;
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let lagging = (leader + 1) % 3;
    cluster.stop(lagging);
    for i in 0..400 {
        put(cluster.node(leader), &format!("k{i}"), "v");
    }
    failpoint::arm(point);
    cluster.restart(lagging);
    // A stopped member refuses every proposal; until then the probes are ordinary writes.
    let probe = || cluster.node(lagging).put(raftkv::pb::PutRequest::new("probe", "x"));
    let stopped = eventually(Duration::from_secs(20), || matches!(probe(), Err(Error::Stopped)));
    failpoint::disarm(point);
    assert!(stopped, "{point}: the follower kept running");
    match cluster.nodes[lagging].take().unwrap().stop() {
        Err(Error::Storage(e)) => assert!(e.to_string().contains(point), "{e}"),
        other => panic!("{point}: stop returned {other:?}"),
    }
    put(cluster.node(leader), "still", "serving");
    cluster.restart(lagging);
    cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(get(cluster.node(lagging), "k399").unwrap().value, b"v");
}

/// A panic on the raft or the apply thread stops the member with the panic reported, as a
/// failed write does; before, a member whose apply thread died stayed up answering nothing
/// (the soak found it), and one whose raft thread died stopped as if cleanly.
fn panic_stops_the_member(point: &str, thread: &str) {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    assert_eq!(put(&node, "before", "1"), 2);
    failpoint::set(point, "1*panic").unwrap();
    let failed = node.put(raftkv::pb::PutRequest::new("during", "x"));
    assert!(matches!(failed, Err(Error::Stopped | Error::Timeout)), "{point}: {failed:?}");
    match node.stop() {
        Err(e @ Error::Panicked { .. }) => {
            assert_eq!(e.to_string(), format!("thread {thread} panicked: failpoint {point}: panic"))
        }
        other => panic!("{point}: stop returned {other:?}"),
    }
    drop(node);
    let node = start(dir.path());
    assert_eq!(get(&node, "before").unwrap().value, b"1");
    put(&node, "after-restart", "ok");
    node.stop().unwrap();
}

/// One test, so the process-wide fault points never touch another test's member.
#[test]
fn failed_writes_stop_the_member_cleanly() {
    fatal_write_stops_the_member("raft_before_save");
    fatal_write_stops_the_member("apply_before_commit");
    panic_stops_the_member("raft_after_save", "raftkv-raft");
    panic_stops_the_member("apply_after_commit", "raftkv-apply");
    failed_removal_stops_the_member("compaction_before_batch");
    failed_removal_stops_the_member("compaction_after_batch");
    failed_install_stops_only_that_member("snapshot_before_install");
    failed_install_stops_only_that_member("snapshot_after_install");
}
