//! Clusters of real members on real RocksDB, talking over real TCP on 127.0.0.1: replication,
//! follower forwarding, partitions, snapshot catch-up and membership changes. In-process
//! members here; `failover.rs` kills real processes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::cluster::{member_config, Cluster};
use crate::harness::{eventually, free_port, http};
use raftkv::config::ClusterState;
use raftkv::pb::*;
use raftkv::transport::frame::Verdict;
use raftkv::transport::Direction;
use raftkv::{service, Error, Node};

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
    // The grant is answered once this follower applied it; the leader, which renews, may apply
    // it a moment later (etcd's LeaseRenew has the same window).
    let leader_node = cluster.node(leader);
    let leader_has_it = || leader_node.lease_leases().unwrap().leases.iter().any(|l| l.id == lease.id);
    assert!(eventually(Duration::from_secs(5), leader_has_it), "the leader never applied the grant");
    let ka = node.lease_keep_alive(LeaseKeepAliveRequest { id: lease.id }).unwrap();
    assert_eq!(ka.ttl, 30);
    let ttl = node.lease_time_to_live(LeaseTimeToLiveRequest { id: lease.id, keys: false }).unwrap();
    assert!(ttl.ttl > 25 && ttl.granted_ttl == 30, "{ttl:?}");
    // Every member publishes its name and client URLs.
    let published =
        || cluster.node(2).member_list().members.iter().all(|m| !m.name.is_empty() && !m.client_urls.is_empty());
    assert!(eventually(Duration::from_secs(5), published), "{:?}", cluster.node(2).member_list());
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
    cluster.isolate(old);

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
    // Once it steps down (check quorum) it knows no leader, and gRPC's health check says so.
    let health = |node: &Node| node.health_check(&HealthCheckRequest::default()).unwrap().status;
    let not_serving = || health(cluster.node(old)) == ServingStatus::NotServing as i32;
    assert!(eventually(Duration::from_secs(5), not_serving), "an isolated member kept serving");
    assert_eq!(health(cluster.node(others[0])), ServingStatus::Serving as i32);
    // Through the gateway the same calls end in etcd's errors at the request timeout: the
    // event loop gives up on them, nothing hangs.
    let gateway =
        raftkv::api::serve(TcpListener::bind("127.0.0.1:0").unwrap(), cluster.node(old).clone(), None).unwrap();
    for (path, body) in [
        ("/v3/kv/put", r#"{"key":"ZHVyaW5n","value":"bWlub3JpdHk="}"#),
        ("/v3/kv/range", r#"{"key":"ZHVyaW5n"}"#),
        ("/v3/kv/txn", r#"{"success":[{"requestRange":{"key":"ZHVyaW5n"}}]}"#),
    ] {
        let started = Instant::now();
        let reply = http::post(gateway.local_addr(), path, body);
        let (status, answer) = (reply.status, reply.text());
        assert_eq!(status, 503, "{path}: {answer}");
        assert!(
            ["request timed out", "leader changed"].iter().any(|m| answer.contains(&format!("etcdserver: {m}"))),
            "{path}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
    }
    drop(gateway);

    cluster.heal();
    cluster.wait_for_leader(Duration::from_secs(5));
    assert_eq!(get(cluster.node(old), "during", false).unwrap(), Some(b"majority".to_vec()));
    assert_ne!(cluster.node(old).leader_id(), 0);
    assert!(cluster.running().all(|(_, n)| n.leader_id() == new || n.leader_id() != 0));
    cluster.wait_converged(Duration::from_secs(10));
}

/// One-way loss: a leader whose frames never leave is replaced, although it still hears the
/// others (it learns the new term from them and follows); a leader that hears nobody steps
/// down (check quorum) although its heartbeats still arrive.
#[test]
fn a_leader_that_cannot_send_or_cannot_hear_is_replaced() {
    let cluster = Cluster::start(3, |cfg| cfg.request_timeout_ms = 1_500);
    for direction in [Direction::Out, Direction::In] {
        let old = cluster.wait_for_leader(Duration::from_secs(10));
        let old_id = cluster.node(old).member_id();
        let others: Vec<u64> = cluster.running().filter(|(i, _)| *i != old).map(|(_, n)| n.member_id()).collect();
        cluster.node(old).partition_from(&others, direction);
        let replaced = || {
            let leaders: Vec<u64> = cluster.running().filter(|(i, _)| *i != old).map(|(_, n)| n.leader_id()).collect();
            leaders[0] != 0 && leaders[0] != old_id && leaders.iter().all(|l| *l == leaders[0])
        };
        assert!(eventually(Duration::from_secs(10), replaced), "{direction:?}: the leader was never replaced");
        let write = put(cluster.node(old), "cut", "off");
        assert!(write.is_err(), "{direction:?}: a cut-off leader committed a write: {write:?}");
        cluster.heal();
        cluster.wait_for_leader(Duration::from_secs(10));
        put(cluster.node(old), "healed", "yes").expect("a write through the old leader after the heal");
    }
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
    let l = cluster.node(leader);
    l.user_add(&AuthUserAddRequest { name: "amy".into(), password: "pw".into(), ..Default::default() }).unwrap();
    l.role_add(&AuthRoleAddRequest { name: "ops".into() }).unwrap();
    l.user_grant_role(&AuthUserGrantRoleRequest { user: "amy".into(), role: "ops".into() }).unwrap();
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
    // And the users and roles.
    assert_eq!(node.user_get(&AuthUserRequest { name: "amy".into() }).unwrap().roles, ["ops"]);
    // And it serves writes again through the normal path.
    put(node, "after", "1").unwrap();
    cluster.wait_converged(Duration::from_secs(5));
}

#[test]
fn members_that_applied_the_same_history_hash_it_alike() {
    let mut cluster = Cluster::start(3, |_| {});
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    for i in 0..30 {
        put(cluster.node(i % 3), &format!("k{}", i % 7), &i.to_string()).unwrap();
    }
    cluster.node(leader).delete_range(DeleteRangeRequest::key("k3")).unwrap();
    cluster.wait_converged(Duration::from_secs(5));
    // (hash, compact revision, header revision) of every running member.
    let hashes = |cluster: &Cluster, revision| -> Vec<(u32, i64, i64)> {
        cluster
            .running()
            .map(|(_, n)| {
                let h = n.hash_kv(HashKvRequest { revision }).unwrap();
                (h.hash, h.compact_revision, h.header.unwrap().revision)
            })
            .collect()
    };
    let all_equal = |h: &[(u32, i64, i64)]| h.iter().all(|x| *x == h[0]);
    let now = hashes(&cluster, 0);
    assert!(all_equal(&now) && now[0].1 == -1 && now[0].2 == 32, "{now:?}");
    let at10 = hashes(&cluster, 10);
    assert!(all_equal(&at10) && at10[0].0 != now[0].0, "{at10:?} {now:?}");

    cluster.node(leader).compact(CompactionRequest { revision: 20, physical: true }).unwrap();
    cluster.wait_converged(Duration::from_secs(5));
    let compacted = hashes(&cluster, 0);
    assert!(all_equal(&compacted) && compacted[0].1 == 20, "{compacted:?}");
    assert!(all_equal(&hashes(&cluster, 25)));
    let node = cluster.node(leader);
    assert!(matches!(node.hash_kv(HashKvRequest { revision: 20 }), Err(Error::Compacted)));
    assert!(matches!(node.hash_kv(HashKvRequest { revision: 33 }), Err(Error::FutureRevision)));

    // A restart reads the same history back.
    let follower = (leader + 1) % 3;
    cluster.stop(follower);
    cluster.restart(follower);
    cluster.wait_for_leader(Duration::from_secs(10));
    cluster.wait_converged(Duration::from_secs(10));
    assert_eq!(hashes(&cluster, 0), compacted);
    // And a write moves every member's hash alike.
    put(cluster.node(follower), "k0", "new").unwrap();
    cluster.wait_converged(Duration::from_secs(5));
    let moved = hashes(&cluster, 0);
    assert!(all_equal(&moved) && moved[0].0 != compacted[0].0, "{moved:?}");
}

/// A call through the service, answered on the calling thread.
fn call(service: &raftkv::service::Service, request: service::Request) -> raftkv::Result<service::Response> {
    crate::harness::service_call(service, request, &Default::default())
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
    // As etcd: within the second of the first add the new id is the same one (ids hash the
    // URLs with the time in seconds), later the URLs are taken.
    let dup = cluster.node(leader).member_add(MemberAddRequest { peer_urls: vec![url.clone()], is_learner: true });
    assert!(matches!(dup, Err(Error::MemberExists | Error::PeerUrlExists)), "{dup:?}");

    let initial: Vec<String> = cluster
        .node(0)
        .member_list()
        .members
        .iter()
        .map(|m| format!("{}={}", if m.id == new_id { "m3" } else { &m.name }, m.peer_urls[0]))
        .collect();
    let mut cfg = member_config(cluster.dir.path(), "m3", port, &initial.join(","));
    cfg.initial_cluster_state = ClusterState::Existing;
    cluster.cfgs.push(cfg.clone());
    cluster.nodes.push(Some(Node::start(cfg).expect("start the new member")));
    let learner = cluster.node(3);
    assert_eq!(learner.member_id(), new_id, "the new member learns its id from the cluster");
    // A learner serves serializable reads only.
    let caught_up = || get(learner, "pre49", true).unwrap() == Some(b"v".to_vec());
    assert!(eventually(Duration::from_secs(10), caught_up), "learner never caught up");
    assert!(matches!(put(learner, "x", "y"), Err(Error::NotSupportedForLearner)));
    assert!(matches!(get(learner, "pre49", false), Err(Error::NotSupportedForLearner)));
    // etcd's unary interceptor: nor any other call but status.
    assert!(matches!(learner.hash_kv(HashKvRequest::default()), Err(Error::NotSupportedForLearner)));
    assert!(matches!(learner.user_list(), Err(Error::NotSupportedForLearner)));
    let health = learner.health_check(&HealthCheckRequest::default());
    assert!(matches!(health, Err(Error::NotSupportedForLearner)), "{health:?}");
    // Through the service both protocols use: member, lease, alarm, maintenance, lock and
    // election calls too.
    let service = raftkv::service::Service::new(learner.clone());
    let refused = [
        service::Request::MemberList(EmptyRequest::default()),
        service::Request::LeaseLeases(EmptyRequest::default()),
        service::Request::LeaseTimeToLive(LeaseTimeToLiveRequest::default()),
        service::Request::Alarm(AlarmRequest::default()),
        service::Request::Defragment(EmptyRequest::default()),
        service::Request::MoveLeader(MoveLeaderRequest::default()),
        service::Request::Lock(LockRequest::default()),
        service::Request::Unlock(UnlockRequest::default()),
        service::Request::Campaign(CampaignRequest::default()),
        service::Request::Leader(LeaderRequest::default()),
    ];
    for request in refused {
        let outcome = call(&service, request);
        assert!(matches!(outcome, Err(Error::NotSupportedForLearner)), "{outcome:?}");
    }
    assert!(call(&service, service::Request::Status(EmptyRequest::default())).is_ok());
    assert!(cluster.node(leader).status().unwrap().leader != 0);

    // Promote it; it then votes and serves everything.
    let promoted = cluster.node(leader).member_promote(MemberPromoteRequest { id: new_id }).expect("promote");
    assert!(promoted.members.iter().all(|m| !m.is_learner));
    let again = cluster.node(leader).member_promote(MemberPromoteRequest { id: new_id });
    assert!(matches!(again, Err(Error::MemberNotLearner)), "{again:?}");
    let promoted = || !cluster.node(3).status().unwrap().is_learner;
    assert!(eventually(Duration::from_secs(5), promoted), "the promotion never reached the learner");
    put(cluster.node(3), "by-m3", "1").unwrap();

    // Remove a follower that is not the new member; writes keep flowing.
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let victim_id = cluster.node(victim).member_id();
    let left = cluster.node(leader).member_remove(MemberRemoveRequest { id: victim_id }).expect("remove");
    assert_eq!(left.members.len(), 3);
    assert!(!left.members.iter().any(|m| m.id == victim_id));
    let gone = cluster.node(leader).member_remove(MemberRemoveRequest { id: victim_id });
    assert!(matches!(gone, Err(Error::MemberNotFound)), "{gone:?}");
    // The removed member applies its own removal, stops, and says why.
    let node = cluster.nodes[victim].take().unwrap();
    assert_stops_as_removed(node);
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

/// `node` stops by itself, and its stop reports that it was removed from the cluster. The
/// handle is dropped at the end, closing the data dir.
fn assert_stops_as_removed(node: Node) {
    // A linearizable read: it needs the raft thread, which a stopped member no longer runs.
    let mut last = None;
    let stopped = || {
        let got = get(&node, "any", false);
        let stopped = matches!(got, Err(Error::Stopped));
        last = Some(got);
        stopped
    };
    assert!(eventually(Duration::from_secs(20), stopped), "a removed member kept running: {last:?}");
    let outcome = node.stop();
    assert!(matches!(outcome, Err(Error::MemberRemoved)), "{outcome:?}");
}

#[test]
fn a_member_removed_while_cut_off_is_told_by_its_peers_and_stops() {
    let mut cluster = Cluster::start(3, |_| {});
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let victim = (leader + 1) % 3;
    let victim_id = cluster.node(victim).member_id();
    put(cluster.node(leader), "before", "1").unwrap();
    // It never sees the entry that removes it: only its peers can tell it.
    cluster.isolate(victim);
    cluster.node(leader).member_remove(MemberRemoveRequest { id: victim_id }).expect("the majority removes it");
    cluster.heal();
    let node = cluster.nodes[victim].take().unwrap();
    assert_stops_as_removed(node);
    // Restarted on its data, which does not record the removal, it is refused again.
    let restarted = Node::start(cluster.cfgs[victim].clone()).expect("starts on its data");
    assert_stops_as_removed(restarted);
    put(cluster.node(leader), "after", "1").unwrap();
    cluster.wait_converged(Duration::from_secs(5));
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
    for junk in [&b"\x00\x01garbage"[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &huge] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(junk).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The member closes the connection without a word, it does not hang.
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)), "{rest:?}");
    }
    // A well-formed hello hears why it is refused.
    for (hello, why) in [(&foreign, "is not this cluster"), (&stranger, "is not a member of this cluster")] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(hello).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match Verdict::read(&mut s) {
            Ok(Verdict::Refused(reason)) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{other:?}"),
        }
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
