//! Backup and restore: a member's snapshot download restored into a new single member, into a
//! new 3-member cluster, with a bumped revision, and through raftkvctl end to end; damaged
//! files and existing data dirs are refused without leaving anything behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftkv::pb::*;
use raftkv::server::restore::{restore, RestoreConfig};
use raftkv::{Error, Node};

use crate::harness::cluster::{member_config, Cluster};
use crate::harness::process::{ctl, Member};
use crate::harness::*;

/// Keys, overwrites, deletes, a lease with keys, a compaction, a user and a role: every kind
/// of state a restore carries.
fn populate(node: &Node) -> i64 {
    for i in 0..20 {
        put(node, &format!("k{i:02}"), &format!("v{i}"));
    }
    for i in 0..5 {
        put(node, "k00", &format!("again{i}"));
    }
    node.delete_range(DeleteRangeRequest { key: b"k05".to_vec(), range_end: b"k08".to_vec(), prev_kv: false }).unwrap();
    let lease = node.lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).unwrap().id;
    for key in ["leased/a", "leased/b"] {
        node.put(PutRequest { lease, ..PutRequest::new(key, "x") }).unwrap();
    }
    let compact_at = node.revision() - 3;
    node.compact(CompactionRequest { revision: compact_at, physical: true }).unwrap();
    put(node, "after-compaction", "y");
    node.user_add(&AuthUserAddRequest { name: "amy".into(), password: "pw".into(), ..Default::default() }).unwrap();
    node.role_add(&AuthRoleAddRequest { name: "readers".into() }).unwrap();
    node.user_grant_role(&AuthUserGrantRoleRequest { user: "amy".into(), role: "readers".into() }).unwrap();
    compact_at
}

/// Everything a client can see of the state: every key at every revision still readable, the
/// HashKV, the leases with their keys, users and roles.
#[derive(Debug, PartialEq)]
struct Seen {
    revision: i64,
    history: Vec<Vec<KeyValue>>,
    hash_kv: (u32, i64),
    leases: Vec<(i64, i64, Vec<Vec<u8>>)>,
    users: Vec<String>,
    roles: Vec<String>,
}

fn seen(node: &Node, compact_at: i64) -> Seen {
    let revision = node.revision();
    let all = |rev| {
        node.range(RangeRequest { key: vec![0], range_end: vec![0], revision: rev, ..Default::default() }).unwrap().kvs
    };
    let hash = node.hash_kv(HashKvRequest { revision: 0 }).unwrap();
    let mut leases: Vec<_> = node
        .lease_leases()
        .unwrap()
        .leases
        .iter()
        .map(|l| {
            let t = node.lease_time_to_live(LeaseTimeToLiveRequest { id: l.id, keys: true }).unwrap();
            (t.id, t.granted_ttl, t.keys)
        })
        .collect();
    leases.sort();
    Seen {
        revision,
        history: (compact_at..=revision).map(all).collect(),
        hash_kv: (hash.hash, hash.compact_revision),
        leases,
        users: node.user_list().unwrap().users,
        roles: node.role_list().unwrap().roles,
    }
}

/// The member's snapshot download, as a client receives it, in `path`.
fn save(node: &Node, path: &Path) {
    let mut bytes = Vec::new();
    node.snapshot(&mut |chunk| {
        bytes.extend_from_slice(&chunk.blob);
        true
    })
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn restore_config(file: &Path, name: &str, data_dir: PathBuf, initial_cluster: &str, peer_url: &str) -> RestoreConfig {
    RestoreConfig {
        snapshot: file.to_path_buf(),
        name: name.into(),
        data_dir,
        initial_cluster: initial_cluster.into(),
        initial_cluster_token: "restored-cluster".into(),
        initial_advertise_peer_urls: vec![peer_url.into()],
        skip_hash_check: false,
        bump_revision: 0,
        mark_compacted: false,
    }
}

#[test]
fn a_download_restores_into_a_new_member_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("old"));
    let compact_at = populate(&node);
    let before = seen(&node, compact_at);
    let (old_member, old_cluster) = (node.member_id(), node.cluster_id());
    let file = dir.path().join("backup.db");
    save(&node, &file);
    node.stop().unwrap();

    let restored_dir = dir.path().join("new");
    let url = "http://127.0.0.1:2380";
    let made = restore(&restore_config(&file, "fresh", restored_dir.clone(), &format!("fresh={url}"), url)).unwrap();
    assert!(!made.from_etcd);
    assert_eq!(made.revision, before.revision);
    let mut cfg = config(&restored_dir);
    cfg.name = "fresh".into();
    let node = Node::start(cfg).unwrap();
    assert!(eventually(Duration::from_secs(10), || node.leader_id() != 0));
    assert_eq!((node.member_id(), node.cluster_id()), (made.member_id, made.cluster_id));
    assert_ne!((node.member_id(), node.cluster_id()), (old_member, old_cluster), "a new cluster");
    assert_eq!(seen(&node, compact_at), before);
    let old = node.range(RangeRequest { revision: compact_at - 1, ..RangeRequest::key("k00") });
    assert!(matches!(old, Err(Error::Compacted)), "{old:?}");
    assert_eq!(put(&node, "new", "write"), before.revision + 1, "the revision goes on");
    node.stop().unwrap();
}

#[test]
fn a_bumped_revision_is_marked_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("old"));
    populate(&node);
    let latest = node.revision();
    let file = dir.path().join("backup.db");
    save(&node, &file);
    node.stop().unwrap();

    let url = "http://127.0.0.1:2380";
    let mut rc = restore_config(&file, "test", dir.path().join("new"), &format!("test={url}"), url);
    rc.bump_revision = 1000;
    let refused = restore(&rc).unwrap_err().to_string();
    assert_eq!(refused, "--mark-compacted required if --bump-revision > 0");
    rc.mark_compacted = true;
    assert_eq!(restore(&rc).unwrap().revision, latest + 1000);
    let node = Node::start(config(&rc.data_dir)).unwrap();
    assert_eq!(node.revision(), latest + 1000);
    let old = node.range(RangeRequest { revision: latest, ..RangeRequest::key("k01") });
    assert!(matches!(old, Err(Error::Compacted)), "{old:?}");
    assert_eq!(get(&node, "k01").unwrap().value, b"v1", "the keys themselves are kept");
    assert_eq!(put(&node, "k01", "next"), latest + 1001);
    node.stop().unwrap();
}

#[test]
fn one_download_restores_a_whole_new_three_member_cluster() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("old"));
    let compact_at = populate(&node);
    let before = seen(&node, compact_at);
    let file = dir.path().join("backup.db");
    save(&node, &file);
    node.stop().unwrap();

    let cluster_dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
    let initial = initial.join(",");
    let cfgs: Vec<_> =
        (0..3).map(|i| member_config(cluster_dir.path(), &format!("m{i}"), ports[i], &initial)).collect();
    let mut ids = Vec::new();
    for cfg in &cfgs {
        let url = &cfg.initial_advertise_peer_urls[0];
        let made = restore(&RestoreConfig {
            initial_cluster_token: cfg.initial_cluster_token.clone(),
            ..restore_config(&file, &cfg.name, cfg.data_dir.clone(), &initial, url)
        })
        .unwrap();
        ids.push((made.member_id, made.cluster_id));
    }
    assert!(ids.iter().all(|(_, cluster)| *cluster == ids[0].1), "one cluster: {ids:x?}");
    let nodes = cfgs.iter().map(|cfg| Some(Node::start(cfg.clone()).unwrap())).collect();
    let cluster = Cluster { dir: cluster_dir, cfgs, nodes };
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    assert_eq!(cluster.node(leader).member_list().members.len(), 3);
    put(cluster.node(leader), "written", "after restore");
    cluster.wait_converged(Duration::from_secs(10));
    for (i, node) in cluster.running() {
        assert_eq!(node.member_id(), ids[i].0);
        let mut now = seen(node, compact_at);
        assert_eq!(now.revision, before.revision + 1, "m{i}");
        now.revision -= 1;
        now.history.pop();
        assert_ne!(now.hash_kv, before.hash_kv, "the new write is hashed");
        now.hash_kv = before.hash_kv;
        assert_eq!(now, before, "m{i}");
    }
}

#[test]
fn damaged_files_and_existing_data_dirs_are_refused_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("old"));
    put(&node, "k", "v");
    let file = dir.path().join("backup.db");
    save(&node, &file);
    node.stop().unwrap();
    let url = "http://127.0.0.1:2380";
    let target = dir.path().join("new");
    let rc = |file: &Path| restore_config(file, "test", target.clone(), &format!("test={url}"), url);

    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    let flipped = dir.path().join("flipped.db");
    std::fs::write(&flipped, &bytes).unwrap();
    let err = restore(&rc(&flipped)).unwrap_err().to_string();
    assert!(err.starts_with("expected sha256 ["), "{err}");
    // Without the hash check, the records' own checksum still catches it.
    let err = restore(&RestoreConfig { skip_hash_check: true, ..rc(&flipped) }).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");

    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 32]).unwrap();
    let err = restore(&rc(&cut)).unwrap_err().to_string();
    assert_eq!(err, "snapshot missing hash but --skip-hash-check=false");

    let err = restore(&restore_config(&file, "test", target.clone(), "other=http://127.0.0.1:9", url)).unwrap_err();
    assert!(err.to_string().contains("--initial-cluster must include this member"), "{err}");
    assert!(!target.exists() && !dir.path().join("new.restoring").exists(), "nothing left behind");

    restore(&rc(&file)).unwrap();
    let err = restore(&rc(&file)).unwrap_err().to_string();
    assert_eq!(err, format!("data-dir {:?} exists", target.display().to_string()));
}

/// raftkvctl end to end on real processes: `snapshot save` over the gateway, `snapshot
/// status`, `snapshot restore`, and a member started on the restored data dir.
#[test]
fn raftkvctl_saves_shows_and_restores_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Member::new("old", dir.path());
    old.spawn(&dir.path().join("old"), "", &[]);
    old.wait_healthy(Duration::from_secs(20));
    for i in 0..50 {
        assert!(ctl(&old.endpoint(), &["put", &format!("key{i}"), "value"]).status.success());
    }
    let file = dir.path().join("snap.db");
    let saved = ctl(&old.endpoint(), &["snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    assert_eq!(String::from_utf8_lossy(&saved.stdout), format!("Snapshot saved at {}\n", file.display()));
    assert!(!dir.path().join("snap.db.part").exists());
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(size % 512, 32, "etcd's download shape: whole 512-byte pages and the SHA-256");

    let status = ctl(&old.endpoint(), &["snapshot", "status", file.to_str().unwrap(), "-w", "json"]);
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(status.contains(r#""revision":51,"#), "{status}");
    assert!(status.contains(&format!(r#""totalSize":{}}}"#, size - 32)), "{status}");
    old.kill();

    let mut new = Member::new("new", dir.path());
    let data_dir = dir.path().join("restored");
    let restored = ctl(
        &new.endpoint(),
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--name",
            "new",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--initial-cluster",
            &format!("new={}", new.peer_url()),
            "--initial-advertise-peer-urls",
            &new.peer_url(),
        ],
    );
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    new.spawn(&data_dir, "", &[]);
    new.wait_healthy(Duration::from_secs(20));
    let got = ctl(&new.endpoint(), &["get", "key", "--prefix", "--count-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "50\n");
    let got = ctl(&new.endpoint(), &["get", "key7", "-w", "json"]);
    let got = String::from_utf8_lossy(&got.stdout).to_string();
    assert!(got.contains(r#""create_revision":9,"mod_revision":9,"version":1"#), "{got}");
    new.kill();
}
