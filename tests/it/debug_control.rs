//! The test fault control of a `raftkv` process (`src/api/gateway/debug.rs`): off unless
//! started with `RAFTKV_DEBUG_CONTROL=1` (its paths then answer 404 as any unknown path),
//! and with it on, failpoints armed, listed and disarmed over HTTP and partitions set and
//! healed, every malformed request refused with its reason. What a one-way partition does to
//! a cluster is `cluster::a_leader_that_cannot_send_is_replaced`.

use std::time::Duration;

use crate::harness::process::Member;

fn member(dir: &std::path::Path, control: Option<&str>) -> Member {
    let mut m = Member::new("d", dir);
    if let Some(value) = control {
        m.env.push(("RAFTKV_DEBUG_CONTROL", value.to_string()));
    }
    m.spawn(&dir.join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    m
}

#[test]
fn control_paths_are_unknown_without_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let m = member(dir.path(), None);
    for (method, target) in
        [("GET", "/debug/failpoints"), ("PUT", "/debug/failpoints/raft_after_save"), ("DELETE", "/debug/partition")]
    {
        let reply = m.control(method, target, "1*abort").unwrap();
        assert_eq!((reply.status, reply.text()), (404, "404 page not found\n".into()), "{method} {target}");
    }
    assert!(m.status().is_some(), "nothing was armed");
}

#[test]
fn failpoints_and_partitions_are_set_listed_and_cleared_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let m = member(dir.path(), Some("1"));
    let call = |method: &str, target: &str, body: &str| {
        let reply = m.control(method, target, body).unwrap();
        (reply.status, reply.text())
    };
    assert_eq!(call("GET", "/debug/failpoints", ""), (200, String::new()));
    assert_eq!(call("PUT", "/debug/failpoints/raft_after_save", "1000*sleep(1)").0, 204);
    assert_eq!(call("PUT", "/debug/failpoints/compaction_after_batch", "error").0, 204);
    assert_eq!(
        call("GET", "/debug/failpoints", ""),
        (200, "compaction_after_batch=error\nraft_after_save=1000*sleep(1)\n".into())
    );
    // The armed sleep fires on writes, which still succeed.
    m.client().put(&raftkv::pb::PutRequest::new("k", "v")).expect("a put through a 1 ms stall");
    let (status, reason) = call("PUT", "/debug/failpoints/raft_after_save", "sleep(soon)");
    assert_eq!(status, 400);
    assert!(reason.starts_with("bad fault action \"sleep(soon)\""), "{reason}");
    let (status, reason) = call("PUT", "/debug/failpoints/nowhere", "error");
    assert_eq!(status, 400);
    assert!(reason.starts_with("unknown fault point \"nowhere\""), "{reason}");
    assert_eq!(call("PUT", "/debug/failpoints/raft_after_save", "off").0, 204);
    assert_eq!(call("PUT", "/debug/failpoints/compaction_after_batch", "off").0, 204);
    assert_eq!(call("GET", "/debug/failpoints", ""), (200, String::new()));

    assert_eq!(call("PUT", "/debug/partition", "8e9e05c52164694d,ABC").0, 204);
    assert_eq!(call("PUT", "/debug/partition?direction=out", "1").0, 204);
    assert_eq!(call("PUT", "/debug/partition?direction=in", "1").0, 204);
    assert_eq!(
        call("PUT", "/debug/partition?direction=sideways", "1"),
        (400, "direction \"sideways\": want out, in or both\n".into())
    );
    assert_eq!(call("PUT", "/debug/partition", "12,zz"), (400, "\"zz\" is not a hex member id\n".into()));
    assert_eq!(call("PUT", "/debug/partition", "").0, 400);
    assert_eq!(call("DELETE", "/debug/partition", "").0, 204);
    assert_eq!(call("GET", "/debug/partition", "").0, 405);
    m.client().put(&raftkv::pb::PutRequest::new("k", "w")).expect("a put after it all");
}

#[test]
fn a_malformed_variable_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("d", dir.path());
    m.env.push(("RAFTKV_DEBUG_CONTROL", "yes".into()));
    m.spawn(&dir.path().join("data"), "", &[]);
    assert!(crate::harness::eventually(Duration::from_secs(10), || m.exited()), "it started anyway");
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(log.contains("RAFTKV_DEBUG_CONTROL=\"yes\": want 1 (on) or 0"), "{log}");
}
