//! Stopping a member joins every one of its threads, and stopping twice is harmless. Alone in
//! its test binary so no other member's threads are running.

mod common;

use common::*;
use raftkv::pb::*;
use raftkv::Error;

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

#[test]
fn stop_joins_every_thread_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    put(&node, "a", "1");
    let names = raftkv_threads();
    for expected in ["raftkv-run", "raftkv-raft", "raftkv-apply"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    let clone = node.clone();
    node.stop().unwrap();
    node.stop().unwrap();
    clone.stop().unwrap();
    // A thread RocksDB starts from one of ours (a flush at stop) carries our thread's name
    // until it renames itself: give such a thread a moment; a thread of ours would stay.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !raftkv_threads().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(raftkv_threads(), Vec::<String>::new());
    assert!(matches!(clone.put(PutRequest::new("a", "2")), Err(Error::Stopped)));
    assert!(matches!(clone.range(RangeRequest::key("a")), Err(Error::Stopped)));
}
