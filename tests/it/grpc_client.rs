//! `raftkv::Client` over gRPC against a real member: many threads multiplexed on one HTTP/2
//! connection, values larger than every flow-control window, watch and keepalive streams,
//! the snapshot download, and failover from an endpoint that is down to one that is up.

use std::time::Duration;

use raftkv::pb::*;
use raftkv::Client;

use crate::harness::{free_port, Gateway};

fn client(gw: &Gateway) -> Client {
    Client::new(&[gw.addr().to_string()], Duration::from_secs(10)).unwrap()
}

#[test]
fn many_threads_share_one_connection_and_big_values_flow() {
    let gw = Gateway::start();
    let client = client(&gw);
    std::thread::scope(|s| {
        for t in 0..16 {
            let client = client.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let key = format!("t{t}/{i}");
                    client.put(&PutRequest::new(key.as_str(), "v")).unwrap();
                    let got = client.range(&RangeRequest::key(key.as_str())).unwrap();
                    assert_eq!(got.kvs[0].value, b"v");
                }
            });
        }
    });
    let all = client.range(&RangeRequest { count_only: true, ..RangeRequest::prefix("t") }).unwrap();
    assert_eq!(all.count, 16 * 50);
    // 1.4 MiB: past the server's and our windows (64 KiB initial, 1 MiB per stream), so both
    // directions wait for WINDOW_UPDATEs.
    let big = vec![b'x'; 1400 << 10];
    client.put(&PutRequest { key: b"big".to_vec(), value: big.clone(), ..Default::default() }).unwrap();
    assert_eq!(client.range(&RangeRequest::key("big")).unwrap().kvs[0].value, big);
    // 18 MiB in all on the one connection: past its 16 MiB window, which only comes back as
    // the answers are taken (in quarters of the window).
    for _ in 0..12 {
        assert_eq!(client.range(&RangeRequest::key("big")).unwrap().kvs[0].value, big);
    }
    // The server's errors come back with etcd's code and message.
    let err = client.range(&RangeRequest { revision: 1_000_000, ..RangeRequest::key("big") }).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: mvcc: required revision is a future revision");
}

#[test]
fn watch_keepalive_and_snapshot_stream_over_grpc() {
    let gw = Gateway::start();
    let client = client(&gw);
    let writer = client.clone();
    let mut seen = Vec::new();
    let watch = WatchCreateRequest { key: b"w".to_vec(), range_end: b"x".to_vec(), ..Default::default() };
    std::thread::scope(|s| {
        s.spawn(|| {
            client
                .watch(&watch, |resp| {
                    if resp.created {
                        // Written once the watch exists, from another thread on the same connection.
                        for i in 0..3 {
                            writer.put(&PutRequest::new(format!("w{i}"), "v")).unwrap();
                        }
                    }
                    seen.extend(resp.events.into_iter().map(|e| e.kv.unwrap().key));
                    seen.len() < 3
                })
                .unwrap();
        });
    });
    assert_eq!(seen, [b"w0".to_vec(), b"w1".to_vec(), b"w2".to_vec()]);

    let lease = client.lease_grant(&LeaseGrantRequest { ttl: 30, id: 0 }).unwrap().id;
    let renewed = client.lease_keep_alive(&LeaseKeepAliveRequest { id: lease }).unwrap();
    assert_eq!((renewed.id, renewed.ttl), (lease, 30));

    let mut download = Vec::new();
    let written = client.snapshot(&mut download).unwrap();
    assert_eq!(written as usize, download.len());
    assert_eq!(download.len() % 512, 32, "state padded to 512 bytes, then the SHA-256");
}

#[test]
fn a_call_fails_over_from_a_down_endpoint() {
    let gw = Gateway::start();
    let down = format!("127.0.0.1:{}", free_port());
    let client = Client::new(&[down, gw.addr().to_string()], Duration::from_secs(5)).unwrap();
    client.put(&PutRequest::new("k", "v")).unwrap();
    assert_eq!(client.endpoint(), gw.addr().to_string(), "the endpoint that answered is kept");
    assert_eq!(client.range(&RangeRequest::key("k")).unwrap().count, 1);
}

/// A member that stops answering without closing its connections (SIGSTOP: a paused VM, a
/// cut-off host) ends a watch held on it once the keepalive ping goes unanswered, as
/// clientv3's `DialKeepAliveTime` does; without a keepalive the watch would wait forever.
#[test]
fn a_keepalive_ends_a_watch_on_a_member_that_went_silent() {
    use crate::harness::process::{Member, SIGCONT, SIGSTOP};
    let dir = tempfile::tempdir().unwrap();
    let mut member = Member::new("silent", dir.path());
    member.spawn(&dir.path().join("data"), "", &[]);
    member.wait_healthy(Duration::from_secs(20));
    let client = Client::new(&[member.endpoint()], Duration::from_secs(5))
        .unwrap()
        .with_keepalive(Duration::from_millis(300), Duration::from_millis(600));
    let (created_tx, created) = crossbeam::channel::bounded(1);
    let (ended_tx, ended) = crossbeam::channel::bounded(1);
    std::thread::spawn(move || {
        let outcome = client.watch(&WatchCreateRequest { key: b"k".to_vec(), ..Default::default() }, |_| {
            let _ = created_tx.try_send(());
            true
        });
        let _ = ended_tx.send(outcome);
    });
    created.recv_timeout(Duration::from_secs(10)).expect("the watch is created");
    member.signal(SIGSTOP);
    let outcome = ended.recv_timeout(Duration::from_secs(30));
    member.signal(SIGCONT);
    let outcome = outcome.expect("the watch still waits on a silent member after 30 s");
    let err = outcome.expect_err("a watch on a silent member cannot end well");
    assert!(err.to_string().contains("keepalive ping unanswered"), "{err}");
    member.kill();
}
