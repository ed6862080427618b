//! Migration from a running etcd by mirroring: a real etcd 3.4 is filled, `raftkvctl
//! make-mirror` copies it into a raftkv member and then follows its changes (puts, deletes, a
//! txn), and `etcdctl make-mirror` does the same under another prefix; in the end every key and
//! value in raftkv is etcd's. Skipped (with a note) when etcd is not installed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use raftkv::pb::*;
use raftkv::Client;

use crate::harness::process::{ctl_command, Member};
use crate::harness::{eventually, Gateway};

const ETCD_BIN: &str = "/usr/bin/etcd";

/// Every key under `prefix` and its value.
fn contents(client: &Client, prefix: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    client.range(&RangeRequest::prefix(prefix)).unwrap().kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// A mirror process, killed when the test is done with it.
struct Mirror(Child);

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn make_mirror_copies_a_live_etcd_into_raftkv_and_follows_it() {
    if !Path::new(ETCD_BIN).exists() {
        eprintln!("etcd is not installed (apt-get install etcd-server): skipping the make-mirror test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Member::new("source", dir.path());
    etcd.spawn_binary(ETCD_BIN, &dir.path().join("etcd"));
    etcd.wait_healthy(Duration::from_secs(20));
    let source = Client::new(&[etcd.endpoint()], Duration::from_secs(10)).unwrap();
    for i in 0..1500 {
        source.put(&PutRequest::new(format!("app/{i:04}"), format!("v{i}"))).unwrap();
    }
    source.delete_range(&DeleteRangeRequest::prefix("app/00")).unwrap();
    source.put(&PutRequest::new("other", "not mirrored with --prefix")).unwrap();

    let raftkv = Gateway::start();
    let dest = raftkv.addr().to_string();
    let target = Client::new(std::slice::from_ref(&dest), Duration::from_secs(10)).unwrap();
    let spawn = |command: &mut std::process::Command| {
        Mirror(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("a mirror process"))
    };
    let _ours = spawn(&mut ctl_command(&etcd.endpoint(), &["make-mirror", "--prefix", "app/", &dest]));
    let _etcdctl = spawn(std::process::Command::new("etcdctl").env("ETCDCTL_API", "3").args([
        "--endpoints",
        &etcd.endpoint(),
        "make-mirror",
        "--prefix",
        "app/",
        "--dest-prefix",
        "copy/",
        &dest,
    ]));
    let copied = |from: &BTreeMap<Vec<u8>, Vec<u8>>, to: &str| -> BTreeMap<Vec<u8>, Vec<u8>> {
        from.iter().map(|(k, v)| ([to.as_bytes(), &k[b"app/".len()..]].concat(), v.clone())).collect()
    };
    let caught_up = || {
        let want = contents(&source, "app/");
        contents(&target, "app/") == want && contents(&target, "copy/") == copied(&want, "copy/")
    };
    assert!(eventually(Duration::from_secs(60), caught_up), "the base copy never matched etcd's keys");
    assert!(contents(&target, "other").is_empty(), "only --prefix is mirrored");

    // Changes after the copy reach raftkv through the mirrors' watches.
    source.put(&PutRequest::new("app/0500", "changed")).unwrap();
    source.delete_range(&DeleteRangeRequest::prefix("app/01")).unwrap();
    let ops = ["app/x", "app/y"]
        .map(|k| RequestOp { request: Some(request_op::Request::RequestPut(PutRequest::new(k, "in a txn"))) });
    source.txn(&TxnRequest { success: ops.to_vec(), ..Default::default() }).unwrap();
    assert!(eventually(Duration::from_secs(60), caught_up), "the mirrors did not follow etcd's changes");
    assert_eq!(contents(&target, "app/0500").into_values().next(), Some(b"changed".to_vec()));
    assert_eq!(contents(&target, "app/").len(), 1500 - 100 - 100 + 2);
    etcd.kill();
}
