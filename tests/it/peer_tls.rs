//! TLS between members: `https://` peer URLs with certificates of one CA and
//! `--peer-client-cert-auth` form a cluster that replicates, and a member that fell behind
//! catches up by a snapshot streamed over TLS; a member whose certificate is another CA's, or
//! lacks the `--peer-cert-allowed-cn` name, never joins (neither in the initial cluster nor by
//! `member add`): its connections are refused before its hello, so it cannot send raft
//! messages, and the others keep serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftkv::config::ClusterState;
use raftkv::pb::*;
use raftkv::tls::TlsInfo;
use raftkv::{Config, Node};

use super::harness::{self, cluster::member_config};
use super::tls::{closed_within, write_pair, Ca};

/// Three members' configs on https peer URLs on 127.0.0.1, member `i`'s TLS from `tls(i)`.
fn configs(dir: &Path, tls: impl Fn(usize) -> TlsInfo) -> Vec<Config> {
    configs_on(dir, ["127.0.0.1"; 3], tls)
}

/// The same with member `i`'s peer URL on `hosts[i]` (a loopback address).
fn configs_on(dir: &Path, hosts: [&str; 3], tls: impl Fn(usize) -> TlsInfo) -> Vec<Config> {
    let ports: Vec<u16> = (0..3).map(|_| harness::free_port()).collect();
    let initial: Vec<String> =
        ports.iter().enumerate().map(|(i, p)| format!("m{i}=https://{}:{p}", hosts[i])).collect();
    (0..3)
        .map(|i| {
            let mut cfg = member_config(dir, &format!("m{i}"), ports[i], &initial.join(","));
            let url = format!("https://{}:{}", hosts[i], ports[i]);
            cfg.listen_peer_urls = vec![url.clone()];
            cfg.initial_advertise_peer_urls = vec![url];
            cfg.peer_tls = tls(i);
            cfg
        })
        .collect()
}

/// A peer TLS setup: a certificate of `ca` for 127.0.0.1 named `cn`, trusting `trusted`.
fn peer_tls(dir: &Path, name: &str, ca: &Ca, cn: &str, trusted: &Path, allowed_cn: Option<&str>) -> TlsInfo {
    peer_tls_for(dir, name, ca, cn, "127.0.0.1", trusted, allowed_cn)
}

/// The same for the address `san`.
fn peer_tls_for(
    dir: &Path,
    name: &str,
    ca: &Ca,
    cn: &str,
    san: &str,
    trusted: &Path,
    allowed_cn: Option<&str>,
) -> TlsInfo {
    let (cert_file, key_file) = write_pair(dir, name, ca.issue(cn, &[san], false, 0));
    TlsInfo {
        cert_file,
        key_file,
        trusted_ca_file: Some(trusted.to_path_buf()),
        client_cert_auth: true,
        allowed_cn: allowed_cn.map(str::to_string),
        ..TlsInfo::default()
    }
}

/// A temp dir with the cluster's CA in `ca.pem`.
fn peer_ca() -> (tempfile::TempDir, Ca, PathBuf) {
    harness::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    (dir, ca, ca_file)
}

fn put(node: &Node, key: &str) {
    node.put(PutRequest::new(key, "v")).expect("put");
}

fn has(node: &Node, key: &str) -> bool {
    let req = RangeRequest { serializable: true, ..RangeRequest::key(key) };
    node.range(req).is_ok_and(|r| r.count == 1)
}

#[test]
fn members_with_certificates_of_the_trusted_ca_form_a_cluster() {
    let (dir, ca, ca_file) = peer_ca();
    let mut cfgs =
        configs(dir.path(), |i| peer_tls(dir.path(), &format!("m{i}"), &ca, "member", &ca_file, Some("member")));
    for cfg in &mut cfgs {
        // Snapshots early, and a short log behind them, so a member that was down needs one.
        cfg.snapshot_count = 20;
        cfg.snapshot_catchup_entries = 5;
    }
    let mut nodes: Vec<Node> = cfgs.iter().map(|cfg| Node::start(cfg.clone()).expect("start member")).collect();
    assert!(
        harness::eventually(Duration::from_secs(20), || {
            let leader = nodes[0].leader_id();
            leader != 0 && nodes.iter().all(|n| n.leader_id() == leader)
        }),
        "no leader over TLS"
    );
    put(&nodes[1], "over/tls");
    assert!(harness::eventually(Duration::from_secs(10), || nodes.iter().all(|n| has(n, "over/tls"))));
    // A linearizable read on a follower takes a ReadIndex round through the leader.
    let follower = nodes.iter().position(|n| n.leader_id() != n.member_id()).unwrap();
    assert_eq!(nodes[follower].range(RangeRequest::key("over/tls")).unwrap().count, 1);

    // Plaintext, garbage and a handshake trickled a byte at a time to a peer port: closed
    // (the trickle within the hello timeout, 5 s, as a whole), and the cluster serves on.
    let peer_addr = cfgs[0].listen_peer_urls[0].trim_start_matches("https://").to_string();
    let hello = b"\x00\x00\x00\x10raftkv-hello-not-tls";
    assert!(closed_within(&peer_addr, hello, Duration::from_secs(10)), "plaintext to the TLS peer port");
    let mut trickle = std::net::TcpStream::connect(&peer_addr).unwrap();
    let started = std::time::Instant::now();
    let client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let mut closed = false;
    for byte in client_hello.iter().cycle().take(40) {
        std::thread::sleep(Duration::from_millis(400));
        if std::io::Write::write_all(&mut trickle, &[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 1];
        trickle.set_nonblocking(true).unwrap();
        let read = std::io::Read::read(&mut trickle, &mut probe);
        trickle.set_nonblocking(false).unwrap();
        if matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickled handshake held the peer port for {:?}", started.elapsed());
    put(&nodes[0], "after/garbage");
    assert!(harness::eventually(Duration::from_secs(10), || nodes.iter().all(|n| has(n, "after/garbage"))));

    // The follower misses 100 writes, more than the leader keeps in its log: it catches up
    // from a snapshot file streamed over TLS.
    // Dropped, not only stopped: its RocksDB closes with the last handle.
    let stopped = nodes.remove(follower);
    stopped.stop().unwrap();
    drop(stopped);
    for i in 0..100 {
        put(&nodes[0], &format!("while/down/{i}"));
    }
    nodes.insert(follower, Node::start(cfgs[follower].clone()).expect("restart the follower"));
    assert!(
        harness::eventually(Duration::from_secs(20), || has(&nodes[follower], "while/down/99")),
        "the restarted follower never caught up over TLS"
    );
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn a_member_added_with_a_foreign_certificate_cannot_join() {
    let (dir, ca, ca_file) = peer_ca();
    let cfgs = configs(dir.path(), |i| peer_tls(dir.path(), &format!("m{i}"), &ca, "member", &ca_file, None));
    let nodes: Vec<Node> = cfgs.iter().map(|cfg| Node::start(cfg.clone()).expect("start member")).collect();
    assert!(harness::eventually(Duration::from_secs(20), || nodes[0].leader_id() != 0));
    let port = harness::free_port();
    let url = format!("https://127.0.0.1:{port}");
    nodes[0].member_add(MemberAddRequest { peer_urls: vec![url.clone()], is_learner: true }).expect("member add");
    let mut initial: Vec<String> =
        cfgs.iter().map(|c| format!("{}={}", c.name, c.initial_advertise_peer_urls[0])).collect();
    initial.push(format!("m3={url}"));
    let mut joiner = member_config(dir.path(), "m3", port, &initial.join(","));
    joiner.listen_peer_urls = vec![url.clone()];
    joiner.initial_advertise_peer_urls = vec![url];
    joiner.initial_cluster_state = ClusterState::Existing;
    // Trusts the cluster's CA, so it could check the others; its own certificate is foreign.
    let other = Ca::new("a foreign CA");
    joiner.peer_tls = TlsInfo {
        trusted_ca_file: Some(ca_file.clone()),
        ..peer_tls(dir.path(), "m3", &other, "member", &ca_file, None)
    };
    let joined = Node::start(joiner);
    assert!(joined.is_err(), "a member with a foreign certificate joined");
    let err = joined.err().unwrap().to_string();
    assert!(err.contains("cannot fetch the cluster"), "{err}");
    put(&nodes[1], "still/serving");
    assert!(harness::eventually(Duration::from_secs(10), || has(&nodes[2], "still/serving")));
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn a_member_without_a_good_certificate_never_joins() {
    let other = Ca::new("a foreign CA");
    // m2's certificate is another CA's (and m2 trusts only that CA); or the right CA's but
    // not named as --peer-cert-allowed-cn says; or the right CA's for m2's own address,
    // 127.0.0.3, while m2 dials from 127.0.0.1 (etcd's SAN check on the peer listener).
    for case in ["foreign CA", "wrong CN", "wrong SAN"] {
        let foreign_ca = case == "foreign CA";
        let (dir, ca, ca_file) = peer_ca();
        let other_file = dir.path().join("other.pem");
        std::fs::write(&other_file, &other.pem).unwrap();
        let m2_host = if case == "wrong SAN" { "127.0.0.3" } else { "127.0.0.1" };
        let cfgs = configs_on(dir.path(), ["127.0.0.1", "127.0.0.1", m2_host], |i| match (i, case) {
            (2, "foreign CA") => peer_tls(dir.path(), "m2", &other, "member", &other_file, Some("member")),
            (2, "wrong CN") => peer_tls(dir.path(), "m2", &ca, "intruder", &ca_file, Some("member")),
            (2, _) => peer_tls_for(dir.path(), "m2", &ca, "member", m2_host, &ca_file, Some("member")),
            _ => peer_tls(dir.path(), &format!("m{i}"), &ca, "member", &ca_file, Some("member")),
        });
        let nodes: Vec<Node> = cfgs.into_iter().map(|cfg| Node::start(cfg).expect("start member")).collect();
        assert!(
            harness::eventually(Duration::from_secs(20), || {
                let leader = nodes[0].leader_id();
                leader != 0 && nodes[1].leader_id() == leader
            }),
            "m0 and m1 elect no leader ({case})"
        );
        put(&nodes[0], "good/members");
        assert!(harness::eventually(Duration::from_secs(10), || has(&nodes[1], "good/members")));
        // Time for m2 to try: its messages never arrive, so it never has a leader that
        // answers it, and the leader never counts it as caught up.
        std::thread::sleep(Duration::from_secs(3));
        let leader = nodes.iter().find(|n| n.leader_id() == n.member_id()).expect("a leader");
        assert_ne!(leader.member_id(), nodes[2].member_id(), "the refused member leads ({case})");
        if foreign_ca {
            // Neither side can reach the other: m2 saw nothing of the cluster.
            assert!(!has(&nodes[2], "good/members"), "m2 got the data (foreign_ca={foreign_ca})");
            assert_eq!(nodes[2].leader_id(), 0);
        }
        put(&nodes[1], "still/serving");
        assert!(harness::eventually(Duration::from_secs(10), || has(&nodes[0], "still/serving")));
        for node in nodes {
            let _ = node.stop();
        }
    }
}
