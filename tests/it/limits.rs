//! A member process at its open-file limit (issue 16, "Resource bounds"): it raises its soft
//! limit to the hard one at start, as Go's runtime does for etcd, and at the hard limit it
//! refuses what it cannot accept, logs why, and goes on serving the clients it has.

use std::time::Duration;

use raftkv::pb::{PutRequest, RangeRequest};

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
