//! Watches on real members: history replay, every revision exactly once in order under a
//! concurrent writer, slow watchers that never stall writes and catch up later, compacted
//! starts, lease expiry seen as DELETE events, and disconnects that free the watcher.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::*;
use raftkv::pb::*;
use raftkv::Node;

fn watch_prefix(node: &Node, prefix: &str, start_revision: i64) -> raftkv::node::Watch {
    let range = RangeRequest::prefix(prefix);
    let req = WatchCreateRequest { key: range.key, range_end: range.range_end, start_revision, ..Default::default() };
    node.watch(req).unwrap()
}

/// Collects events until `want` have arrived (or the time bound passes).
fn collect(watch: &raftkv::node::Watch, want: usize) -> Vec<(i64, Event)> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.len() < want && Instant::now() < deadline {
        if let Ok(resp) = watch.responses.recv_timeout(Duration::from_millis(100)) {
            assert!(!resp.canceled, "unexpected cancel: {resp:?}");
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            events.extend(resp.events.into_iter().map(|e| (rev, e)));
        }
    }
    events
}

fn created(watch: &raftkv::node::Watch) -> WatchResponse {
    let resp = watch.responses.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(resp.created, "{resp:?}");
    resp
}

#[test]
fn replay_from_an_old_revision_is_exactly_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let first = put(&node, "w/a", "1");
    put(&node, "w/a", "2");
    put(&node, "other", "x");
    node.delete_range(DeleteRangeRequest::key("w/a")).unwrap();
    put(&node, "w/b", "1");
    let watch = watch_prefix(&node, "w/", first);
    created(&watch);
    let events = collect(&watch, 4);
    let summary: Vec<(i32, String, i64)> = events
        .iter()
        .map(|(_, e)| {
            let kv = e.kv.as_ref().unwrap();
            (e.r#type, String::from_utf8_lossy(&kv.key).into_owned(), kv.mod_revision)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "w/a".into(), first),
            (0, "w/a".into(), first + 1),
            (1, "w/a".into(), first + 3),
            (0, "w/b".into(), first + 4)
        ]
    );
    // Then live events continue after the replay, without a gap or a repeat.
    put(&node, "w/c", "1");
    let more = collect(&watch, 1);
    assert_eq!(more[0].1.kv.as_ref().unwrap().mod_revision, first + 5);
    node.stop().unwrap();
}

#[test]
fn every_revision_once_in_order_under_a_concurrent_writer() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let watch = watch_prefix(&node, "k/", 0);
    let base = created(&watch).header.unwrap().revision;
    const WRITES: i64 = 2000;
    std::thread::scope(|s| {
        for t in 0..4 {
            let node = node.clone();
            s.spawn(move || {
                for i in 0..WRITES / 4 {
                    node.put(PutRequest::new(format!("k/{t}/{}", i % 20), i.to_string())).unwrap();
                }
            });
        }
    });
    let events = collect(&watch, WRITES as usize);
    let revs: Vec<i64> = events.iter().map(|(_, e)| e.kv.as_ref().unwrap().mod_revision).collect();
    assert_eq!(revs, (base + 1..=base + WRITES).collect::<Vec<_>>(), "every revision once, in order");
    node.stop().unwrap();
}

#[test]
fn a_watcher_that_stops_reading_does_not_stall_writes_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let slow = watch_prefix(&node, "s/", 0);
    created(&slow);
    // Far more responses than the watcher's queue holds, with nobody reading.
    for i in 0..3000 {
        put(&node, &format!("s/{}", i % 10), &i.to_string());
    }
    let events = collect(&slow, 3000);
    let revs: Vec<i64> = events.iter().map(|(_, e)| e.kv.as_ref().unwrap().mod_revision).collect();
    let mut expected: Vec<i64> = revs.clone();
    expected.dedup();
    assert_eq!(revs.len(), 3000, "caught up from disk after falling behind");
    assert_eq!(revs, expected, "no duplicates");
    assert!(revs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps, in order");
    node.stop().unwrap();
}

#[test]
fn writes_during_a_catch_up_from_disk_are_neither_lost_nor_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    // History several catch-up rounds long (a round reads 1,000 changes), interleaved with
    // keys the watcher does not match.
    let first = put(&node, "h/0", "0");
    for i in 1..5000 {
        put(&node, &format!("{}/{}", if i % 5 == 0 { "other" } else { "h" }, i % 50), &i.to_string());
    }
    let history_end = node.revision();
    // The watcher starts at the beginning while four writers keep going: the sync thread reads
    // history from disk as new revisions land and must hand over to live events exactly once.
    let watch = watch_prefix(&node, "h/", first);
    created(&watch);
    const LIVE: i64 = 2000;
    std::thread::scope(|s| {
        for t in 0..4 {
            let node = node.clone();
            s.spawn(move || {
                for i in 0..LIVE / 4 {
                    node.put(PutRequest::new(format!("h/live/{t}/{}", i % 10), i.to_string())).unwrap();
                }
            });
        }
    });
    let end = node.revision();
    assert_eq!(end, history_end + LIVE);
    let matching_history = (first..=history_end).filter(|r| (r - first) % 5 != 0 || *r == first).count();
    let events = collect(&watch, matching_history + LIVE as usize);
    let revs: Vec<i64> = events.iter().map(|(_, e)| e.kv.as_ref().unwrap().mod_revision).collect();
    let want: Vec<i64> =
        (first..=history_end).filter(|r| (r - first) % 5 != 0 || *r == first).chain(history_end + 1..=end).collect();
    assert_eq!(revs.len(), want.len(), "every matching revision, once");
    assert_eq!(revs, want, "in order, with no gap at the hand-over from disk to live");
    // Each response's header revision is at least the revision of the events it carries.
    assert!(events.iter().all(|(header, e)| *header >= e.kv.as_ref().unwrap().mod_revision));
    node.stop().unwrap();
}

#[test]
fn compacted_start_is_created_then_canceled_and_filters_and_prev_kv_work() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let first = put(&node, "c", "1");
    let second = put(&node, "c", "2");
    node.compact(CompactionRequest { revision: second, physical: true }).unwrap();
    let watch = watch_prefix(&node, "c", first);
    created(&watch);
    let canceled = watch.responses.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(canceled.canceled && canceled.compact_revision == second, "{canceled:?}");

    let req = WatchCreateRequest {
        key: b"c".to_vec(),
        prev_kv: true,
        filters: vec![FilterType::Noput as i32],
        ..Default::default()
    };
    let deletes = node.watch(req).unwrap();
    created(&deletes);
    put(&node, "c", "3");
    node.delete_range(DeleteRangeRequest::key("c")).unwrap();
    let events = collect(&deletes, 1);
    let event = &events[0].1;
    assert_eq!(event.r#type, EventType::Delete as i32, "puts are filtered out");
    assert_eq!(event.prev_kv.as_ref().unwrap().value, b"3", "prev_kv is the deleted version");
    node.stop().unwrap();
}

#[test]
fn lease_expiry_emits_delete_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let lease = node.lease_grant(LeaseGrantRequest { ttl: 2, id: 0 }).unwrap().id;
    node.put(PutRequest { lease, ..PutRequest::new("l/1", "v") }).unwrap();
    node.put(PutRequest { lease, ..PutRequest::new("l/2", "v") }).unwrap();
    let watch = watch_prefix(&node, "l/", 0);
    created(&watch);
    let events = collect(&watch, 2);
    let deleted: BTreeMap<Vec<u8>, i32> =
        events.iter().map(|(_, e)| (e.kv.as_ref().unwrap().key.clone(), e.r#type)).collect();
    assert_eq!(deleted, BTreeMap::from([(b"l/1".to_vec(), 1), (b"l/2".to_vec(), 1)]));
    assert_eq!(
        events[0].1.kv.as_ref().unwrap().mod_revision,
        events[1].1.kv.as_ref().unwrap().mod_revision,
        "one revision"
    );
    node.stop().unwrap();
}

#[test]
fn disconnecting_an_http_watch_frees_its_watchers() {
    let gw = Gateway::start();
    let body = "{\"create_request\":{\"key\":\"YQ==\"}}\n{\"create_request\":{\"key\":\"Yg==\"}}";
    let mut conn = http::Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
    conn.request("POST", "/v3/watch", &[], body.as_bytes()).unwrap();
    let mut reply = conn.read_head().unwrap();
    let created = conn.read_chunk(&mut reply).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&created).contains("\"created\":true"));
    assert!(eventually(Duration::from_secs(10), || gw.node.watcher_count() == 2), "two watchers registered");
    put(&gw.node, "a", "1");
    drop(conn);
    assert!(
        eventually(Duration::from_secs(10), || gw.node.watcher_count() == 0),
        "the server noticed the disconnect and freed the watchers"
    );
}

#[test]
fn progress_notify_watchers_hear_the_revision_each_quiet_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.watch_progress_notify_interval = Duration::from_millis(200);
    let node = Node::start(cfg).unwrap();
    let watch = |key: &str, progress_notify| {
        let req = WatchCreateRequest { key: key.into(), progress_notify, ..Default::default() };
        let watch = node.watch(req).unwrap();
        created(&watch);
        watch
    };
    let (notified, plain) = (watch("p", true), watch("q", false));
    let at = put(&node, "elsewhere", "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    let progress = loop {
        let resp = notified.responses.recv_timeout(Duration::from_secs(5)).expect("a progress notification");
        if rev(&resp.header) >= at || Instant::now() > deadline {
            break resp;
        }
    };
    assert!(progress.events.is_empty() && !progress.canceled, "{progress:?}");
    assert_eq!(rev(&progress.header), at);
    assert!(plain.responses.recv_timeout(Duration::from_millis(600)).is_err(), "no progress without progress_notify");
    node.stop().unwrap();
}

/// A progress request on a stream whose watcher is still catching up from disk is answered
/// only once it has delivered everything up to the notification's revision (etcd 3.4.24's
/// rule; answering at once, as 3.4.23 does, broke the soak's bookmark check).
#[test]
fn a_progress_request_waits_for_the_streams_lagging_watcher() {
    let gw = Gateway::start();
    // More than one catch-up read's worth, so the watcher is behind for several rounds.
    let writes = 2500;
    for i in 0..writes {
        put(&gw.node, &format!("k/{i:05}"), "v");
    }
    let body = r#"{"create_request":{"key":"ay8=","range_end":"azA=","start_revision":"2"}}
{"progress_request":{}}"#;
    let mut conn = http::Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
    conn.request("POST", "/v3/watch", &[], body.as_bytes()).unwrap();
    let mut reply = conn.read_head().unwrap();
    let (mut events, mut pending) = (0, Vec::new());
    let progress = 'read: loop {
        pending.extend(conn.read_chunk(&mut reply).unwrap().expect("the stream goes on"));
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let message: Vec<u8> = pending.drain(..=end).collect();
            let result = serde_json::from_slice::<serde_json::Value>(&message).unwrap()["result"].take();
            match result["events"].as_array() {
                Some(e) => events += e.len(),
                None if result["created"] != true => break 'read result,
                None => {}
            }
        }
    };
    assert_eq!(events, writes, "every event before the notification: {progress}");
    assert_eq!(progress["header"]["revision"], (writes as i64 + 1).to_string());
    assert_eq!(progress["watch_id"], "-1");
}
