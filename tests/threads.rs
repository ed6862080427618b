//! Stopping joins every thread: a member alone (twice, harmlessly), and a gateway on a
//! 3-member cluster (corruption checks on) with a watch stream and a keepalive stream open.
//! Alone in its test binary so no other test's threads are counted.

#[path = "harness/mod.rs"]
#[allow(dead_code)] // this binary uses a few of the shared helpers
mod harness;

use std::time::Duration;

use harness::cluster::Cluster;
use harness::http::Conn;
use harness::*;
use raftkv::pb::*;
use raftkv::Error;

/// The two tests count the same process's threads: one at a time.
static ALONE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn raftkv_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            names.push(name.trim().to_string());
        }
    }
    names.retain(|n| n.starts_with("raftkv-"));
    names
}

/// Waits until a thread whose name starts with each of `prefixes` runs. Linux keeps 15 bytes
/// of a thread's name, so prefixes are cut to that; waiting covers a thread that has been
/// spawned but has not yet named itself (Rust names a thread from inside it).
fn assert_running(prefixes: &[&str]) {
    let cut = |p: &str| p[..p.len().min(15)].to_string();
    let all_there = || prefixes.iter().all(|p| raftkv_threads().iter().any(|n| n.starts_with(&cut(p))));
    assert!(eventually(Duration::from_secs(5), all_there), "want {prefixes:?}, running {:?}", raftkv_threads());
}

fn assert_no_threads_left() {
    // A thread RocksDB starts from one of ours (a flush at stop) carries our thread's name
    // until it renames itself: give such a thread a moment; a thread of ours would stay.
    eventually(Duration::from_secs(1), || raftkv_threads().is_empty());
    assert_eq!(raftkv_threads(), Vec::<String>::new());
}

#[test]
fn stop_joins_every_thread_and_is_idempotent() {
    let _alone = ALONE.lock();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    put(&node, "a", "1");
    assert_running(&["raftkv-run", "raftkv-raft", "raftkv-apply", "raftkv-kv-compact"]);
    let clone = node.clone();
    node.stop().unwrap();
    node.stop().unwrap();
    clone.stop().unwrap();
    assert_no_threads_left();
    assert!(matches!(clone.put(PutRequest::new("a", "2")), Err(Error::Stopped)));
    assert!(matches!(clone.range(RangeRequest::key("a")), Err(Error::Stopped)));
}

#[test]
fn a_gateway_on_a_cluster_leaves_no_thread_behind() {
    let _alone = ALONE.lock();
    // With the leader's corruption check, whose thread runs on every member.
    let mut cluster = Cluster::start(3, |cfg| cfg.corrupt_check_time = Duration::from_millis(200));
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut gateway = raftkv::api::serve(listener, cluster.node(follower).clone(), None).unwrap();
    // Streams held open at stop: a watch, and a keepalive (forwarded to the leader).
    let lease = cluster.node(leader).lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).unwrap().id;
    let mut streams = Vec::new();
    for (path, body) in [
        ("/v3/watch", r#"{"create_request":{"key":"YQ=="}}"#.to_string()),
        ("/v3/lease/keepalive", format!(r#"{{"ID":"{lease}"}}"#)),
    ] {
        let mut conn = Conn::open(gateway.local_addr(), Duration::from_secs(10)).unwrap();
        conn.request("POST", path, &[], body.as_bytes()).unwrap();
        let mut reply = conn.read_head().unwrap();
        assert_eq!(reply.status, 200, "{path}");
        assert!(conn.read_chunk(&mut reply).unwrap().is_some(), "{path} answered");
        streams.push(conn);
    }
    let put = http::post(gateway.local_addr(), "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
    assert_eq!(put.status, 200, "{}", put.text());
    assert_running(&[
        "raftkv-run",
        "raftkv-peer-accept",
        "raftkv-peer-rx",
        "raftkv-httpio-",
        "raftkv-http-",
        "raftkv-stream",
        "raftkv-corrupt-check",
    ]);

    gateway.stop();
    for i in 0..3 {
        cluster.stop(i);
    }
    drop(streams);
    assert_no_threads_left();
}
