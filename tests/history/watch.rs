//! The watch validators, etcd's watch guarantees as its robustness tests state them, checked
//! on every [`WatchRecord`] of a history:
//!
//! - **ordered**: event revisions never go down along a watch;
//! - **unique**: no (key, revision) twice on a watch;
//! - **atomic**: one revision's events never split over two responses;
//! - **bookmarkable**: after a progress notification at P, no event at a revision ≤ P;
//! - **reliable**: from its start (the asked `start_revision`, else the revision after its
//!   creation) to the last revision it vouched for (by an event or a progress notification), a watch delivers exactly the [`Committed`] events in its range;
//! - **resumable**: a watch started at R > 0 (a resume after a reconnect) first delivers the
//!   first committed event in its range at a revision ≥ R;
//! - **prev_kv**: an event's `prev_kv` is the key's value before it;
//! - **is_create**: a put's `create_revision == mod_revision` (and version 1) iff the key did
//!   not exist before.
//!
//! Unlike etcd (which merges what its watches saw), the committed events come from the
//! linearization the checker found ([`committed`]), so a watch that drops an event every other
//! watch also dropped is still caught. A write of unknown outcome places an event whose
//! content the linearization may have guessed wrong (two unknown writes competing for one
//! revision), so such events are *uncertain*: only their revision is compared. [`resolve`]
//! makes most of them certain first by finding the put's unique value in a watch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::model::{events_between, Model, Revisions, State};
use super::record::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    Ordered,
    Unique,
    Atomic,
    Bookmarkable,
    Reliable,
    Resumable,
    PrevKv,
    IsCreate,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub guarantee: Guarantee,
    /// Index of the watch in the history.
    pub watch: usize,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watch {}: {:?} broken: {}", self.watch, self.guarantee, self.detail)
    }
}

/// One committed event, from the linearization.
#[derive(Clone, Debug)]
pub struct CommittedEvent {
    pub event: WatchEvent,
    /// Written by an operation whose outcome was known (else only its revision is sure).
    pub certain: bool,
    /// Its `prev_kv` was written by a known outcome too (or the key was absent for sure).
    pub prev_certain: bool,
}

/// The events of the committed history, up to `through`: the last revision an answer
/// confirmed (later ones come only from unknown outcomes placed at the end, which may never
/// have happened).
#[derive(Clone, Debug, Default)]
pub struct Committed {
    pub events: Vec<CommittedEvent>,
    pub through: i64,
}

/// The committed events of `ops` run from `start` and linearized in `order` (a
/// [`super::Verdict::Linearizable`]'s).
pub fn committed(start: &State, ops: &[Operation], order: &[usize]) -> Committed {
    let model = Model { revisions: Revisions::Exact };
    let through = ops
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Ok { revision, .. } => revision,
            Outcome::Unknown => None,
        })
        .max()
        .unwrap_or(0);
    let mut state = start.clone();
    // Whether each key's current value was written by a known outcome.
    let mut known_writer: HashMap<Bytes, bool> = HashMap::new();
    let mut events = Vec::new();
    for &i in order {
        let after = model.step(&state, &ops[i]).expect("a linearization the checker found");
        let certain = ops[i].outcome != Outcome::Unknown;
        for event in events_between(&state, &after) {
            let prev_certain = *known_writer.get(&event.kv.key).unwrap_or(&true);
            known_writer.insert(event.kv.key.clone(), certain);
            if event.revision() <= through {
                events.push(CommittedEvent { event, certain, prev_certain });
            }
        }
        state = after;
    }
    Committed { events, through }
}

/// Upgrades each unknown put whose (key, value) some watch delivered to an answered put at
/// that event's revision. Needs values unique per key; a (key, value) put twice is left alone.
pub fn resolve(history: &mut History) {
    let mut puts: HashMap<(Bytes, Bytes), usize> = HashMap::new();
    for op in &history.ops {
        if let Request::Kv(KvOp::Put { key, value, .. }) = &op.request {
            *puts.entry((key.clone(), value.clone())).or_default() += 1;
        }
    }
    let mut seen: HashMap<(&[u8], &[u8]), i64> = HashMap::new();
    for event in history.watches.iter().flat_map(WatchRecord::events) {
        if event.kind == EventKind::Put {
            seen.insert((&event.kv.key, &event.kv.value), event.revision());
        }
    }
    let mut resolved: Vec<(usize, i64)> = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        if let (Request::Kv(KvOp::Put { key, value, .. }), Outcome::Unknown) = (&op.request, &op.outcome) {
            if puts[&(key.clone(), value.clone())] == 1 {
                if let Some(&revision) = seen.get(&(key.as_slice(), value.as_slice())) {
                    resolved.push((i, revision));
                }
            }
        }
    }
    for (i, revision) in resolved {
        history.ops[i].outcome = Outcome::Ok { revision: Some(revision), response: Response::Kv(KvResult::Put) };
    }
}

/// Every broken guarantee of every watch in `watches`, against `committed`.
pub fn validate(watches: &[WatchRecord], committed: &Committed) -> Vec<Violation> {
    let mut out = Vec::new();
    for (w, watch) in watches.iter().enumerate() {
        let mut report = |guarantee: Guarantee, detail: String| out.push(Violation { guarantee, watch: w, detail });
        check_order(watch, &mut report);
        check_against_history(watch, committed, &mut report);
        check_prev_and_create(watch, committed, &mut report);
    }
    out
}

/// Ordered, unique, atomic and bookmarkable: what a watch shows by itself.
fn check_order(watch: &WatchRecord, report: &mut impl FnMut(Guarantee, String)) {
    let mut last = 0;
    let mut last_of_previous_response = None;
    let mut progress = 0;
    let mut seen: HashSet<(&[u8], i64)> = HashSet::new();
    for resp in &watch.responses {
        if let (Some(first), Some(prev)) = (resp.events.first(), last_of_previous_response) {
            if first.revision() == prev {
                report(Guarantee::Atomic, format!("revision {prev} split over two responses"));
            }
        }
        for event in &resp.events {
            let (key, rev) = (event.kv.key.as_slice(), event.revision());
            if rev < last {
                report(Guarantee::Ordered, format!("{} at revision {rev} after revision {last}", show(key)));
            }
            if !seen.insert((key, rev)) {
                report(Guarantee::Unique, format!("{} at revision {rev} twice", show(key)));
            }
            if rev <= progress {
                report(
                    Guarantee::Bookmarkable,
                    format!("{} at revision {rev} after progress at {progress}", show(key)),
                );
            }
            last = last.max(rev);
        }
        if let Some(e) = resp.events.last() {
            last_of_previous_response = Some(e.revision());
        }
        if resp.is_progress_notify() {
            progress = progress.max(resp.revision);
        }
    }
}

/// Reliable and resumable: the watch's events against the committed ones in its range.
fn check_against_history(watch: &WatchRecord, committed: &Committed, report: &mut impl FnMut(Guarantee, String)) {
    let delivered: Vec<&WatchEvent> = watch.events().collect();
    // A watch from "now" starts after the revision its creation answered with.
    let created = watch.responses.iter().find(|r| r.created).map(|r| r.revision + 1);
    let from = match (watch.start_revision, created, delivered.first()) {
        (r, _, _) if r > 0 => r,
        (_, Some(r), _) => r,
        (_, None, Some(e)) => e.revision(),
        (_, None, None) => return,
    };
    let progress = watch.responses.iter().filter(|r| r.is_progress_notify()).map(|r| r.revision).max();
    let vouched = delivered.iter().map(|e| e.revision()).chain(progress).max().unwrap_or(0);
    let to = vouched.min(committed.through);
    let expected: Vec<&CommittedEvent> =
        committed.events.iter().filter(|c| watch.matches(&c.event.kv.key) && c.event.revision() >= from).collect();
    if watch.start_revision > 0 {
        if let (Some(want), Some(got)) = (expected.first(), delivered.first()) {
            // Any event of the first revision: etcd keeps a txn's order, the model keys'.
            let mut first = expected.iter().take_while(|c| c.event.revision() == want.event.revision());
            if !first.any(|c| same_event(c, got)) {
                report(
                    Guarantee::Resumable,
                    format!(
                        "from revision {from}, first event {} instead of {}",
                        show_event(got),
                        show_event(&want.event)
                    ),
                );
            }
        }
    }
    let mut want_by_rev: BTreeMap<i64, Vec<&CommittedEvent>> = BTreeMap::new();
    for c in expected.into_iter().filter(|c| c.event.revision() <= to) {
        want_by_rev.entry(c.event.revision()).or_default().push(c);
    }
    let mut got_by_rev: BTreeMap<i64, Vec<&WatchEvent>> = BTreeMap::new();
    for e in delivered.into_iter().filter(|e| (from..=to).contains(&e.revision())) {
        got_by_rev.entry(e.revision()).or_default().push(e);
    }
    let revisions: BTreeSet<i64> = want_by_rev.keys().chain(got_by_rev.keys()).copied().collect();
    for rev in revisions {
        let (want, got) = (want_by_rev.remove(&rev).unwrap_or_default(), got_by_rev.remove(&rev).unwrap_or_default());
        let detail = match (want.is_empty(), got.is_empty()) {
            (false, true) => format!("missed revision {rev}: {}", show_all(want.iter().map(|c| &c.event))),
            (true, false) => format!("revision {rev} never committed in range: {}", show_all(got.iter().copied())),
            _ if !same_events(&want, &got) => format!(
                "revision {rev}: delivered {}, committed {}",
                show_all(got.iter().copied()),
                show_all(want.iter().map(|c| &c.event))
            ),
            _ => continue,
        };
        report(Guarantee::Reliable, detail);
    }
}

/// prev_kv and is_create, against the committed event at the same (key, revision) where it is
/// certain, else against the watch's own previous event for the key.
fn check_prev_and_create(watch: &WatchRecord, committed: &Committed, report: &mut impl FnMut(Guarantee, String)) {
    let reference: HashMap<(&[u8], i64), &CommittedEvent> =
        committed.events.iter().map(|c| ((c.event.kv.key.as_slice(), c.event.revision()), c)).collect();
    let mut last_seen: HashMap<&[u8], &WatchEvent> = HashMap::new();
    for event in watch.events() {
        let key = event.kv.key.as_slice();
        // What the key held before this event: Some(None) = absent, None = not known.
        let before: Option<Option<Kv>> = match reference.get(&(key, event.revision())) {
            Some(c) if c.prev_certain => Some(c.event.prev_kv.clone()),
            _ => last_seen.get(key).map(|e| (e.kind == EventKind::Put).then(|| e.kv.clone())),
        };
        last_seen.insert(key, event);
        let Some(before) = before else { continue };
        if watch.prev_kv && event.prev_kv != before {
            report(
                Guarantee::PrevKv,
                format!(
                    "{}: prev_kv {}, the key held {}",
                    show_event(event),
                    show_kv(&event.prev_kv),
                    show_kv(&before)
                ),
            );
        }
        if event.kind == EventKind::Put {
            let was_absent = before.is_none();
            let create = event.kv.create_revision == event.kv.mod_revision;
            if create != was_absent || (event.kv.version == 1) != was_absent {
                report(Guarantee::IsCreate, format!("{} after {}", show_event(event), show_kv(&before)));
            }
        }
    }
}

fn same_event(want: &CommittedEvent, got: &WatchEvent) -> bool {
    if want.certain {
        want.event.kind == got.kind && want.event.kv == got.kv
    } else {
        want.event.revision() == got.revision()
    }
}

/// One revision's events, compared as sets (etcd keeps a txn's order; the model keeps keys').
fn same_events(want: &[&CommittedEvent], got: &[&WatchEvent]) -> bool {
    if want.iter().any(|c| !c.certain) {
        return true;
    }
    let mut want: Vec<(&[u8], EventKind, &Kv)> =
        want.iter().map(|c| (&c.event.kv.key[..], c.event.kind, &c.event.kv)).collect();
    let mut got: Vec<(&[u8], EventKind, &Kv)> = got.iter().map(|e| (&e.kv.key[..], e.kind, &e.kv)).collect();
    want.sort_by_key(|(k, _, _)| *k);
    got.sort_by_key(|(k, _, _)| *k);
    want == got
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn show_event(e: &WatchEvent) -> String {
    format!("{:?} {}", e.kind, e.kv)
}

fn show_kv(kv: &Option<Kv>) -> String {
    kv.as_ref().map_or_else(|| "nothing".to_string(), Kv::to_string)
}

fn show_all<'a>(events: impl Iterator<Item = &'a WatchEvent>) -> String {
    events.map(show_event).collect::<Vec<_>>().join(", ")
}
