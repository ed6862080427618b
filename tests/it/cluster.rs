//! Clusters of real members on real RocksDB, talking over real TCP on 127.0.0.1: replication,
//! follower forwarding, partitions, snapshot catch-up and membership changes. In-process
//! members here; tests/failover.rs kills real processes.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use raftkv::config::ClusterState;
use raftkv::pb::*;
use raftkv::{Config, Error, Node};

/// A free port on 127.0.0.1 (bound and released; the kernel does not hand it out again soon).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Cluster {
    _dir: tempfile::TempDir,
    cfgs: Vec<Config>,
    nodes: Vec<Option<Node>>,
}

fn member_config(dir: &std::path::Path, name: &str, port: u16, initial_cluster: &str) -> Config {
    let url = format!("http://127.0.0.1:{port}");
    let mut cfg = Config::new(name, dir.join(name));
    cfg.initial_advertise_peer_urls = vec![url.clone()];
    cfg.listen_peer_urls = vec![url];
    cfg.advertise_client_urls = vec![format!("http://{name}.invalid:2379")];
    cfg.initial_cluster = initial_cluster.to_string();
    cfg.request_timeout_ms = 3_000;
    cfg
}

impl Cluster {
    fn start(n: usize, tune: impl Fn(&mut Config)) -> Cluster {
        common::init_logs();
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                let mut cfg = member_config(dir.path(), &format!("m{i}"), ports[i], &initial.join(","));
                tune(&mut cfg);
                cfg
            })
            .collect();
        let nodes = cfgs.iter().map(|cfg| Some(Node::start(cfg.clone()).expect("start member"))).collect();
        let cluster = Cluster { _dir: dir, cfgs, nodes };
        cluster.wait_for_leader(Duration::from_secs(10));
        cluster
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("member running")
    }

    fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Waits until every running member agrees on one leader; returns its index.
    fn wait_for_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders: Vec<u64> = self.running().map(|(_, n)| n.leader_id()).collect();
            if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                if let Some((i, _)) = self.running().find(|(_, n)| n.member_id() == leaders[0]) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {within:?}: {leaders:x?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("member running");
        node.stop().expect("clean stop");
    }

    fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        self.nodes[i] = Some(Node::start(self.cfgs[i].clone()).expect("restart member"));
    }

    /// Waits until every running member has applied the same index and holds the same data.
    fn wait_converged(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let applied: Vec<u64> = self.running().map(|(_, n)| n.applied_index()).collect();
            let hashes: Vec<u32> = self.running().map(|(_, n)| n.hash().unwrap().hash).collect();
            let revisions: Vec<i64> = self.running().map(|(_, n)| n.revision()).collect();
            if applied.iter().all(|a| *a == applied[0]) && hashes.iter().all(|h| *h == hashes[0]) {
                assert!(revisions.iter().all(|r| *r == revisions[0]), "{revisions:?}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members did not converge: applied {applied:?} hashes {hashes:x?} revisions {revisions:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            let _ = node.stop();
        }
    }
}

/// One request over a fresh connection: (status, body).
fn http_post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string()))
}

fn put(node: &Node, key: &str, value: &str) -> Result<PutResponse, Error> {
    node.put(PutRequest::new(key, value))
}

fn get(node: &Node, key: &str, serializable: bool) -> Result<Option<Vec<u8>>, Error> {
    let resp = node.range(RangeRequest { serializable, ..RangeRequest::key(key) })?;
    Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
}

#[test]
fn a_write_on_any_member_is_read_linearizably_on_every_member() {
    let cluster = Cluster::start(3, |_| {});
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let ids: Vec<u64> = cluster.running().map(|(_, n)| n.member_id()).collect();
    let members = cluster.node(0).member_list().members;
    assert_eq!(members.len(), 3, "{members:?}");
    for (i, node) in cluster.running() {
        let resp = put(node, &format!("k{i}"), &format!("from m{i}")).expect("put on any member");
        assert_eq!(resp.header.unwrap().member_id, ids[i], "the member asked answers");
        // Read at once everywhere, linearizably: the write must be visible on every member.
        for (j, other) in cluster.running() {
            assert_eq!(
                get(other, &format!("k{i}"), false).unwrap(),
                Some(format!("from m{i}").into_bytes()),
                "put on m{i} (leader m{leader}) read on m{j}"
            );
        }
    }
    // A txn and a delete through a follower.
    let follower = (leader + 1) % 3;
    let node = cluster.node(follower);
    node.delete_range(DeleteRangeRequest::key("k0")).unwrap();
    assert_eq!(get(cluster.node(leader), "k0", false).unwrap(), None);
    // Leases granted on a follower, kept alive through it (forwarded to the leader).
    let lease = node.lease_grant(LeaseGrantRequest { ttl: 30, id: 0 }).unwrap();
    let ka = node.lease_keep_alive(LeaseKeepAliveRequest { id: lease.id }).unwrap();
    assert_eq!(ka.ttl, 30);
    let ttl = node.lease_time_to_live(LeaseTimeToLiveRequest { id: lease.id, keys: false }).unwrap();
    assert!(ttl.ttl > 25 && ttl.granted_ttl == 30, "{ttl:?}");
    // Every member publishes its name and client URLs.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cluster.node(2).member_list().members.iter().all(|m| !m.name.is_empty() && !m.client_urls.is_empty()) {
        assert!(Instant::now() < deadline, "{:?}", cluster.node(2).member_list());
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.wait_converged(Duration::from_secs(5));

    // A restarted member rejoins with its stored identity; --initial-cluster no longer matters.
    let mut cluster = cluster;
    let id = cluster.node(2).member_id();
    cluster.stop(2);
    cluster.cfgs[2].initial_cluster = "someone=http://127.0.0.1:1".into();
    cluster.restart(2);
    assert_eq!(cluster.node(2).member_id(), id);
    put(cluster.node(2), "after-restart", "1").unwrap();
    cluster.wait_converged(Duration::from_secs(5));
}

#[test]
fn a_partitioned_leader_cannot_commit_and_the_majority_moves_on() {
    let cluster = Cluster::start(3, |cfg| cfg.request_timeout_ms = 1_500);
    let old = cluster.wait_for_leader(Duration::from_secs(5));
    put(cluster.node(old), "before", "1").unwrap();
    let old_id = cluster.node(old).member_id();
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let other_ids: Vec<u64> = others.iter().map(|i| cluster.node(*i).member_id()).collect();
    cluster.node(old).partition_from(&other_ids);
    for i in &others {
        cluster.node(*i).partition_from(&[old_id]);
    }

    // The majority elects a new leader and keeps writing.
    let deadline = Instant::now() + Duration::from_secs(5);
    let new = loop {
        let l = cluster.node(others[0]).leader_id();
        if l != 0 && l != old_id && cluster.node(others[1]).leader_id() == l {
            break l;
        }
        assert!(Instant::now() < deadline, "majority elected no leader");
        std::thread::sleep(Duration::from_millis(20));
    };
    put(cluster.node(others[0]), "during", "majority").expect("majority commits");
    assert_eq!(get(cluster.node(others[1]), "during", false).unwrap(), Some(b"majority".to_vec()));

    // The minority cannot commit a write or serve a linearizable read.
    let write = put(cluster.node(old), "during", "minority");
    assert!(write.is_err(), "an isolated member committed a write: {write:?}");
    let read = get(cluster.node(old), "during", false);
    assert!(read.is_err(), "an isolated member served a linearizable read: {read:?}");
    // A serializable read is local, and stale.
    assert_eq!(get(cluster.node(old), "during", true).unwrap(), None);
    // Through the gateway the same calls end in etcd's errors at the request timeout: the
    // event loop gives up on them, nothing hangs.
    let gateway = raftkv::api::serve(TcpListener::bind("127.0.0.1:0").unwrap(), cluster.node(old).clone()).unwrap();
    for (path, body) in [
        ("/v3/kv/put", r#"{"key":"ZHVyaW5n","value":"bWlub3JpdHk="}"#),
        ("/v3/kv/range", r#"{"key":"ZHVyaW5n"}"#),
        ("/v3/kv/txn", r#"{"success":[{"requestRange":{"key":"ZHVyaW5n"}}]}"#),
    ] {
        let started = Instant::now();
        let (status, answer) = http_post(gateway.local_addr(), path, body);
        assert_eq!(status, 503, "{path}: {answer}");
        assert!(
            ["request timed out", "leader changed"].iter().any(|m| answer.contains(&format!("etcdserver: {m}"))),
            "{path}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
    }
    drop(gateway);

    for (_, node) in cluster.running() {
        node.heal_partition();
    }
    cluster.wait_for_leader(Duration::from_secs(5));
    assert_eq!(get(cluster.node(old), "during", false).unwrap(), Some(b"majority".to_vec()));
    assert_ne!(cluster.node(old).leader_id(), 0);
    assert!(cluster.running().all(|(_, n)| n.leader_id() == new || n.leader_id() != 0));
    cluster.wait_converged(Duration::from_secs(10));
}

#[test]
fn a_follower_behind_a_compacted_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, |cfg| {
        cfg.snapshot_count = 200;
        cfg.snapshot_catchup_entries = 50;
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let lagging = (leader + 1) % 3;
    put(cluster.node(leader), "old", "x").unwrap();
    let lease = cluster.node(leader).lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).unwrap().id;
    cluster.stop(lagging);

    // Far more writes than the leader keeps in its log: the follower can only get a snapshot.
    // `make soak` raises the count to 50,000.
    let writes: usize = std::env::var("RAFTKV_CATCHUP_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let per_thread = writes.div_ceil(8);
    std::thread::scope(|s| {
        for t in 0..8 {
            let node = cluster.node(leader);
            s.spawn(move || {
                for i in 0..per_thread {
                    put(node, &format!("k{t}-{i}"), &"v".repeat(100)).unwrap();
                }
            });
        }
    });
    cluster.node(leader).put(PutRequest { lease, ..PutRequest::new("leased", "y") }).unwrap();
    cluster.node(leader).compact(CompactionRequest { revision: 500, physical: true }).unwrap();

    cluster.restart(lagging);
    cluster.wait_converged(Duration::from_secs(60));
    let node = cluster.node(lagging);
    let last = format!("k7-{}", per_thread - 1);
    assert_eq!(get(node, &last, true).unwrap(), Some("v".repeat(100).into_bytes()));
    assert_eq!(get(node, "old", true).unwrap(), Some(b"x".to_vec()));
    // The snapshot carried the leases and their keys, and the compaction.
    let leases = node.lease_leases().unwrap().leases;
    assert!(leases.iter().any(|l| l.id == lease), "{leases:?}");
    let err = node.range(RangeRequest { revision: 10, serializable: true, ..RangeRequest::key("old") });
    assert!(matches!(err, Err(Error::Compacted)), "{err:?}");
    // And it serves writes again through the normal path.
    put(node, "after", "1").unwrap();
    cluster.wait_converged(Duration::from_secs(5));
}

#[test]
fn members_are_added_as_learners_promoted_and_removed_while_serving() {
    let mut cluster = Cluster::start(3, |_| {});
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    for i in 0..50 {
        put(cluster.node(i % 3), &format!("pre{i}"), "v").unwrap();
    }

    // Add a learner through a follower, then start it as `existing`.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let follower = (leader + 1) % 3;
    let added = cluster
        .node(follower)
        .member_add(MemberAddRequest { peer_urls: vec![url.clone()], is_learner: true })
        .expect("member add");
    let new_id = added.member.as_ref().unwrap().id;
    assert!(added.member.unwrap().is_learner);
    assert_eq!(added.members.len(), 4);
    let dup = cluster.node(leader).member_add(MemberAddRequest { peer_urls: vec![url.clone()], is_learner: true });
    assert!(matches!(dup, Err(Error::PeerUrlExists)), "{dup:?}");

    let initial: Vec<String> = cluster
        .node(0)
        .member_list()
        .members
        .iter()
        .map(|m| format!("{}={}", if m.id == new_id { "m3" } else { &m.name }, m.peer_urls[0]))
        .collect();
    let dir: PathBuf = cluster.cfgs[0].data_dir.parent().unwrap().to_path_buf();
    let mut cfg = member_config(&dir, "m3", port, &initial.join(","));
    cfg.initial_cluster_state = ClusterState::Existing;
    cluster.cfgs.push(cfg.clone());
    cluster.nodes.push(Some(Node::start(cfg).expect("start the new member")));
    let learner = cluster.node(3);
    assert_eq!(learner.member_id(), new_id, "the new member learns its id from the cluster");
    // A learner serves serializable reads only.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(learner, "pre49", true).unwrap() != Some(b"v".to_vec()) {
        assert!(Instant::now() < deadline, "learner never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(put(learner, "x", "y"), Err(Error::NotSupportedForLearner)));
    assert!(matches!(get(learner, "pre49", false), Err(Error::NotSupportedForLearner)));
    assert!(cluster.node(leader).status().unwrap().leader != 0);

    // Promote it; it then votes and serves everything.
    let promoted = cluster.node(leader).member_promote(MemberPromoteRequest { id: new_id }).expect("promote");
    assert!(promoted.members.iter().all(|m| !m.is_learner));
    let again = cluster.node(leader).member_promote(MemberPromoteRequest { id: new_id });
    assert!(matches!(again, Err(Error::MemberNotLearner)), "{again:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.node(3).status().unwrap().is_learner {
        assert!(Instant::now() < deadline, "the promotion never reached the learner");
        std::thread::sleep(Duration::from_millis(20));
    }
    put(cluster.node(3), "by-m3", "1").unwrap();

    // Remove a follower that is not the new member; writes keep flowing.
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let victim_id = cluster.node(victim).member_id();
    let left = cluster.node(leader).member_remove(MemberRemoveRequest { id: victim_id }).expect("remove");
    assert_eq!(left.members.len(), 3);
    assert!(!left.members.iter().any(|m| m.id == victim_id));
    let gone = cluster.node(leader).member_remove(MemberRemoveRequest { id: victim_id });
    assert!(matches!(gone, Err(Error::MemberNotFound)), "{gone:?}");
    // The removed member stops itself.
    let node = cluster.nodes[victim].take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while put(&node, "from-removed", "x").is_ok() {
        assert!(Instant::now() < deadline, "a removed member kept serving writes");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(matches!(node.stop(), Err(Error::MemberRemoved) | Ok(())));
    for i in 0..20 {
        put(cluster.node(leader), &format!("post{i}"), "v").unwrap();
    }
    cluster.wait_converged(Duration::from_secs(10));

    // Leadership can be handed to the new member.
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    cluster.node(leader).move_leader(MoveLeaderRequest { target_id: new_id }).expect("move leader");
    assert_eq!(cluster.node(3).leader_id(), new_id);
    let not_leader = cluster.node(leader).move_leader(MoveLeaderRequest { target_id: new_id });
    assert!(matches!(not_leader, Err(Error::NotLeader)), "{not_leader:?}");
}

#[test]
fn a_foreign_or_garbage_peer_is_refused_and_the_member_keeps_working() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(3, |_| {});
    let addr = cluster.node(0).peer_addr().unwrap();
    // Garbage, an HTTP request, a huge length prefix, and a hello from another cluster.
    let huge = [0xff, 0xff, 0xff, 0xff, 2, 0, 0];
    let mut foreign = vec![0, 0, 0, 30, 1];
    foreign.extend_from_slice(b"RKV1");
    foreign.extend_from_slice(&42u64.to_be_bytes());
    foreign.extend_from_slice(&7u64.to_be_bytes());
    foreign.extend_from_slice(&cluster.node(0).member_id().to_be_bytes());
    foreign.push(0);
    // The right cluster, but a sender that is not a member.
    let mut stranger = foreign.clone();
    stranger[9..17].copy_from_slice(&cluster.node(0).cluster_id().to_be_bytes());
    for junk in [&b"\x00\x01garbage"[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &huge, &foreign, &stranger] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(junk).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The member closes the connection (read returns 0 or an error), it does not hang.
        let mut buf = [0u8; 16];
        let _ = s.read(&mut buf);
    }
    for (i, node) in cluster.running() {
        put(node, &format!("still-{i}"), "ok").expect("member still serves");
    }
    cluster.wait_converged(Duration::from_secs(5));
}

#[test]
fn the_leader_compacts_history_automatically() {
    let cluster = Cluster::start(3, |cfg| {
        cfg.auto_compaction = Some(raftkv::compactor::AutoCompaction::Periodic(Duration::from_millis(500)));
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    // Old revisions disappear on every member once they are older than the retention.
    loop {
        put(cluster.node(leader), "ticking", &n.to_string()).unwrap();
        n += 1;
        let compacted = cluster.running().all(|(_, node)| {
            let old = node.range(RangeRequest { revision: 2, serializable: true, ..RangeRequest::key("ticking") });
            matches!(old, Err(Error::Compacted))
        });
        if compacted {
            break;
        }
        assert!(Instant::now() < deadline, "no automatic compaction after {n} writes");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Recent history is kept.
    let rev = cluster.node(leader).revision();
    assert!(cluster.node(leader).range(RangeRequest { revision: rev - 1, ..RangeRequest::key("ticking") }).is_ok());
    cluster.wait_converged(Duration::from_secs(5));
}
