//! raftkv's reader of etcd's backend file (`raftkv::snapshot::bbolt`) against a real etcd
//! 3.4: a member is filled through its gateway and etcdctl (enough keys for many leaf pages,
//! a value on overflow pages, history on both sides of a compaction, a lease, users and
//! roles, auth enabled), `etcdctl snapshot save` writes the file, and then every row the
//! reader hands over is checked against what etcd answered, and the reader's status against
//! `etcdctl snapshot status`; then the file is restored into a raftkv member, which must answer
//! as etcd did. Skipped (with a note) when etcd is not installed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use raftkv::mvcc::Revision;
use raftkv::pb::request_op::Request;
use raftkv::pb::*;
use raftkv::server::restore::{restore, RestoreConfig};
use raftkv::snapshot::bbolt::{self, EtcdInfo};
use raftkv::storage::{meta, Cf};
use raftkv::{Client, Node};

use super::grpc::etcdctl;
use crate::harness::process::Member;

const ETCD_BIN: &str = "/usr/bin/etcd";
const ROOT: &str = "root:rootpw";
/// Keys in the bulk load: at 1 KiB each, about a thousand leaf pages of 4 KiB.
const KEYS: usize = 3000;
/// etcd's `--max-txn-ops` default is 128.
const PUTS_PER_TXN: usize = 100;
/// More than a page: stored on a page with overflow pages.
const BIG_VALUE_BYTES: usize = 20 << 10;
const LEASE_TTL: i64 = 600;

/// A row as `read_etcd` handed it over: key, value.
type Row = (Vec<u8>, Vec<u8>);

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:04}").into_bytes()
}

/// A 1 KiB value that differs per key and per write.
fn value(i: usize, write: usize) -> Vec<u8> {
    let mut v = format!("{i:04}.{write}.").into_bytes();
    v.resize(1024, b'a' + (i % 26) as u8);
    v
}

fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutRequest {
    PutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

fn txn(ops: Vec<Request>) -> TxnRequest {
    TxnRequest { success: ops.into_iter().map(|r| RequestOp { request: Some(r) }).collect(), ..Default::default() }
}

fn revision_of(header: Option<ResponseHeader>) -> i64 {
    header.expect("a header").revision
}

/// Every key as of `rev`, read from etcd in pages (one answer for all would be megabytes).
fn etcd_range_all(client: &Client, rev: i64) -> Vec<KeyValue> {
    let mut all = Vec::new();
    let mut from = vec![0u8];
    loop {
        let req =
            RangeRequest { key: from.clone(), range_end: vec![0], limit: 500, revision: rev, ..Default::default() };
        let resp = client.range(&req).unwrap_or_else(|e| panic!("range at {rev}: {e}"));
        let more = resp.more;
        all.extend(resp.kvs);
        if !more {
            return all;
        }
        from = [&all.last().unwrap().key[..], &[0]].concat();
    }
}

/// The state at `rev` the `kv` rows describe: each key's newest row at or below `rev`,
/// unless that row is a tombstone.
fn rows_at(kv_rows: &[(Revision, bool, KeyValue)], rev: i64) -> Vec<KeyValue> {
    let mut state = BTreeMap::new();
    for (row_rev, tombstone, kv) in kv_rows.iter().filter(|(r, _, _)| r.main <= rev) {
        assert!(
            kv.mod_revision == row_rev.main || *tombstone,
            "row {row_rev:?} holds mod_revision {}",
            kv.mod_revision
        );
        if *tombstone {
            state.remove(&kv.key);
        } else {
            state.insert(kv.key.clone(), kv.clone());
        }
    }
    state.into_values().collect()
}

/// `etcdctl ... args` that must succeed, as root once auth is on: its stdout.
fn ctl(endpoint: &str, args: &[&str]) -> String {
    let (code, out, err) = etcdctl(endpoint, args, "");
    assert_eq!(code, Some(0), "etcdctl {args:?}: {out}{err}");
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What etcd answered while it was filled, to check the file's rows against.
struct Expected {
    compact_rev: i64,
    /// (revision, etcd's answer for every key at it)
    states: Vec<(i64, Vec<KeyValue>)>,
    /// Revisions of deletes after the compaction: each left a tombstone row.
    tombstones: Vec<(Revision, Vec<u8>)>,
    lease_id: i64,
    /// The raft index before the auth changes: the snapshot's consistent index is above it.
    raft_index_before: u64,
    final_rev: i64,
}

/// Fills etcd through its gateway: bulk puts in transactions, overwrites, a range delete and
/// a compaction, then history above it (overwrites, deletes, a lease, a big value, a txn).
fn fill(client: &Client) -> Expected {
    for start in (0..KEYS).step_by(PUTS_PER_TXN) {
        let ops = (start..start + PUTS_PER_TXN).map(|i| Request::RequestPut(put(key(i), value(i, 0)))).collect();
        client.txn(&txn(ops)).unwrap();
    }
    for i in 0..100 {
        client.put(&put(key(i), value(i, 1))).unwrap();
    }
    let gone = DeleteRangeRequest { key: key(100), range_end: key(150), ..Default::default() };
    assert_eq!(client.delete_range(&gone).unwrap().deleted, 50);
    // The deletes are below the compaction: every row of those keys is removed.
    let compact_rev = revision_of(client.put(&put("marker", "before the compaction")).unwrap().header);
    client.compact(&CompactionRequest { revision: compact_rev, physical: true }).unwrap();

    let mut revs = vec![compact_rev];
    for i in 200..210 {
        client.put(&put(key(i), value(i, 2))).unwrap();
    }
    revs.push(client.status().unwrap().header.unwrap().revision);
    let mut tombstones = Vec::new();
    for i in 300..306 {
        let rev =
            revision_of(client.delete_range(&DeleteRangeRequest { key: key(i), ..Default::default() }).unwrap().header);
        tombstones.push((Revision::new(rev, 0), key(i)));
    }
    revs.push(tombstones[2].0.main);
    let lease_id = client.lease_grant(&LeaseGrantRequest { ttl: LEASE_TTL, id: 0 }).unwrap().id;
    client.put(&PutRequest { lease: lease_id, ..put("leased", "with a lease") }).unwrap();
    let big: Vec<u8> = (0..BIG_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    client.put(&put("big", big)).unwrap();
    client.put(&put(key(200), value(200, 3))).unwrap();
    // One revision, two changes: the delete's tombstone is sub revision 1.
    let mixed = txn(vec![
        Request::RequestPut(put("txn/a", "in a txn")),
        Request::RequestDeleteRange(DeleteRangeRequest { key: key(400), ..Default::default() }),
    ]);
    let mixed_rev = revision_of(client.txn(&mixed).unwrap().header);
    tombstones.push((Revision::new(mixed_rev, 1), key(400)));
    revs.push(mixed_rev);

    let status = client.status().unwrap();
    let final_rev = status.header.unwrap().revision;
    assert_eq!(final_rev, mixed_rev);
    let states = revs.into_iter().map(|rev| (rev, etcd_range_all(client, rev))).collect();
    Expected { compact_rev, states, tombstones, lease_id, raft_index_before: status.raft_index, final_rev }
}

/// Users and roles, and auth enabled, with etcdctl: etcd's auth revision starts at 1 and
/// each of these seven changes adds one (enabling does not), so the file holds 8.
fn add_auth(endpoint: &str) {
    for args in [
        "user add alice:alicepw",
        "role add reader",
        "role grant-permission reader read foo",
        "user grant-role alice reader",
        &format!("user add {ROOT}"),
        "role add root",
        "user grant-role root root",
        "auth enable",
    ] {
        ctl(endpoint, &args.split(' ').collect::<Vec<_>>());
    }
}

#[test]
fn an_etcd_snapshot_reads_back_as_etcd_answered() {
    if !Path::new(ETCD_BIN).exists() {
        eprintln!("etcd is not installed (apt-get install etcd-server): skipping the etcd snapshot test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Member::new("backup", dir.path());
    etcd.spawn_binary(ETCD_BIN, &dir.path().join("etcd"));
    etcd.wait_healthy(Duration::from_secs(20));
    let endpoint = etcd.endpoint();
    let client = Client::new(std::slice::from_ref(&endpoint), Duration::from_secs(20)).unwrap();
    let expected = fill(&client);
    let leases = client.lease_leases().unwrap().leases;
    let ttl = client.lease_time_to_live(&LeaseTimeToLiveRequest { id: expected.lease_id, keys: true }).unwrap();
    assert_eq!((ttl.granted_ttl, ttl.keys.clone()), (LEASE_TTL, vec![b"leased".to_vec()]));
    add_auth(&endpoint);
    let file = dir.path().join("backup.db");
    let file_arg = file.to_str().unwrap();
    ctl(&endpoint, &["--user", ROOT, "snapshot", "save", file_arg]);
    let raft_index_after = json(&ctl(&endpoint, &["--user", ROOT, "endpoint", "status", "-w", "json"]))[0]["Status"]
        ["raftIndex"]
        .as_u64()
        .unwrap();
    etcd.kill();
    let etcd_status = json(&ctl(&endpoint, &["snapshot", "status", file_arg, "-w", "json"]));

    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(size % 512, 32, "etcdctl's file ends with the SHA-256 trailer");
    assert!(bbolt::is_bbolt(&file).unwrap());
    let mut rows: BTreeMap<&str, Vec<Row>> = BTreeMap::new();
    let info = bbolt::read_etcd(&file, &mut |cf, k, v| {
        rows.entry(cf.name()).or_default().push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();

    let status = bbolt::etcd_status(&file).unwrap();
    let want = [("hash", status.hash as u64), ("revision", status.revision as u64)]
        .into_iter()
        .chain([("totalKey", status.total_keys), ("totalSize", status.total_size)]);
    for (field, ours) in want {
        assert_eq!(etcd_status[field].as_u64(), Some(ours), "{field}: etcdctl says {etcd_status}");
    }
    assert_eq!(status.total_size, size - 32);
    for format in ["simple", "table", "json"] {
        let etcdctl_says = ctl(&endpoint, &["snapshot", "status", file_arg, "-w", format]);
        let ours = crate::harness::process::ctl(&endpoint, &["snapshot", "status", file_arg, "-w", format]);
        assert_eq!(String::from_utf8_lossy(&ours.stdout), etcdctl_says, "raftkvctl snapshot status -w {format}");
    }

    check_kv(&rows["kv"], &expected);
    check_leases(&rows["lease"], &leases, expected.lease_id);
    let compact = (expected.compact_rev as u64).to_be_bytes().to_vec();
    let want_meta =
        vec![(meta::COMPACT_REVISION.to_vec(), compact.clone()), (meta::SCHEDULED_COMPACT_REVISION.to_vec(), compact)];
    assert_eq!(rows["meta"], want_meta);
    check_auth(&rows["auth"]);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [Cf::Auth, Cf::Kv, Cf::Lease, Cf::Meta].map(|cf| cf.name()));
    let EtcdInfo { consistent_index, auth_enabled, revision } = info;
    assert!(auth_enabled);
    assert_eq!(revision, expected.final_rev);
    assert!(
        (expected.raft_index_before..=raft_index_after).contains(&consistent_index),
        "consistent index {consistent_index} outside {}..={raft_index_after}",
        expected.raft_index_before
    );

    restored_member_answers_as_etcd_did(dir.path(), &file, &expected, &leases, &ttl);

    // A flipped bit in the database is caught by the trailer before anything is written.
    let mut damaged = std::fs::read(&file).unwrap();
    damaged[(size / 2) as usize] ^= 1;
    let damaged_file = dir.path().join("damaged.db");
    std::fs::write(&damaged_file, damaged).unwrap();
    let target = dir.path().join("from-damaged");
    let err = restore(&restore_config(&damaged_file, target.clone())).unwrap_err().to_string();
    assert!(err.starts_with("expected sha256 ["), "{err}");
    assert!(!target.exists());
}

fn restore_config(file: &Path, data_dir: std::path::PathBuf) -> RestoreConfig {
    RestoreConfig {
        snapshot: file.to_path_buf(),
        name: "migrated".into(),
        data_dir,
        initial_cluster: "migrated=http://127.0.0.1:2380".into(),
        initial_cluster_token: "from-etcd".into(),
        initial_advertise_peer_urls: vec!["http://127.0.0.1:2380".into()],
        skip_hash_check: false,
        bump_revision: 0,
        mark_compacted: false,
    }
}

/// The migration path: the etcd file restored into a raftkv data dir, and a member on it
/// answering every range etcd answered (every key, value, create/mod revision, version and
/// lease at each recorded revision), compacted where etcd was, with etcd's leases, users and
/// roles.
fn restored_member_answers_as_etcd_did(
    dir: &Path,
    file: &Path,
    expected: &Expected,
    leases: &[LeaseStatus],
    ttl: &LeaseTimeToLiveResponse,
) {
    let made = restore(&restore_config(file, dir.join("raftkv"))).unwrap();
    assert!(made.from_etcd);
    assert_eq!(made.revision, expected.final_rev);
    let mut cfg = crate::harness::config(&dir.join("raftkv"));
    cfg.name = "migrated".into();
    let member = Node::start(cfg).unwrap();
    assert!(crate::harness::eventually(Duration::from_secs(10), || member.leader_id() != 0));
    // Auth stays enabled, as in the backup: the checks are made as root.
    let anonymous = member.range(RangeRequest::key("marker"));
    assert!(matches!(anonymous, Err(raftkv::Error::UserEmpty)), "{anonymous:?}");
    let login = AuthenticateRequest { name: "root".into(), password: "rootpw".into() };
    let token = Some(member.authenticate(&login).unwrap().token);
    let node = member.with_credentials(&raftkv::auth::Credentials { token, common_name: None }).unwrap();
    assert_eq!(node.revision(), expected.final_rev);
    for (rev, etcd_kvs) in &expected.states {
        let all = RangeRequest { key: vec![0], range_end: vec![0], revision: *rev, ..Default::default() };
        assert!(node.range(all).unwrap().kvs == *etcd_kvs, "the state at revision {rev} differs from etcd's");
    }
    let below = node.range(RangeRequest { revision: expected.compact_rev - 1, ..RangeRequest::key("marker") });
    assert!(matches!(below, Err(raftkv::Error::Compacted)), "{below:?}");
    let ids = |l: &[LeaseStatus]| l.iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(&node.lease_leases().unwrap().leases), ids(leases));
    let ours = node.lease_time_to_live(LeaseTimeToLiveRequest { id: expected.lease_id, keys: true }).unwrap();
    assert_eq!((ours.granted_ttl, ours.keys), (ttl.granted_ttl, ttl.keys.clone()));
    assert_eq!(node.user_list().unwrap().users, ["alice", "root"]);
    assert_eq!(node.role_list().unwrap().roles, ["reader", "root"]);
    assert_eq!(node.user_get(&AuthUserRequest { name: "alice".into() }).unwrap().roles, ["reader"]);
    assert!(node.put(put("after-migration", "x")).unwrap().header.unwrap().revision == expected.final_rev + 1);
    member.stop().unwrap();
}

/// Every `kv` row is a revision key over an `mvccpb.KeyValue`; the state they describe at
/// each recorded revision is etcd's answer at it, and each later delete left its tombstone.
fn check_kv(rows: &[Row], expected: &Expected) {
    let decoded: Vec<(Revision, bool, KeyValue)> = rows
        .iter()
        .map(|(k, v)| {
            let (rev, tombstone) = Revision::from_key(k).expect("a revision key");
            (rev, tombstone, KeyValue::decode(&v[..]).expect("an mvccpb.KeyValue"))
        })
        .collect();
    assert!(decoded.windows(2).all(|w| w[0].0 < w[1].0), "rows in revision order");
    for (rev, answer) in &expected.states {
        assert!(answer.len() > KEYS - 100, "at {rev}: {} keys", answer.len());
        let ours = rows_at(&decoded, *rev);
        assert_eq!(ours.len(), answer.len(), "keys at {rev}");
        for (got, want) in ours.iter().zip(answer) {
            assert_eq!(got, want, "at revision {rev}");
        }
    }
    for (rev, key) in &expected.tombstones {
        let row = decoded.iter().find(|(r, _, _)| r == rev).unwrap_or_else(|| panic!("no row at {rev:?}"));
        assert!(row.1, "the row at {rev:?} is a tombstone");
        assert_eq!(&row.2.key, key);
    }
    let deleted_before_compaction = key(120);
    assert!(!decoded.iter().any(|(_, _, kv)| kv.key == deleted_before_compaction), "compacted away");
    let big = decoded.iter().find(|(_, _, kv)| kv.key == b"big").expect("the big value's row");
    assert_eq!(big.2.value.len(), BIG_VALUE_BYTES);
    // The compaction kept one row for each key alive at it, none for the keys deleted below it.
    assert_eq!(decoded.iter().filter(|(r, _, _)| r.main <= expected.compact_rev).count(), KEYS - 50 + 1);
}

/// The one lease, as etcd lists it, with its granted TTL; no checkpoint was taken.
fn check_leases(rows: &[Row], leases: &[LeaseStatus], lease_id: i64) {
    assert_eq!(leases.iter().map(|l| l.id).collect::<Vec<_>>(), [lease_id]);
    let want = LeaseRecord { id: lease_id, ttl: LEASE_TTL, remaining_ttl: 0 };
    assert_eq!(rows, [(lease_id.to_be_bytes().to_vec(), want.encode_to_vec())]);
}

/// The auth revision, the users (bcrypt hashes, sorted roles) and the roles.
fn check_auth(rows: &[Row]) {
    let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(keys, [&b"enabled"[..], b"revision", b"role/reader", b"role/root", b"user/alice", b"user/root"]);
    assert_eq!(rows[0].1, [1]);
    let rows = &rows[1..];
    assert_eq!(rows[0].1, 8u64.to_be_bytes());
    let reader = Role::decode(&rows[1].1[..]).unwrap();
    let read_foo = Permission { perm_type: PermissionType::Read as i32, key: b"foo".to_vec(), range_end: Vec::new() };
    assert_eq!(reader, Role { name: b"reader".to_vec(), key_permission: vec![read_foo] });
    assert_eq!(Role::decode(&rows[2].1[..]).unwrap(), Role { name: b"root".to_vec(), key_permission: Vec::new() });
    for (row, name, role, password) in [(&rows[3], "alice", "reader", "alicepw"), (&rows[4], "root", "root", "rootpw")]
    {
        let user = User::decode(&row.1[..]).unwrap();
        assert_eq!((&user.name[..], &user.roles[..]), (name.as_bytes(), &[role.to_string()][..]));
        assert!(bcrypt::verify(password, std::str::from_utf8(&user.password).unwrap()).unwrap(), "{name}'s hash");
    }
}
