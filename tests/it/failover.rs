//! A 3-member cluster of real `raftkv` processes on 127.0.0.1. The leader is killed with
//! SIGKILL under a write load: a new leader must be elected within 3 s (election timeout
//! 1 s), no acknowledged write may be lost, and the old leader must rejoin and converge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raftkv::pb::*;
use raftkv::Client;

use crate::harness::process::{agreed_leader, initial_cluster, position_of, spawn_cluster, Member};

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = spawn_cluster("f", 3, dir.path());
    let leader = agreed_leader(&members, 0, Duration::from_secs(20)).expect("a first leader");
    let leader_at = position_of(&members, leader);

    // Writers on every member (the followers forward to the leader); every acknowledged
    // write is recorded with its revision.
    let acked: Mutex<HashMap<String, (String, i64)>> = Mutex::new(HashMap::new());
    let stop = AtomicBool::new(false);
    let endpoints: Vec<String> = members.iter().map(Member::endpoint).collect();
    let (new_leader, elected_in) = std::thread::scope(|s| {
        for w in 0..6 {
            let (acked, stop, endpoint) = (&acked, &stop, endpoints[w % 3].clone());
            s.spawn(move || {
                let client = Client::new(&[endpoint], Duration::from_secs(3)).unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (key, value) = (format!("w{w}-{n}"), format!("v{n}"));
                    n += 1;
                    if let Ok(resp) = client.put(&PutRequest::new(key.clone(), value.clone())) {
                        acked.lock().insert(key, (value, resp.header.unwrap().revision));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        members[leader_at].kill();
        let killed_at = Instant::now();
        let new_leader = agreed_leader(&members, leader, Duration::from_secs(10)).expect("a new leader");
        let elected_in = killed_at.elapsed();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        (new_leader, elected_in)
    });
    let acked = acked.into_inner();
    eprintln!("new leader after {elected_in:?}; {} writes acknowledged", acked.len());
    assert_ne!(new_leader, leader);
    assert!(elected_in < Duration::from_secs(3), "new leader after {elected_in:?}");
    assert!(acked.len() > 100, "only {} writes acknowledged", acked.len());

    // The old leader comes back on its data dir and catches up.
    let data_dir = dir.path().join(&members[leader_at].name);
    let initial = initial_cluster(&members);
    members[leader_at].spawn(&data_dir, &initial, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states: Vec<Option<(u64, u32)>> = members
            .iter()
            .map(|m| {
                let applied = m.status()?.raft_applied_index;
                Some((applied, m.client().hash().ok()?.hash))
            })
            .collect();
        if states.iter().all(|s| s.is_some() && *s == states[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "members did not converge: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every acknowledged write is on every member, with the revision it was acknowledged at.
    for m in &members {
        let client = m.client();
        let resp = client.range(&RangeRequest { serializable: true, ..RangeRequest::prefix("w") }).expect("read back");
        let found: HashMap<String, (String, i64)> = resp
            .kvs
            .into_iter()
            .map(|kv| (String::from_utf8(kv.key).unwrap(), (String::from_utf8(kv.value).unwrap(), kv.mod_revision)))
            .collect();
        for (key, want) in &acked {
            assert_eq!(found.get(key), Some(want), "{key} on {}", m.name);
        }
    }
}
