//! etcd's corruption detection on real members: HashKV agrees across a cluster after a mixed
//! workload with compactions (and the leader's periodic check stays quiet); a follower whose
//! RocksDB was corrupted offline is caught by the leader's periodic check (a CORRUPT alarm
//! naming it, writes refused everywhere, reads still served) and refused by its own initial
//! check at the next start; a follower holding a revision the cluster never committed passes
//! its initial check (its peers are "behind" it, which etcd skips) and is caught by the
//! leader's.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use raftkv::mvcc::Revision;
use raftkv::pb::*;
use raftkv::storage::{Cf, Db};
use raftkv::{Config, Error, Node};

use crate::harness::cluster::Cluster;
use crate::harness::eventually;

/// The leader's check interval in these tests.
const CHECK_EVERY: Duration = Duration::from_secs(1);

fn corrupt_alarms(node: &Node) -> Vec<u64> {
    let corrupt = AlarmType::Corrupt as i32;
    node.alarms_raised().into_iter().filter(|a| a.alarm == corrupt).map(|a| a.member_id).collect()
}

/// Every running member's HashKV at `revision`, as (hash, compact revision, current revision).
fn hashes_at(cluster: &Cluster, revision: i64) -> Vec<(u32, i64, i64)> {
    cluster
        .running()
        .map(|(_, n)| {
            let h = n.hash_kv(HashKvRequest { revision }).unwrap();
            (h.hash, h.compact_revision, h.header.unwrap().revision)
        })
        .collect()
}

#[test]
fn members_agree_on_hash_kv_after_a_mixed_workload_with_compactions() {
    let mut cluster = Cluster::start(3, |cfg| cfg.corrupt_check_time = CHECK_EVERY);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let nodes: Vec<Node> = cluster.running().map(|(_, n)| n.clone()).collect();
    // Writes through every member (followers forward), overwrites, deletes, txns, leases and
    // compactions physical and not, at revisions in the middle of the history.
    let lease = nodes[leader].lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).unwrap().id;
    let mut compacted = Vec::new();
    for i in 0..120 {
        let node = &nodes[i % 3];
        let key = format!("k/{}", i % 17);
        let rev = match i % 6 {
            0..=2 => node.put(PutRequest::new(key, format!("v{i}"))).unwrap().header,
            3 => node.put(PutRequest { lease, ..PutRequest::new(format!("leased/{i}"), "x") }).unwrap().header,
            4 => node.delete_range(DeleteRangeRequest::key(key)).unwrap().header,
            _ => {
                let put = RequestOp { request: Some(request_op::Request::RequestPut(PutRequest::new(key, "t"))) };
                node.txn(TxnRequest { success: vec![put], ..Default::default() }).unwrap().header
            }
        }
        .unwrap()
        .revision;
        if i % 40 == 39 {
            let at = rev - 10;
            node.compact(CompactionRequest { revision: at, physical: i % 80 == 79 }).unwrap();
            compacted.push(at);
        }
    }
    nodes[leader].lease_revoke(LeaseRevokeRequest { id: lease }).unwrap();
    cluster.wait_converged(Duration::from_secs(30));

    let current = nodes[leader].revision();
    let compact = *compacted.last().unwrap();
    let mut distinct = std::collections::HashSet::new();
    for revision in [0, compact + 1, (compact + current) / 2, current] {
        let hashes = hashes_at(&cluster, revision);
        assert!(hashes.iter().all(|h| *h == hashes[0]), "at revision {revision}: {hashes:?}");
        assert_eq!(hashes[0].1, compact);
        distinct.insert(hashes[0].0);
    }
    // The hash says something about the history: different revisions, different hashes.
    assert_eq!(distinct.len(), 3, "revision 0 is the current one, the others differ");
    for (_, node) in cluster.running() {
        assert!(matches!(node.hash_kv(HashKvRequest { revision: compact }), Err(Error::Compacted)));
    }

    // The leader checked all along, and found nothing: give it a few more intervals over the
    // final state (a check's absence cannot be waited for, only given time).
    std::thread::sleep(3 * CHECK_EVERY);
    for (_, node) in cluster.running() {
        assert_eq!(corrupt_alarms(node), Vec::<u64>::new());
    }

    // An initial check whose peers are all down skips them at once: a restarting cluster's
    // first member starts instead of waiting for the others.
    drop(nodes);
    for i in 0..3 {
        cluster.stop(i);
    }
    let mut cfg = cluster.cfgs[0].clone();
    cfg.initial_corrupt_check = true;
    let started = Instant::now();
    let alone = Node::start(cfg.clone()).expect("peers that are down are skipped");
    let took = started.elapsed();
    alone.stop().unwrap();
    assert!(took < cfg.request_timeout(), "start took {took:?} with every peer down");
}

/// Flips every byte of the newest non-empty value in the `kv` family of the member at
/// `data_dir` (stopped), keeping the row decodable, as a disk that returned wrong bytes would.
/// Returns that row's revision.
fn corrupt_newest_value(data_dir: &Path) -> i64 {
    let db = Db::open(data_dir).unwrap();
    let cf = db.cf(Cf::Kv);
    let (key, mut kv) = db
        .raw()
        .iterator_cf(cf, rocksdb::IteratorMode::End)
        .map(|item| item.unwrap())
        .map(|(key, value)| (key, KeyValue::decode(&value[..]).unwrap()))
        .find(|(_, kv)| !kv.value.is_empty())
        .expect("a row with a value");
    for b in &mut kv.value {
        *b = !*b;
    }
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(cf, &key, kv.encode_to_vec());
    db.write(batch, true).unwrap();
    db.flush().unwrap();
    kv.mod_revision
}

/// Adds a row at the revision after the newest one to the `kv` family of the member at
/// `data_dir` (stopped): a write the cluster never committed. Returns its revision.
fn add_uncommitted_revision(data_dir: &Path) -> i64 {
    let db = Db::open(data_dir).unwrap();
    let cf = db.cf(Cf::Kv);
    let (_, newest) = db.raw().iterator_cf(cf, rocksdb::IteratorMode::End).next().unwrap().unwrap();
    let mut kv = KeyValue::decode(&newest[..]).unwrap();
    kv.mod_revision += 1;
    kv.version += 1;
    kv.value = b"never committed".to_vec();
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(cf, Revision::new(kv.mod_revision, 0).to_key(false), kv.encode_to_vec());
    db.write(batch, true).unwrap();
    db.flush().unwrap();
    kv.mod_revision
}

#[test]
fn a_follower_ahead_of_the_leader_passes_its_initial_check_and_is_alarmed_by_the_leader() {
    let mut cluster = Cluster::start(3, |cfg| cfg.corrupt_check_time = CHECK_EVERY);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    for i in 0..10 {
        cluster.node(leader).put(PutRequest::new(format!("k{i}"), "v")).unwrap();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let follower_id = cluster.node(follower).member_id();
    let revision = cluster.node(leader).revision();
    cluster.stop(follower);
    assert_eq!(add_uncommitted_revision(&cluster.cfgs[follower].data_dir), revision + 1);

    // Its peers cannot hash a revision they do not have: skipped as slow, as etcd does.
    cluster.cfgs[follower].initial_corrupt_check = true;
    cluster.restart(follower);
    assert_eq!(cluster.node(follower).revision(), revision + 1);
    // Its HashKV at the cluster's revision is right; only its revision gives it away.
    let at = |i: usize| cluster.node(i).hash_kv(HashKvRequest { revision }).unwrap().hash;
    assert_eq!(at(follower), at(leader));
    let caught = eventually(10 * CHECK_EVERY, || corrupt_alarms(cluster.node(leader)) == [follower_id]);
    assert!(caught, "no CORRUPT alarm naming {follower_id:x}: {:?}", cluster.node(leader).alarms_raised());
    assert!(matches!(cluster.node(leader).put(PutRequest::new("after", "x")), Err(Error::Corrupt)));
}

#[test]
fn a_corrupted_follower_is_alarmed_by_the_leader_and_refused_by_its_initial_check() {
    let mut cluster = Cluster::start(3, |cfg| cfg.corrupt_check_time = CHECK_EVERY);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);
    for i in 0..20 {
        cluster.node(leader).put(PutRequest::new(format!("k{}", i % 5), format!("v{i}"))).unwrap();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let follower_id = cluster.node(follower).member_id();
    let revision = cluster.node(leader).revision();
    let before = cluster.node(leader).hash_kv(HashKvRequest { revision }).unwrap().hash;

    cluster.stop(follower);
    let corrupted_at = corrupt_newest_value(&cluster.cfgs[follower].data_dir);
    assert_eq!(corrupted_at, revision, "the newest row is within every hash");

    // Without the initial check the member starts, and the leader's next checks catch it.
    cluster.restart(follower);
    let caught = eventually(10 * CHECK_EVERY, || corrupt_alarms(cluster.node(leader)) == [follower_id]);
    assert!(caught, "no CORRUPT alarm naming {follower_id:x}: {:?}", cluster.node(leader).alarms_raised());
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(5)), leader, "the leader raised it");
    let corrupted = cluster.node(follower).hash_kv(HashKvRequest { revision }).unwrap().hash;
    assert_ne!(corrupted, before, "the corrupted member's HashKV differs");
    assert_eq!(cluster.node(other).hash_kv(HashKvRequest { revision }).unwrap().hash, before);

    // Through raft to every member: writes refused with etcd's error, reads served.
    assert!(eventually(Duration::from_secs(10), || cluster.running().all(|(_, n)| corrupt_alarms(n) == [follower_id])));
    for i in [leader, follower, other] {
        let refused = cluster.node(i).put(PutRequest::new("after", "x"));
        assert!(matches!(refused, Err(Error::Corrupt)), "member {i}: {refused:?}");
        assert_eq!(refused.unwrap_err().to_string(), "etcdserver: corrupt cluster");
    }
    for i in [leader, other] {
        let read = cluster.node(i).range(RangeRequest::key("k4")).unwrap();
        assert_eq!(read.kvs[0].value, b"v19", "member {i}");
    }

    // With the initial check it refuses to start, with etcd's error, and leaves its data dir
    // to the next start (every thread it started is joined, RocksDB closed).
    cluster.stop(follower);
    let mut cfg: Config = cluster.cfgs[follower].clone();
    cfg.initial_corrupt_check = true;
    match Node::start(cfg) {
        Err(e @ Error::DataInconsistency { member_id }) => {
            assert_eq!(member_id, follower_id);
            assert_eq!(e.to_string(), format!("{follower_id:x} found data inconsistency with peers"));
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a corrupted member passed its initial check"),
    }
    cluster.restart(follower);
    assert_eq!(cluster.node(follower).hash_kv(HashKvRequest { revision }).unwrap().hash, corrupted);
}
