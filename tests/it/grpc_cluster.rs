//! etcdctl 3.4 against a 3-member cluster of real `raftkv` processes: everything it does
//! against a single member it does against a follower (which forwards writes, lease calls and
//! read barriers to the leader), and a watch across the leader's SIGKILL goes on (clientv3
//! resumes on another member) without missing or repeating an event.

use std::time::{Duration, Instant};

use raftkv::pb::PutRequest;

use super::grpc::{etcdctl, watchers, Streaming};
use crate::harness::process::{spawn_cluster, Member};

struct Trio {
    _dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl Trio {
    fn start() -> Trio {
        let dir = tempfile::tempdir().unwrap();
        let mut members = spawn_cluster("g", 3, dir.path());
        for m in &mut members {
            m.wait_healthy(Duration::from_secs(20));
        }
        Trio { _dir: dir, members }
    }

    /// The index of the member every running member names as leader, once they agree.
    fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let statuses: Vec<_> = self.members.iter().filter(|m| m.running()).map(Member::status).collect();
            let leaders: Vec<u64> = statuses.iter().map(|s| s.as_ref().map_or(0, |s| s.leader)).collect();
            if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                let id = |m: &Member| m.status().and_then(|s| s.header).map(|h| h.member_id);
                if let Some(i) = self.members.iter().position(|m| m.running() && id(m) == Some(leaders[0])) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn etcdctl_against_a_follower_does_what_it_does_against_the_leader() {
    let trio = Trio::start();
    let leader = trio.leader(Duration::from_secs(10));
    let e = trio.members[(leader + 1) % 3].endpoint();
    let ok = |args: &[&str], stdin: &str| {
        let (code, out, err) = etcdctl(&e, args, stdin);
        assert_eq!(code, Some(0), "etcdctl {args:?}: {err}");
        out
    };
    let watch = Streaming::start(&e, &["watch", "f/", "--prefix"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ok(&["put", "f/a", "1"], ""), "OK\n");
    assert_eq!(ok(&["get", "f/a", "--print-value-only"], ""), "1\n");
    assert_eq!(ok(&["get", "f/a", "--consistency", "s", "--print-value-only"], ""), "1\n");
    assert_eq!(ok(&["txn"], "value(\"f/a\") = \"1\"\n\nput f/b 2\n\n\n"), "SUCCESS\n\nOK\n");
    assert_eq!(ok(&["del", "f/", "--prefix"], ""), "2\n");
    assert_eq!(watch.next(9), ["PUT", "f/a", "1", "PUT", "f/b", "2", "DELETE", "f/a", ""]);

    let grant = ok(&["lease", "grant", "60"], "");
    let id = grant.split(' ').nth(1).unwrap().to_string();
    assert_eq!(ok(&["lease", "keep-alive", "--once", &id], ""), format!("lease {id} keepalived with TTL(60)\n"));
    assert!(ok(&["lease", "timetolive", &id], "").contains("granted with TTL(60s)"));
    assert!(ok(&["lease", "list"], "").contains(&id));
    assert_eq!(ok(&["lease", "revoke", &id], ""), format!("lease {id} revoked\n"));
    assert_eq!(ok(&["member", "list"], "").lines().count(), 3);
    assert!(ok(&["endpoint", "status"], "").contains(", false, "), "a follower says it is not the leader");
    let hashes: Vec<String> = trio
        .members
        .iter()
        .map(|m| {
            let out = etcdctl(&m.endpoint(), &["endpoint", "hashkv"], "").1;
            out.split(", ").nth(1).unwrap_or_default().trim().to_string()
        })
        .collect();
    assert!(hashes[0].parse::<u32>().is_ok() && hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    let file = trio._dir.path().join("follower.snap");
    assert!(ok(&["snapshot", "save", file.to_str().unwrap()], "").contains("Snapshot saved at"));
}

#[test]
fn a_watch_survives_the_leaders_death_without_missing_or_repeating_an_event() {
    let mut trio = Trio::start();
    let endpoints: Vec<String> = trio.members.iter().map(Member::endpoint).collect();
    let watch = Streaming::start(&endpoints.join(","), &["watch", "k/", "--prefix"]);
    // clientv3 picks the member; that one is made leader, then killed.
    let placed = Instant::now() + Duration::from_secs(10);
    let holder = loop {
        if let Some(i) = endpoints.iter().position(|e| watchers(e) == 1) {
            break i;
        }
        assert!(Instant::now() < placed, "the watch reached no member");
        std::thread::sleep(Duration::from_millis(50));
    };
    let leader = trio.leader(Duration::from_secs(10));
    if leader != holder {
        let id = format!("{:x}", trio.members[holder].status().unwrap().header.unwrap().member_id);
        let (code, _, err) = etcdctl(&endpoints[leader], &["move-leader", &id], "");
        assert_eq!(code, Some(0), "move-leader: {err}");
    }
    let leader = trio.leader(Duration::from_secs(10));
    assert_eq!(leader, holder, "the watch's member leads");

    // One writer on a follower that survives; a failed put is retried, so a key may be
    // written twice, which the history shows too.
    let writer = trio.members[(leader + 1) % 3].client();
    let put = |i: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while writer.put(&PutRequest::new(format!("k/{i:04}"), format!("v{i}"))).is_err() {
            assert!(Instant::now() < deadline, "put k/{i} never succeeded");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for i in 0..100 {
        put(i);
    }
    trio.members[leader].kill();
    for i in 100..200 {
        put(i);
    }
    trio.leader(Duration::from_secs(10));

    // The whole history, read afresh from a survivor, is what the watch saw.
    let survivor = trio.members[(leader + 2) % 3].endpoint();
    let want = Streaming::start(&survivor, &["watch", "k/", "--prefix", "--rev", "1"]).until_quiet();
    assert!(want.len() >= 600, "{} lines of history", want.len());
    assert_eq!(watch.until_quiet(), want);
}
