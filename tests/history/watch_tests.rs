//! The watch validators on a history made with the model: an honest watch passes, and a watch
//! broken in each of etcd's guarantees is caught with that guarantee's verdict.

use super::linearize::{check, Verdict};
use super::model::{apply, State};
use super::record::*;
use super::tests::{b, delete, kv, op, put};
use super::watch::{committed, resolve, validate, Committed, Guarantee};

/// Revisions 2..=7: a=1, b=1, a=2, delete a, a txn writing b=2 and c=1, a=3.
fn history() -> (Vec<Operation>, Committed) {
    let txn = Request::Txn {
        compares: Vec::new(),
        success: vec![
            KvOp::Put { key: b("w/b"), value: b("2"), lease: 0 },
            KvOp::Put { key: b("w/c"), value: b("1"), lease: 0 },
        ],
        failure: Vec::new(),
    };
    let requests = [put("w/a", "1"), put("w/b", "1"), put("w/a", "2"), delete("w/a"), txn, put("w/a", "3")];
    let mut state = State::default();
    let ops: Vec<Operation> = requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let (next, outcome) = apply(&state, request);
            state = next;
            op(0, 10 * i as u64, 10 * i as u64 + 5, request.clone(), outcome)
        })
        .collect();
    let Verdict::Linearizable { order } = check(&State::default(), &ops, std::time::Duration::from_secs(5)) else {
        panic!()
    };
    let committed = committed(&State::default(), &ops, &order);
    (ops, committed)
}

/// A watch on `w/` from `start` delivering what was committed, one response per revision.
fn honest(committed: &Committed, start: i64) -> WatchRecord {
    let mut responses =
        vec![WatchResponse { at_ns: 0, revision: start - 1, created: true, canceled: false, events: vec![] }];
    for c in committed.events.iter().filter(|c| c.event.revision() >= start) {
        match responses.last_mut() {
            Some(last) if last.events.first().is_some_and(|e| e.revision() == c.event.revision()) => {
                last.events.push(c.event.clone())
            }
            _ => responses.push(WatchResponse {
                at_ns: 0,
                revision: c.event.revision(),
                created: false,
                canceled: false,
                events: vec![c.event.clone()],
            }),
        }
    }
    WatchRecord { client: 0, key: b("w/"), end: b("w0"), start_revision: start, prev_kv: true, responses }
}

/// The guarantees `watch` breaks.
fn broken(watch: WatchRecord, committed: &Committed) -> Vec<Guarantee> {
    let violations = validate(&[watch], committed);
    for v in &violations {
        eprintln!("{v}");
    }
    violations.into_iter().map(|v| v.guarantee).collect()
}

#[test]
fn an_honest_watch_passes_from_any_start() {
    let (_, committed) = history();
    assert_eq!(committed.events.len(), 7);
    for start in 1..=7 {
        assert_eq!(broken(honest(&committed, start), &committed), [], "from {start}");
    }
}

#[test]
fn events_out_of_order_break_ordered() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    watch.responses.swap(2, 3);
    assert!(broken(watch, &committed).contains(&Guarantee::Ordered));
}

#[test]
fn an_event_twice_breaks_unique() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    let again = watch.responses[2].clone();
    watch.responses.insert(3, again);
    assert!(broken(watch, &committed).contains(&Guarantee::Unique));
}

#[test]
fn a_revision_split_over_two_responses_breaks_atomic() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    let txn = watch.responses.iter().position(|r| r.events.len() == 2).unwrap();
    let second = watch.responses[txn].events.pop().unwrap();
    let mut split = watch.responses[txn].clone();
    split.events = vec![second];
    watch.responses.insert(txn + 1, split);
    assert_eq!(broken(watch, &committed), [Guarantee::Atomic]);
}

#[test]
fn an_event_after_a_later_progress_notification_breaks_bookmarkable() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    let progress = WatchResponse { at_ns: 0, revision: 5, created: false, canceled: false, events: vec![] };
    watch.responses.insert(3, progress);
    assert!(broken(watch, &committed).contains(&Guarantee::Bookmarkable));
}

#[test]
fn a_dropped_event_breaks_reliable() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    watch.responses.remove(3);
    assert!(broken(watch, &committed).contains(&Guarantee::Reliable));
    // Also when the event carried the wrong value.
    let mut watch = honest(&committed, 1);
    watch.responses[2].events[0].kv.value = b("9");
    assert!(broken(watch, &committed).contains(&Guarantee::Reliable));
}

#[test]
fn a_resumed_watch_that_skips_its_first_event_breaks_resumable() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 4);
    watch.responses.remove(1);
    let verdicts = broken(watch, &committed);
    assert!(verdicts.contains(&Guarantee::Resumable), "{verdicts:?}");
}

/// A resumed watch whose first revision is a txn's may deliver its events in the txn's order,
/// which need not be the model's (key order).
#[test]
fn a_resumed_watch_may_start_with_any_event_of_its_first_revision() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 6);
    watch.responses[1].events.reverse();
    assert_eq!(watch.responses[1].events[0].kv.key, b("w/c"), "the txn's second key first");
    assert!(broken(watch, &committed).is_empty());
}

#[test]
fn a_wrong_prev_kv_breaks_prev_kv() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    // Revision 4 (a=2) must carry a=1 as its previous value.
    watch.responses[3].events[0].prev_kv = None;
    assert!(broken(watch, &committed).contains(&Guarantee::PrevKv));
}

#[test]
fn a_wrong_create_revision_breaks_is_create() {
    let (_, committed) = history();
    let mut watch = honest(&committed, 1);
    // Revision 7 re-creates a after its delete: create_revision must be 7, version 1.
    let last = watch.responses.last_mut().unwrap();
    assert_eq!(last.events[0].kv, kv("w/a", "3", 7, 7, 1));
    last.events[0].kv.create_revision = 2;
    assert!(broken(watch, &committed).contains(&Guarantee::IsCreate));
}

#[test]
fn a_watch_resolves_an_unknown_put_it_saw() {
    let (mut ops, committed) = history();
    ops[2].outcome = Outcome::Unknown;
    ops[2].complete_ns = NEVER;
    let mut history = History { ops, watches: vec![honest(&committed, 1)], ..History::default() };
    resolve(&mut history);
    assert_eq!(history.ops[2].outcome, Outcome::Ok { revision: Some(4), response: Response::Kv(KvResult::Put) });
}
