//! etcd KV semantics through the embedded API, step by step as in
//! `../shared/etcd/transcript.md` (steps 3–55 of a fresh etcd 3.4.23): every expected
//! revision, version, count and error below is what real etcd answered.

use crate::harness::*;
use raftkv::pb::compare::TargetUnion;
use raftkv::pb::request_op::Request;
use raftkv::pb::response_op::Response;
use raftkv::pb::*;
use raftkv::{Error, Node};

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp { request: Some(Request::RequestPut(PutRequest::new(key, value))) }
}

fn range_op(req: RangeRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(req)) }
}

fn delete_op(req: DeleteRangeRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestDeleteRange(req)) }
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, union: TargetUnion) -> Compare {
    Compare {
        key: key.into(),
        target: target as i32,
        result: result as i32,
        target_union: Some(union),
        ..Default::default()
    }
}

fn prefix_a() -> RangeRequest {
    RangeRequest::prefix("a/")
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

#[test]
fn etcd_transcript_kv_steps() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    puts(&node);
    ranges(&node);
    deletes(&node);
    txns(&node);
    compaction(&node);
    node.stop().unwrap();
}

fn puts(node: &Node) {
    // 3. A fresh store is at revision 1; the first write makes it 2.
    assert_eq!(node.range(RangeRequest::key("foo")).unwrap().header.unwrap().revision, 1);
    assert_eq!(put(node, "foo", "bar"), 2);
    // 4. prev_kv returns the overwritten version.
    let r = node.put(PutRequest { prev_kv: true, ..PutRequest::new("foo", "bar2") }).unwrap();
    assert_eq!((rev(&r.header), r.prev_kv), (3, Some(kv("foo", "bar", 2, 2, 1))));
    // 5.
    let r = node.put(PutRequest { prev_kv: true, ..PutRequest::new("foo", "bar3") }).unwrap();
    assert_eq!((rev(&r.header), r.prev_kv), (4, Some(kv("foo", "bar2", 2, 3, 2))));
    // 6–7. An empty value is a value.
    assert_eq!(put(node, "empty", ""), 5);
    assert_eq!(get(node, "empty"), Some(kv("empty", "", 5, 5, 1)));
    // 8–9. ignore_value keeps the value and still makes a new version.
    let r = node.put(PutRequest { key: "foo".into(), ignore_value: true, ..Default::default() }).unwrap();
    assert_eq!(rev(&r.header), 6);
    assert_eq!(get(node, "foo"), Some(kv("foo", "bar3", 2, 6, 4)));
    // 10. ignore_value needs an existing key.
    let err = node.put(PutRequest { key: "nokey".into(), ignore_value: true, ..Default::default() });
    assert!(matches!(err, Err(Error::KeyNotFound)), "{err:?}");
    // 11. ignore_lease on a key without a lease is fine.
    let r = node.put(PutRequest { ignore_lease: true, ..PutRequest::new("foo", "bar3") }).unwrap();
    assert_eq!(rev(&r.header), 7);
    // 12–14.
    assert!(matches!(node.put(PutRequest::new("", "x")), Err(Error::EmptyKey)));
    let err = node.put(PutRequest { lease: 123456789, ..PutRequest::new("foo", "x") }).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: requested lease not found");
    // Option combinations etcd refuses before proposing.
    let err = node.put(PutRequest { ignore_value: true, ..PutRequest::new("foo", "x") }).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: value is provided");
    let err = node.put(PutRequest { ignore_lease: true, lease: 5, ..PutRequest::new("foo", "") }).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: lease is provided");
    // Setup for the range steps: a/1..a/3 at 8..10, b/1 at 11.
    for (i, key) in ["a/1", "a/2", "a/3", "b/1"].iter().enumerate() {
        let value = format!("v-{key}");
        assert_eq!(put(node, key, &value), 8 + i as i64);
    }
}

fn ranges(node: &Node) {
    // 15–16.
    assert_eq!(get(node, "foo"), Some(kv("foo", "bar3", 2, 7, 5)));
    let r = node.range(RangeRequest::key("missing")).unwrap();
    assert_eq!((rev(&r.header), r.kvs.len(), r.count), (11, 0, 0));
    // 17–19. Prefix, limit and `more`.
    let r = node.range(prefix_a()).unwrap();
    assert_eq!((keys(&r), r.count, r.more), (vec!["a/1".into(), "a/2".into(), "a/3".into()], 3, false));
    let r = node.range(RangeRequest { limit: 2, ..prefix_a() }).unwrap();
    assert_eq!((keys(&r), r.count, r.more), (vec!["a/1".into(), "a/2".into()], 3, true));
    // 20–21.
    let r = node.range(RangeRequest { count_only: true, ..prefix_a() }).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 3));
    let r = node.range(RangeRequest { keys_only: true, ..prefix_a() }).unwrap();
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty() && kv.version == 1));
    assert_eq!(r.count, 3);
    // 22–23. Sorting.
    let r = node.range(RangeRequest { sort_order: SortOrder::Descend as i32, ..prefix_a() }).unwrap();
    assert_eq!(keys(&r), ["a/3", "a/2", "a/1"]);
    let r = node.range(RangeRequest { sort_order: 2, sort_target: SortTarget::Mod as i32, ..prefix_a() }).unwrap();
    assert_eq!(keys(&r), ["a/3", "a/2", "a/1"]);
    let r = node.range(RangeRequest { sort_target: SortTarget::Value as i32, ..RangeRequest::key("a/2") });
    assert_eq!(keys(&r.unwrap()), ["a/2"], "non-key target without order sorts ascending");
    // An order etcd does not know leaves keys in key order (and `limit` still cuts); sorting by
    // a target it does not know crashes etcd 3.4, which raftkv refuses instead.
    let r = node.range(RangeRequest { sort_order: 7, limit: 2, ..prefix_a() }).unwrap();
    assert_eq!((keys(&r), r.more), (vec!["a/1".to_string(), "a/2".into()], true));
    let r = node.range(RangeRequest { sort_order: -1, sort_target: 9, ..prefix_a() }).unwrap();
    assert_eq!(keys(&r), ["a/1", "a/2", "a/3"]);
    let r = node.range(RangeRequest { sort_target: 5, ..prefix_a() });
    assert!(matches!(r, Err(Error::InvalidSortOption)), "{r:?}");
    // 25–26. `\0` as range_end means "to the end"; `\0` as key too means everything.
    let all = node.range(RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).unwrap();
    assert_eq!(keys(&all), ["a/1", "a/2", "a/3", "b/1", "empty", "foo"]);
    let from_b = node.range(RangeRequest { key: b"b".to_vec(), range_end: vec![0], ..Default::default() });
    assert_eq!(keys(&from_b.unwrap()), ["b/1", "empty", "foo"]);
    // 27–28. History.
    let r = node.range(RangeRequest { revision: 2, ..RangeRequest::key("foo") }).unwrap();
    assert_eq!(
        (rev(&r.header), r.kvs.clone()),
        (11, vec![kv("foo", "bar", 2, 2, 1)]),
        "header shows the current revision"
    );
    let r = node.range(RangeRequest { revision: 1000, ..RangeRequest::key("foo") });
    assert_eq!(r.unwrap_err().to_string(), "etcdserver: mvcc: required revision is a future revision");
    let r = node.range(RangeRequest { revision: -5, ..RangeRequest::key("foo") }).unwrap();
    assert_eq!(r.kvs[0].mod_revision, 7, "a negative revision reads the latest");
    // 29–30. Revision filters apply after `count`.
    let r = node.range(RangeRequest { min_mod_revision: 9, max_mod_revision: 10, ..prefix_a() }).unwrap();
    assert_eq!((keys(&r), r.count), (vec!["a/2".into(), "a/3".into()], 3));
    let r = node.range(RangeRequest { min_create_revision: 10, ..prefix_a() }).unwrap();
    assert_eq!((keys(&r), r.count), (vec!["a/3".into()], 3));
    let r = node.range(RangeRequest { max_create_revision: 8, ..prefix_a() }).unwrap();
    assert_eq!(keys(&r), ["a/1"]);
    // 31–32.
    let r = node.range(RangeRequest { serializable: true, ..RangeRequest::key("foo") }).unwrap();
    assert_eq!(r.kvs, vec![kv("foo", "bar3", 2, 7, 5)]);
    let r = node.range(RangeRequest { limit: 1, count_only: true, ..prefix_a() }).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 3, false));
    // An empty key is refused before anything else.
    assert!(matches!(node.range(RangeRequest::key("")), Err(Error::EmptyKey)));
}

fn deletes(node: &Node) {
    // 33. Deleting nothing does not make a revision.
    let r = node.delete_range(DeleteRangeRequest::key("missing")).unwrap();
    assert_eq!((rev(&r.header), r.deleted), (11, 0));
    // 34–35.
    let r = node.delete_range(DeleteRangeRequest::key("a/1")).unwrap();
    assert_eq!((rev(&r.header), r.deleted, r.prev_kvs.len()), (12, 1, 0));
    let r = node.delete_range(DeleteRangeRequest { prev_kv: true, ..DeleteRangeRequest::prefix("a/") }).unwrap();
    assert_eq!((rev(&r.header), r.deleted), (13, 2));
    assert_eq!(r.prev_kvs, vec![kv("a/2", "v-a/2", 9, 9, 1), kv("a/3", "v-a/3", 10, 10, 1)]);
    // 36.
    assert!(matches!(node.delete_range(DeleteRangeRequest::default()), Err(Error::EmptyKey)));
    // A deleted key is gone now but still readable in history.
    assert_eq!(get(node, "a/2"), None);
    let r = node.range(RangeRequest { revision: 12, ..RangeRequest::key("a/2") }).unwrap();
    assert_eq!(r.kvs, vec![kv("a/2", "v-a/2", 9, 9, 1)]);
}

fn txns(node: &Node) {
    // 38. Success branch: put with prev_kv, then a range that sees the put.
    let r = node
        .txn(TxnRequest {
            compare: vec![cmp("foo", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"bar3".to_vec()))],
            success: vec![
                RequestOp {
                    request: Some(Request::RequestPut(PutRequest { prev_kv: true, ..PutRequest::new("foo", "txn1") })),
                },
                range_op(RangeRequest::key("foo")),
            ],
            failure: vec![range_op(RangeRequest::key("foo"))],
        })
        .unwrap();
    assert!(r.succeeded);
    assert_eq!(rev(&r.header), 14);
    let [ResponseOp { response: Some(Response::ResponsePut(p)) }, ResponseOp { response: Some(Response::ResponseRange(g)) }] =
        r.responses.as_slice()
    else {
        panic!("unexpected responses {:?}", r.responses)
    };
    assert_eq!((rev(&p.header), p.prev_kv.clone()), (14, Some(kv("foo", "bar3", 2, 7, 5))));
    assert_eq!((rev(&g.header), g.kvs.clone()), (14, vec![kv("foo", "txn1", 2, 14, 6)]));

    // 39. Failure branch: range + delete of a missing key; no revision change.
    let r = node
        .txn(TxnRequest {
            compare: vec![cmp("foo", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"nope".to_vec()))],
            success: vec![put_op("foo", "never")],
            failure: vec![range_op(RangeRequest::key("foo")), delete_op(DeleteRangeRequest::key("missing"))],
        })
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!((rev(&r.header), r.responses.len()), (14, 2));

    // 40. mod_revision > 6 → delete b/1 with prev_kv.
    let r = node
        .txn(TxnRequest {
            compare: vec![cmp("foo", CompareTarget::Mod, CompareResult::Greater, TargetUnion::ModRevision(6))],
            success: vec![delete_op(DeleteRangeRequest { prev_kv: true, ..DeleteRangeRequest::key("b/1") })],
            ..Default::default()
        })
        .unwrap();
    assert!(r.succeeded);
    assert_eq!(rev(&r.header), 15);
    let Some(Response::ResponseDeleteRange(d)) = &r.responses[0].response else { panic!() };
    assert_eq!((rev(&d.header), d.deleted, d.prev_kvs.clone()), (15, 1, vec![kv("b/1", "v-b/1", 11, 11, 1)]));

    // 41. Failing compare, no failure ops.
    let r = node
        .txn(TxnRequest {
            compare: vec![cmp("foo", CompareTarget::Mod, CompareResult::Greater, TargetUnion::ModRevision(1000))],
            success: vec![put_op("foo", "never")],
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.succeeded, rev(&r.header), r.responses.len()), (false, 15, 0));

    // 42. Create-if-absent.
    let absent = vec![
        cmp("zzz", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(0)),
        cmp("zzz", CompareTarget::Create, CompareResult::Equal, TargetUnion::CreateRevision(0)),
    ];
    let r = node.txn(TxnRequest { compare: absent.clone(), success: vec![put_op("zzz", "1")], ..Default::default() });
    assert_eq!((r.as_ref().unwrap().succeeded, rev(&r.unwrap().header)), (true, 16));
    let r = node.txn(TxnRequest { compare: absent, success: vec![put_op("zzz", "2")], ..Default::default() });
    assert!(!r.unwrap().succeeded, "second create-if-absent must fail");

    // 43. Nested txn: outer lease == 0 holds, inner value != 1 fails → inner failure range.
    let inner = TxnRequest {
        compare: vec![cmp("zzz", CompareTarget::Value, CompareResult::NotEqual, TargetUnion::Value(b"1".to_vec()))],
        success: vec![put_op("zzz", "never")],
        failure: vec![range_op(RangeRequest { keys_only: true, ..RangeRequest::key("zzz") })],
    };
    let r = node
        .txn(TxnRequest {
            compare: vec![cmp("zzz", CompareTarget::Lease, CompareResult::Equal, TargetUnion::Lease(0))],
            success: vec![RequestOp { request: Some(Request::RequestTxn(inner)) }],
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.succeeded, rev(&r.header)), (true, 16));
    let Some(Response::ResponseTxn(t)) = &r.responses[0].response else { panic!() };
    assert_eq!((t.succeeded, t.header, t.responses.len()), (false, Some(ResponseHeader::default()), 1));

    // 44. A compare over a range with no keys compares against zero values.
    let mut over_range = cmp("a/", CompareTarget::Version, CompareResult::Less, TargetUnion::Version(1));
    over_range.range_end = b"a0".to_vec();
    let r = node.txn(TxnRequest { compare: vec![over_range], ..Default::default() }).unwrap();
    assert_eq!((r.succeeded, rev(&r.header)), (true, 16));
    // A value compare on a missing key always fails.
    let missing = cmp("missing", CompareTarget::Value, CompareResult::NotEqual, TargetUnion::Value(b"x".to_vec()));
    assert!(!node.txn(TxnRequest { compare: vec![missing], ..Default::default() }).unwrap().succeeded);

    // 45. The empty txn succeeds.
    let r = node.txn(TxnRequest::default()).unwrap();
    assert_eq!((r.succeeded, rev(&r.header)), (true, 16));

    // 46–48. Refused before proposing.
    let dup = TxnRequest { success: vec![put_op("d", "1"), put_op("d", "2")], ..Default::default() };
    assert!(matches!(node.txn(dup), Err(Error::DuplicateKey)));
    let many = TxnRequest { success: (0..129).map(|i| put_op(&format!("t{i}"), "x")).collect(), ..Default::default() };
    assert_eq!(node.txn(many).unwrap_err().to_string(), "etcdserver: too many operations in txn request");
    let exactly =
        TxnRequest { success: (0..128).map(|i| put_op(&format!("t{i}"), "x")).collect(), ..Default::default() };
    let r = node.txn(exactly).unwrap();
    assert_eq!(rev(&r.header), 17, "128 puts in one txn are one revision");
    let r = node.range(RangeRequest { count_only: true, ..RangeRequest::prefix("t") }).unwrap();
    assert_eq!(r.count, 128);
    let put_del = TxnRequest {
        success: vec![put_op("foo", "z"), delete_op(DeleteRangeRequest::key("foo"))],
        ..Default::default()
    };
    assert!(matches!(node.txn(put_del), Err(Error::DuplicateKey)));
    let put_in_deleted_range = TxnRequest {
        success: vec![delete_op(DeleteRangeRequest::prefix("x/")), put_op("x/1", "z")],
        ..Default::default()
    };
    assert!(matches!(node.txn(put_in_deleted_range), Err(Error::DuplicateKey)));
    // The same key in both branches of a nested txn is allowed: only one can run.
    let nested_branches = TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                success: vec![put_op("n", "1")],
                failure: vec![put_op("n", "2")],
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    assert!(node.txn(nested_branches).unwrap().succeeded);
    // A failing put inside the chosen branch rolls back the whole txn.
    let before = node.revision();
    let bad_lease = TxnRequest {
        success: vec![
            put_op("ok", "1"),
            RequestOp { request: Some(Request::RequestPut(PutRequest { lease: 99, ..PutRequest::new("bad", "1") })) },
        ],
        ..Default::default()
    };
    assert!(matches!(node.txn(bad_lease), Err(Error::LeaseNotFound)));
    assert_eq!((node.revision(), get(node, "ok")), (before, None));
    // A range at a future revision inside a txn fails the whole txn.
    let future = TxnRequest {
        success: vec![put_op("ok", "1"), range_op(RangeRequest { revision: 10_000, ..RangeRequest::key("foo") })],
        ..Default::default()
    };
    assert!(matches!(node.txn(future), Err(Error::FutureRevision)));
    assert_eq!(get(node, "ok"), None);
}

fn compaction(node: &Node) {
    let c1 = put(node, "c", "1");
    let c2 = put(node, "c", "2");
    let c3 = put(node, "c", "3");
    // 50. Compacting answers with the current revision.
    let r = node.compact(CompactionRequest { revision: c2, physical: false }).unwrap();
    assert_eq!(rev(&r.header), c3);
    // 51–52. Before the compact revision is gone; at it is fine.
    let r = node.range(RangeRequest { revision: c1, ..RangeRequest::key("c") });
    assert_eq!(r.unwrap_err().to_string(), "etcdserver: mvcc: required revision has been compacted");
    let r = node.range(RangeRequest { revision: c2, ..RangeRequest::key("c") }).unwrap();
    assert_eq!(r.kvs, vec![kv("c", "2", c1, c2, 2)]);
    // 53–55.
    let r = node.compact(CompactionRequest { revision: c1, physical: false });
    assert!(matches!(r, Err(Error::Compacted)), "{r:?}");
    let r = node.compact(CompactionRequest { revision: 100_000, physical: false });
    assert!(matches!(r, Err(Error::FutureRevision)), "{r:?}");
    let r = node.compact(CompactionRequest { revision: c3, physical: true }).unwrap();
    assert_eq!(rev(&r.header), c3);
    assert_eq!(get(node, "c"), Some(kv("c", "3", c1, c3, 3)), "the live version survives compaction");
    // Writes continue after a compaction, in the same revision sequence.
    assert_eq!(put(node, "c", "4"), c3 + 1);
}

#[test]
fn oversize_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let big = "x".repeat(raftkv::config::DEFAULT_MAX_REQUEST_BYTES);
    let r = node.put(PutRequest::new("big", big.as_str()));
    assert_eq!(r.unwrap_err().to_string(), "etcdserver: request is too large");
    let fits = "x".repeat(raftkv::config::DEFAULT_MAX_REQUEST_BYTES - 100);
    assert!(node.put(PutRequest::new("fits", fits.as_str())).is_ok());
    assert_eq!(get(&node, "fits").unwrap().value.len(), fits.len());
    node.stop().unwrap();
}

#[test]
fn arbitrary_binary_keys_and_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let key = vec![0u8, 0xff, b'\n', 0, 1];
    let value: Vec<u8> = (0..=255).collect();
    node.put(PutRequest { key: key.clone(), value: value.clone(), ..Default::default() }).unwrap();
    let r = node.range(RangeRequest { key: key.clone(), ..Default::default() }).unwrap();
    assert_eq!((r.kvs[0].key.clone(), r.kvs[0].value.clone()), (key, value));
    node.stop().unwrap();
}

#[test]
fn read_only_txns_are_served_locally_at_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let node = crate::harness::start(dir.path());
    crate::harness::put(&node, "ro", "1");
    let rev = crate::harness::put(&node, "ro", "2");
    let applied = node.applied_index();
    let txn = TxnRequest {
        compare: vec![cmp("ro", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()))],
        success: vec![
            range_op(RangeRequest::key("ro")),
            range_op(RangeRequest { revision: rev - 1, ..RangeRequest::key("ro") }),
        ],
        failure: vec![],
    };
    let resp = node.txn(txn.clone()).unwrap();
    assert!(resp.succeeded);
    assert_eq!(crate::harness::rev(&resp.header), rev);
    let values: Vec<Vec<u8>> = resp
        .responses
        .iter()
        .map(|r| match &r.response {
            Some(Response::ResponseRange(rr)) => rr.kvs[0].value.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values, [b"2".to_vec(), b"1".to_vec()]);
    assert_eq!(node.applied_index(), applied, "a read-only txn must not go through the raft log");
    // A future revision inside the txn is refused like a plain range.
    let future =
        TxnRequest { success: vec![range_op(RangeRequest { revision: rev + 5, ..RangeRequest::key("ro") })], ..txn };
    assert!(matches!(node.txn(future), Err(Error::FutureRevision)));
    node.stop().unwrap();
}
