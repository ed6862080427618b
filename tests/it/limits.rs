//! A member process at its open-file limit (issue 16, "Resource bounds"): it raises its soft
//! limit to the hard one at start, as Go's runtime does for etcd, and at the hard limit it
//! refuses what it cannot accept, logs why, and goes on serving the clients it has.

use std::time::Duration;

use raftkv::pb::*;
use raftkv::Client;

use crate::harness::eventually;
use crate::harness::http::Conn;
use crate::harness::process::Member;

/// `Max open files` (soft, hard) of process `pid`.
fn open_file_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

fn member(name: &str, dir: &std::path::Path, open_files: (u64, u64)) -> Member {
    let mut m = Member::new(name, dir);
    m.open_files = Some(open_files);
    m.spawn(&dir.join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(60));
    m
}

/// A gateway range on `conn`, kept alive; its status (0: no answer).
fn range(conn: &mut Conn) -> u16 {
    let sent = conn.request("POST", "/v3/kv/range", &[], br#"{"key":"YQ=="}"#);
    sent.and_then(|()| conn.read_reply()).map_or(0, |r| r.status)
}

#[test]
fn a_member_raises_its_open_file_limit_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = member("fdraise", dir.path(), (256, 2048));
    assert_eq!(open_file_limit(m.pid()), (2048, 2048));
    // More clients than the soft limit it was started with, each answered and held open.
    let mut conns: Vec<Conn> = (0..400).map(|_| Conn::open(m.endpoint(), Duration::from_secs(10)).unwrap()).collect();
    for conn in &mut conns {
        assert_eq!(range(conn), 200);
    }
    assert_eq!(m.terminate().code(), Some(0));
}

#[test]
fn at_its_open_file_limit_a_member_refuses_connections_and_serves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = member("fdlimit", dir.path(), (200, 200));
    let client = m.client();
    client.put(&PutRequest::new("before", "1")).unwrap();
    // More connections than it has descriptors for, each asking at once: some are accepted
    // and answered, the rest wait in the kernel's backlog (or for it) unanswered.
    let addr = m.endpoint().parse().unwrap();
    let asked: Vec<(Option<Conn>, u16)> = std::thread::scope(|s| {
        let askers: Vec<_> = (0..250)
            .map(|_| {
                s.spawn(move || match Conn::open_within(addr, Duration::from_secs(2)) {
                    Ok(mut conn) => {
                        let status = range(&mut conn);
                        (Some(conn), status)
                    }
                    Err(_) => (None, 0),
                })
            })
            .collect();
        askers.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let answered = asked.iter().filter(|(_, status)| *status == 200).count();
    assert!(answered > 0 && answered < asked.len(), "{answered} of {} connections answered", asked.len());
    assert!(!m.exited(), "the member died at its open-file limit; see {}", m.log.display());
    // The client it had goes on: a write and a linearizable read.
    client.put(&PutRequest::new("during", "2")).unwrap();
    assert_eq!(client.range(&RangeRequest::key("during")).unwrap().kvs[0].value, b"2");
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(log.contains("accept failed") && log.contains("Too many open files"), "{log}");
    // Once the extra connections are gone, new clients are served again.
    drop(asked);
    let fresh = eventually(Duration::from_secs(10), || {
        Conn::open_within(addr, Duration::from_secs(2)).is_ok_and(|mut c| range(&mut c) == 200)
    });
    assert!(fresh, "no new client served after the connections closed");
    assert_eq!(m.terminate().code(), Some(0));
}

/// Ranges that may be large are read on the blocking pool a few at a time, not on the event
/// loops (src/service/reads.rs): each client still gets its whole answer, over gRPC and the
/// gateway, linearizable or serializable, limited or not, with point reads beside them.
#[test]
fn many_large_ranges_at_once_each_get_their_whole_answer() {
    const KEYS: usize = 2_000;
    let gw = crate::harness::Gateway::start();
    for batch in 0..KEYS / 100 {
        let success = (batch * 100..(batch + 1) * 100)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest::new(format!("big/{i:05}"), "v"))),
            })
            .collect();
        gw.node.txn(TxnRequest { success, ..Default::default() }).unwrap();
    }
    let endpoint = [gw.addr().to_string()];
    std::thread::scope(|s| {
        for t in 0..12 {
            let endpoint = &endpoint;
            s.spawn(move || {
                let timeout = Duration::from_secs(30);
                let client =
                    if t % 2 == 0 { Client::new(endpoint, timeout) } else { Client::gateway(endpoint, timeout) };
                let client = client.unwrap();
                for round in 0..3 {
                    let limit = if round == 2 { 1_500 } else { 0 };
                    let req = RangeRequest { serializable: t % 3 == 0, limit, ..RangeRequest::prefix("big/") };
                    let resp = client.range(&req).unwrap_or_else(|e| panic!("client {t} round {round}: {e}"));
                    let want = if limit > 0 { limit as usize } else { KEYS };
                    assert_eq!((resp.count, resp.kvs.len(), resp.more), (KEYS as i64, want, limit > 0));
                    assert!(resp.kvs.windows(2).all(|w| w[0].key < w[1].key));
                }
            });
        }
        let client = Client::new(&endpoint, Duration::from_secs(30)).unwrap();
        for i in 0..20 {
            client.put(&PutRequest::new("point", i.to_string())).unwrap();
            assert_eq!(client.range(&RangeRequest::key("point")).unwrap().kvs[0].value, i.to_string().as_bytes());
        }
    });
}
