//! The linearizability checker on hand-made histories (accepted ones and etcd's classic
//! violations), a property test over histories generated from the model, and the JSON round
//! trip. Times are plain ticks; an empty store is at revision 1, as etcd's, so a first write is 2.

use std::time::Duration;

use proptest::prelude::*;

use super::linearize::{check, Verdict};
use super::model::{apply, State};
use super::record::*;

pub fn b(s: &str) -> Bytes {
    s.as_bytes().to_vec()
}

pub fn put(key: &str, value: &str) -> Request {
    Request::Kv(KvOp::Put { key: b(key), value: b(value), lease: 0 })
}

pub fn put_leased(key: &str, value: &str, lease: i64) -> Request {
    Request::Kv(KvOp::Put { key: b(key), value: b(value), lease })
}

pub fn get(key: &str) -> Request {
    Request::Kv(KvOp::Range { key: b(key), end: Vec::new(), limit: 0 })
}

pub fn delete(key: &str) -> Request {
    Request::Kv(KvOp::Delete { key: b(key), end: Vec::new() })
}

pub fn wrote(revision: i64) -> Outcome {
    Outcome::Ok { revision: Some(revision), response: Response::Kv(KvResult::Put) }
}

/// A read answered at `revision` with `kvs` as (key, value, create, mod, version).
pub fn read(revision: i64, kvs: &[(&str, &str, i64, i64, i64)]) -> Outcome {
    let kvs: Vec<Kv> = kvs
        .iter()
        .map(|&(k, v, create, modified, version)| Kv {
            key: b(k),
            value: b(v),
            create_revision: create,
            mod_revision: modified,
            version,
            lease: 0,
        })
        .collect();
    let count = kvs.len() as i64;
    Outcome::Ok { revision: Some(revision), response: Response::Kv(KvResult::Range { kvs, count, more: false }) }
}

pub fn deleted(revision: i64, deleted: i64) -> Outcome {
    Outcome::Ok { revision: Some(revision), response: Response::Kv(KvResult::Delete { deleted }) }
}

/// One client call from `invoke` to `complete` (ticks).
pub fn op(client: usize, invoke: u64, complete: u64, request: Request, outcome: Outcome) -> Operation {
    let complete_ns = if outcome == Outcome::Unknown { NEVER } else { complete };
    Operation { client, invoke_ns: invoke, complete_ns, request, outcome }
}

const LIMIT: Duration = Duration::from_secs(10);

fn accepted(ops: &[Operation]) -> bool {
    match check(&State::default(), ops, LIMIT) {
        Verdict::Linearizable { .. } => true,
        Verdict::Violation(report) => {
            eprintln!("{report}");
            false
        }
        Verdict::TimedOut { partition } => panic!("timed out on {partition}"),
    }
}

fn rejected(ops: &[Operation]) -> bool {
    match check(&State::default(), ops, LIMIT) {
        Verdict::Violation(report) => {
            eprintln!("{report}");
            true
        }
        Verdict::Linearizable { .. } => false,
        Verdict::TimedOut { partition } => panic!("timed out on {partition}"),
    }
}

#[test]
fn a_sequential_history_is_linearizable() {
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(0, 2, 3, get("a"), read(2, &[("a", "1", 2, 2, 1)])),
        op(0, 4, 5, put("a", "2"), wrote(3)),
        op(0, 6, 7, get("a"), read(3, &[("a", "2", 2, 3, 2)])),
        op(0, 8, 9, delete("a"), deleted(4, 1)),
        op(0, 10, 11, get("a"), read(4, &[])),
    ];
    assert!(accepted(&ops));
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let before = [op(0, 0, 1, put("a", "1"), wrote(2))];
    for seen in [read(2, &[("a", "1", 2, 2, 1)]), read(3, &[("a", "2", 2, 3, 2)])] {
        let mut ops = before.to_vec();
        ops.push(op(0, 2, 10, put("a", "2"), wrote(3)));
        ops.push(op(1, 3, 4, get("a"), seen));
        assert!(accepted(&ops));
    }
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_rejected() {
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(0, 2, 3, put("a", "2"), wrote(3)),
        // Invoked after the second put was acknowledged, and still sees the first.
        op(1, 4, 5, get("a"), read(2, &[("a", "1", 2, 2, 1)])),
    ];
    assert!(rejected(&ops));
}

#[test]
fn a_lost_write_is_rejected() {
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(1, 2, 3, put("b", "1"), wrote(3)),
        // Acknowledged, then gone: the store is at revision 2 with nothing at "b".
        op(2, 4, 5, get("b"), read(3, &[])),
    ];
    assert!(rejected(&ops));
}

#[test]
fn a_value_never_written_is_rejected() {
    let ops = [op(0, 0, 1, put("a", "1"), wrote(2)), op(1, 2, 3, get("a"), read(2, &[("a", "x", 2, 2, 1)]))];
    assert!(rejected(&ops));
}

#[test]
fn a_revision_going_backwards_is_rejected() {
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(0, 2, 3, put("b", "1"), wrote(3)),
        op(1, 4, 5, get("a"), read(2, &[("a", "1", 2, 2, 1)])),
    ];
    assert!(rejected(&ops));
}

#[test]
fn a_revision_that_skips_or_repeats_is_rejected() {
    // Keys in different partitions: only the joint check sees the revisions are not consecutive.
    let skip = [op(0, 0, 1, put("a", "1"), wrote(2)), op(0, 2, 3, put("b", "1"), wrote(4))];
    assert!(rejected(&skip));
    let repeat = [op(0, 0, 1, put("a", "1"), wrote(2)), op(0, 2, 3, put("b", "1"), wrote(2))];
    assert!(rejected(&repeat));
}

#[test]
fn a_delete_of_nothing_and_a_read_only_txn_leave_the_revision() {
    let ro_txn = Request::Txn {
        compares: Vec::new(),
        success: vec![KvOp::Range { key: b("a"), end: Vec::new(), limit: 0 }],
        failure: Vec::new(),
    };
    let ro_answer = Outcome::Ok {
        revision: Some(2),
        response: Response::Txn {
            succeeded: true,
            results: vec![KvResult::Range { kvs: vec![kv("a", "1", 2, 2, 1)], count: 1, more: false }],
        },
    };
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(0, 2, 3, delete("nothing"), deleted(2, 0)),
        op(0, 4, 5, ro_txn, ro_answer),
        op(0, 6, 7, put("b", "1"), wrote(3)),
    ];
    assert!(accepted(&ops));
    let mut bumped = ops.to_vec();
    bumped[1].outcome = deleted(3, 0);
    assert!(rejected(&bumped));
}

pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> Kv {
    Kv { key: b(key), value: b(value), create_revision: create, mod_revision: modified, version, lease: 0 }
}

fn cas(key: &str, expect: &str, value: &str) -> Request {
    Request::Txn {
        compares: vec![Compare { key: b(key), cmp: Cmp::Equal, target: Target::Value(b(expect)) }],
        success: vec![KvOp::Put { key: b(key), value: b(value), lease: 0 }],
        failure: vec![KvOp::Range { key: b(key), end: Vec::new(), limit: 0 }],
    }
}

#[test]
fn a_txn_compare_succeeding_on_a_wrong_value_is_rejected() {
    let succeeded = |revision| Outcome::Ok {
        revision: Some(revision),
        response: Response::Txn { succeeded: true, results: vec![KvResult::Put] },
    };
    let right = [op(0, 0, 1, put("a", "1"), wrote(2)), op(0, 2, 3, cas("a", "1", "2"), succeeded(3))];
    assert!(accepted(&right));
    let wrong = [op(0, 0, 1, put("a", "1"), wrote(2)), op(0, 2, 3, cas("a", "7", "2"), succeeded(3))];
    assert!(rejected(&wrong));
    // Create-if-absent (Kubernetes' `mod_revision == 0`) on a key that exists.
    let create = Request::Txn {
        compares: vec![Compare { key: b("a"), cmp: Cmp::Equal, target: Target::Mod(0) }],
        success: vec![KvOp::Put { key: b("a"), value: b("2"), lease: 0 }],
        failure: Vec::new(),
    };
    assert!(rejected(&[op(0, 0, 1, put("a", "1"), wrote(2)), op(0, 2, 3, create, succeeded(3))]));
}

#[test]
fn two_concurrent_puts_both_read_as_last_is_rejected() {
    let ops = [
        op(0, 0, 10, put("a", "x"), wrote(2)),
        op(1, 0, 10, put("a", "y"), wrote(3)),
        op(2, 11, 12, get("a"), read(3, &[("a", "y", 2, 3, 2)])),
        // After both, a later read goes back to the one that lost.
        op(3, 13, 14, get("a"), read(3, &[("a", "x", 2, 2, 1)])),
    ];
    assert!(rejected(&ops));
    assert!(accepted(&ops[..3]));
}

#[test]
fn an_unknown_outcome_may_or_may_not_take_effect() {
    let seen = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(1, 2, 3, put("a", "2"), Outcome::Unknown),
        op(2, 4, 5, get("a"), read(3, &[("a", "2", 2, 3, 2)])),
    ];
    assert!(accepted(&seen));
    let not_seen = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(1, 2, 3, put("a", "2"), Outcome::Unknown),
        op(2, 4, 5, get("a"), read(2, &[("a", "1", 2, 2, 1)])),
    ];
    assert!(accepted(&not_seen));
    // It fills the revision a later write skipped to; it cannot take effect before its call.
    let gap = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(1, 2, 3, put("b", "1"), Outcome::Unknown),
        op(0, 4, 5, put("a", "2"), wrote(4)),
    ];
    assert!(accepted(&gap));
    let too_early = [
        op(0, 0, 1, get("b"), read(1, &[])),
        op(0, 2, 3, put("a", "1"), wrote(3)),
        op(1, 4, 5, put("b", "1"), Outcome::Unknown),
    ];
    assert!(rejected(&too_early));
}

#[test]
fn ranges_check_limit_count_and_more() {
    let range = Request::Kv(KvOp::Range { key: b("k/"), end: b("k0"), limit: 1 });
    let answer = |count: i64, more: bool| Outcome::Ok {
        revision: Some(3),
        response: Response::Kv(KvResult::Range { kvs: vec![kv("k/a", "1", 2, 2, 1)], count, more }),
    };
    let with = |outcome| {
        [
            op(0, 0, 1, put("k/a", "1"), wrote(2)),
            op(0, 2, 3, put("k/b", "1"), wrote(3)),
            op(1, 4, 5, range.clone(), outcome),
        ]
    };
    assert!(accepted(&with(answer(2, true))));
    assert!(rejected(&with(answer(1, false))));
}

#[test]
fn leases_attach_keys_and_revoke_deletes_them() {
    let grant = Request::LeaseGrant { id: 7, ttl: 60 };
    let granted = Outcome::Ok { revision: Some(1), response: Response::LeaseGrant };
    let revoked = |revision| Outcome::Ok { revision: Some(revision), response: Response::LeaseRevoke };
    let not_found = Outcome::Ok { revision: None, response: Response::Refused(Refusal::LeaseNotFound) };
    let ops = [
        op(0, 0, 1, grant, granted),
        op(0, 2, 3, put_leased("a", "1", 7), wrote(2)),
        op(0, 4, 5, Request::LeaseRevoke { id: 7 }, revoked(3)),
        op(0, 6, 7, get("a"), read(3, &[])),
        op(0, 8, 9, Request::LeaseRevoke { id: 7 }, not_found.clone()),
        op(0, 10, 11, put_leased("b", "1", 7), not_found),
    ];
    assert!(accepted(&ops));
    let mut kept = ops.to_vec();
    kept[3].outcome = read(3, &[("a", "1", 2, 2, 1)]);
    assert!(rejected(&kept));
    let mut attached_to_nothing = ops.to_vec();
    attached_to_nothing[5].outcome = wrote(4);
    assert!(rejected(&attached_to_nothing));
}

/// A segment of a longer run starts where the read at its cut left the store.
fn segment(ops: &[Operation]) -> Verdict {
    let start = Start {
        revision: 10,
        kvs: vec![kv("s/a", "0", 4, 8, 2), Kv { lease: 7, ..kv("s/b", "0", 9, 9, 1) }],
        leases: vec![7],
    };
    check(&State::from(&start), ops, LIMIT)
}

#[test]
fn a_segment_is_checked_from_its_start() {
    let ops = [
        op(0, 0, 1, get("s/a"), read(10, &[("s/a", "0", 4, 8, 2)])),
        op(1, 2, 3, put("s/a", "1"), wrote(11)),
        op(0, 4, 5, get("s/a"), read(11, &[("s/a", "1", 4, 11, 3)])),
    ];
    assert!(matches!(segment(&ops), Verdict::Linearizable { .. }));
    // From an empty store the same answers are impossible.
    assert!(rejected(&ops));
    let mut stale = ops.to_vec();
    stale[2].outcome = read(11, &[("s/a", "0", 4, 8, 2)]);
    assert!(matches!(segment(&stale), Verdict::Violation(_)));
}

/// A range sees, and a revoke deletes, keys that only the start holds: the groups checked
/// alone must join them, or a correct history looks wrong.
#[test]
fn keys_of_the_start_join_the_ranges_and_revokes_that_touch_them() {
    let prefix = Request::Kv(KvOp::Range { key: b("s/"), end: b("s0"), limit: 0 });
    let revoked = Outcome::Ok { revision: Some(12), response: Response::LeaseRevoke };
    let ops = [
        op(0, 0, 1, delete("s/a"), deleted(11, 1)),
        op(1, 2, 3, Request::LeaseRevoke { id: 7 }, revoked),
        op(2, 4, 5, prefix, read(12, &[])),
        op(2, 6, 7, get("s/b"), read(12, &[])),
        op(3, 8, 9, put("s/c", "1"), wrote(13)),
    ];
    assert!(matches!(segment(&ops), Verdict::Linearizable { .. }), "{:?}", segment(&ops));
    let mut kept = ops.to_vec();
    kept[3].outcome = read(12, &[("s/b", "0", 9, 9, 1)]);
    assert!(matches!(segment(&kept), Verdict::Violation(_)));
}

#[test]
fn a_violation_reports_its_partition_prefix_and_refused_ops() {
    let ops = [
        op(0, 0, 1, put("a", "1"), wrote(2)),
        op(1, 2, 3, put("b", "1"), wrote(3)),
        op(1, 4, 5, put("b", "2"), wrote(4)),
        op(0, 6, 7, get("a"), read(4, &[("a", "1", 2, 2, 1)])),
        op(2, 8, 9, get("b"), read(4, &[("b", "1", 3, 3, 1)])),
    ];
    let Verdict::Violation(report) = check(&State::default(), &ops, LIMIT) else { panic!("not rejected") };
    let text = report.to_string();
    assert_eq!(report.partition, "{b}", "{text}");
    assert_eq!(report.prefix.len(), 2, "{text}");
    assert_eq!(report.refused.len(), 1, "{text}");
    assert!(text.contains("get") || text.contains("Range"), "{text}");
}

#[test]
fn the_time_bound_ends_a_hopeless_search() {
    // 20 concurrent unknown puts and a read nobody could have caused: every subset is tried.
    let mut ops: Vec<Operation> = (0..20).map(|i| op(i, 0, 0, put(&format!("k{i}"), "1"), Outcome::Unknown)).collect();
    ops.push(op(99, 1, 2, get("k0"), read(21, &[("k0", "never", 2, 2, 1)])));
    assert!(matches!(check(&State::default(), &ops, Duration::from_millis(50)), Verdict::TimedOut { .. }));
}

#[test]
fn a_history_survives_a_json_round_trip() {
    let path = tempfile::NamedTempFile::new().unwrap();
    let txn = cas("a", "1", "2");
    let history = History {
        start: Start::default(),
        ops: vec![
            op(0, 0, 1, put_leased("a", "1", 7), wrote(2)),
            op(
                1,
                2,
                3,
                txn,
                Outcome::Ok { revision: Some(3), response: Response::Txn { succeeded: false, results: vec![] } },
            ),
            op(2, 4, 5, get("a"), read(3, &[("a", "1", 2, 2, 1)])),
            op(3, 6, 0, Request::LeaseGrant { id: 7, ttl: 60 }, Outcome::Unknown),
            op(
                3,
                8,
                9,
                Request::LeaseKeepAlive { id: 7 },
                Outcome::Ok { revision: None, response: Response::LeaseKeepAlive { ttl: 5 } },
            ),
            op(4, 10, 11, delete("\u{1}\u{ff}"), deleted(4, 0)),
        ],
        watches: vec![WatchRecord {
            client: 9,
            key: b("a"),
            end: vec![0],
            start_revision: 2,
            prev_kv: true,
            responses: vec![WatchResponse {
                at_ns: 5,
                revision: 3,
                created: false,
                canceled: false,
                events: vec![WatchEvent {
                    kind: EventKind::Delete,
                    kv: kv("a", "", 0, 4, 0),
                    prev_kv: Some(kv("a", "1", 2, 2, 1)),
                }],
            }],
        }],
    };
    let mut odd = history.clone();
    odd.ops[0].request = Request::Kv(KvOp::Put { key: vec![0xff, 0], value: b("v"), lease: 0 });
    odd.start = Start { revision: 9, kvs: vec![Kv { lease: 7, ..kv("a", "0", 2, 9, 3) }], leases: vec![7] };
    for h in [history, odd] {
        super::json::save(&h, path.path()).unwrap();
        assert_eq!(super::json::load(path.path()).unwrap(), h);
    }
}

// The property: a history generated by running random requests through the model one at a
// time, then given random overlapping call/return times around each op's point, linearizes
// (each op's interval holds its point); changing one read's value breaks it.

fn request() -> impl Strategy<Value = Request> {
    let key = prop::sample::select(vec!["a", "b", "c"]);
    let value = 0u32..1_000_000;
    prop_oneof![
        4 => (key.clone(), value.clone()).prop_map(|(k, v)| put(k, &v.to_string())),
        4 => key.clone().prop_map(get),
        1 => (1i64..3).prop_map(|limit| Request::Kv(KvOp::Range { key: b("a"), end: vec![0], limit })),
        1 => key.clone().prop_map(delete),
        2 => (key.clone(), 0i64..4, value.clone()).prop_map(|(k, version, v)| Request::Txn {
            compares: vec![Compare { key: b(k), cmp: Cmp::Equal, target: Target::Version(version) }],
            success: vec![KvOp::Put { key: b(k), value: b(&v.to_string()), lease: 0 }],
            failure: vec![KvOp::Range { key: b(k), end: Vec::new(), limit: 0 }],
        }),
        1 => (1i64..3).prop_map(|id| Request::LeaseGrant { id, ttl: 60 }),
        1 => (1i64..3).prop_map(|id| Request::LeaseRevoke { id }),
        1 => (key, value, 1i64..3).prop_map(|(k, v, lease)| put_leased(k, &v.to_string(), lease)),
    ]
}

/// `requests` run through the model, op i linearized at tick 100·i, its call up to `spread`
/// ticks before and its return up to `spread` after; the marked ones lose their outcome.
fn generated(requests: &[Request], jitter: &[(u64, u64, bool)]) -> Vec<Operation> {
    let mut state = State::default();
    let mut ops: Vec<Operation> = requests
        .iter()
        .zip(jitter)
        .enumerate()
        .map(|(i, (request, &(before, after, unknown)))| {
            let (next, outcome) = apply(&state, request);
            state = next;
            let point = 1_000 + 100 * i as u64;
            let outcome = if unknown { Outcome::Unknown } else { outcome };
            op(i % 5, point - before, point + after, request.clone(), outcome)
        })
        .collect();
    ops.sort_by_key(|op| op.invoke_ns);
    ops
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_histories_linearize_and_a_changed_read_does_not(
        requests in prop::collection::vec(request(), 1..60),
        jitter in prop::collection::vec((0u64..400, 0u64..400, prop::bool::weighted(0.05)), 60),
        pick in any::<prop::sample::Index>(),
    ) {
        let ops = generated(&requests, &jitter);
        prop_assert!(accepted(&ops));
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| matches!(&ops[i].outcome,
                Outcome::Ok { response: Response::Kv(KvResult::Range { kvs, .. }), .. } if !kvs.is_empty()))
            .collect();
        prop_assume!(!reads.is_empty());
        let mut mutated = ops.clone();
        if let Outcome::Ok { response: Response::Kv(KvResult::Range { kvs, .. }), .. } = &mut mutated[reads[pick.index(reads.len())]].outcome {
            kvs[0].value = b("never written");
        }
        prop_assert!(rejected(&mutated));
    }
}
