//! `raftkvctl diagnose` names the cause it is shown: each cause induced on real member
//! processes while it watches (a stalled log write, a huge delete, a partitioned leader), and
//! a quiet member called healthy.

use std::process::{Child, Stdio};
use std::time::Duration;

use raftkv::pb::{DeleteRangeRequest, PutRequest, TxnRequest};

use crate::harness::process::{agreed_leader, ctl_command, position_of, spawn_cluster_with_env, Member};

/// `raftkvctl diagnose` on `endpoints`, started now, watching for `interval`.
fn diagnose(endpoints: &str, interval: &str) -> Child {
    ctl_command(endpoints, &["diagnose", "--interval", interval]).stdout(Stdio::piped()).spawn().unwrap()
}

/// Its verdict lines and whether it exited 0 (nothing found).
fn verdict(child: Child) -> (String, bool) {
    let out = child.wait_with_output().unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.success())
}

fn member(dir: &std::path::Path, name: &str, extra: &[&str]) -> Member {
    let mut m = Member::new(name, dir);
    m.env.push(("RAFTKV_DEBUG_CONTROL", "1".into()));
    m.spawn(&dir.join(name), "", extra);
    m.wait_healthy(Duration::from_secs(20));
    m
}

#[test]
fn a_quiet_member_is_healthy_and_a_stalled_disk_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = member(dir.path(), "disk", &[]);
    let client = m.client();
    client.put(&PutRequest::new("k", "v")).unwrap();
    let (out, healthy) = verdict(diagnose(&m.endpoint(), "1s"));
    assert!(healthy && out.contains("healthy: nothing slow"), "{out}");

    // Every log write of the next ones stalls 300 ms: the disk, as diagnose must say.
    let watching = diagnose(&m.endpoint(), "3s");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(m.control("PUT", "/debug/failpoints/raft_before_save", "5*sleep(300)").unwrap().status, 204);
    for i in 0..5 {
        client.put(&PutRequest::new(format!("k{i}"), "v")).unwrap();
    }
    let (out, healthy) = verdict(watching);
    assert!(!healthy, "{out}");
    assert!(out.contains("fsync p99") && out.contains("the disk is the bottleneck"), "{out}");
    assert!(out.contains("write stages, mean/p99 ms: "), "{out}");
}

#[test]
fn a_huge_delete_is_named_as_a_slow_apply() {
    let dir = tempfile::tempdir().unwrap();
    // A 5 ms apply budget, which a put (tens of µs) never reaches and the delete of 10,000
    // keys below exceeds on any machine.
    let m = member(dir.path(), "apply", &["--experimental-warning-apply-duration", "5ms"]);
    let client = m.client();
    for batch in 0..100 {
        let puts = (0..100).map(|i| {
            let put = PutRequest::new(format!("big/{batch:03}/{i:03}"), "x".repeat(100));
            raftkv::pb::RequestOp { request: Some(raftkv::pb::request_op::Request::RequestPut(put)) }
        });
        client.txn(&TxnRequest { success: puts.collect(), ..Default::default() }).unwrap();
    }
    let watching = diagnose(&m.endpoint(), "3s");
    std::thread::sleep(Duration::from_millis(200));
    client.delete_range(&DeleteRangeRequest::prefix("big/")).unwrap();
    let (out, healthy) = verdict(watching);
    assert!(!healthy, "{out}");
    assert!(out.contains("took longer than --experimental-warning-apply-duration to apply"), "{out}");
}

#[test]
fn a_partitioned_leader_is_named_by_the_leader_change_on_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let members = spawn_cluster_with_env("p", 3, dir.path(), &[("RAFTKV_DEBUG_CONTROL", "1")]);
    let leader_id = agreed_leader(&members, 0, Duration::from_secs(20)).expect("a leader");
    let leader = position_of(&members, leader_id);
    let ids: Vec<String> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, m)| format!("{:x}", m.status().unwrap().header.unwrap().member_id))
        .collect();
    let endpoints: Vec<String> = members.iter().map(Member::endpoint).collect();
    let watching = diagnose(&endpoints.join(","), "6s");
    std::thread::sleep(Duration::from_millis(300));
    let cut = members[leader].control("PUT", "/debug/partition?direction=both", &ids.join(",")).unwrap();
    assert_eq!(cut.status, 204);
    // The other two elect a new leader within the window, and say so.
    let (out, healthy) = verdict(watching);
    assert!(!healthy, "{out}");
    let changed: Vec<&str> = out.lines().filter(|l| l.contains(": leader changed ")).collect();
    assert!(!changed.is_empty() && changed.iter().all(|l| l.ends_with("check the network and CPU")), "{out}");
    assert!(changed.iter().all(|l| !l.starts_with(&members[leader].endpoint())), "{out}");
}
