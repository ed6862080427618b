//! The KV model the checker linearizes against: etcd's semantics on one [`State`] (each key's
//! value, create/mod revision, version and lease; the global revision; the live leases), and
//! [`Model::step`], which applies one recorded operation and says whether its answer fits.
//!
//! Revisions follow etcd: a write txn that changes something (a put; a delete that deletes at
//! least one key; a lease revoke that deletes keys) bumps the revision by one and every key it
//! writes gets that `mod_revision`; a read, a txn without writes or a delete of nothing leaves
//! it. With [`Revisions::Exact`] an answer's `header.revision` must equal the revision after
//! the op. [`Revisions::Projected`] is for a sub-history (one partition of the keys): other
//! keys' writes also bump the revision, so there it is only a lower bound that each answer may
//! move forward (writes strictly), and a write takes its revision from its own answer.
//!
//! Not modelled: lease expiry (tests use TTLs longer than the run), keepalive answers (etcd
//! serves them from the leader's lessor without a read barrier, so any TTL is accepted),
//! historical reads at a revision, compaction, range compares.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::record::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub revision: i64,
    pub keys: BTreeMap<Bytes, KeyState>,
    pub leases: BTreeSet<i64>,
}

impl Default for State {
    /// An empty store: etcd's revision starts at 1, so the first write is revision 2.
    fn default() -> State {
        State { revision: 1, keys: BTreeMap::new(), leases: BTreeSet::new() }
    }
}

impl From<&Start> for State {
    fn from(start: &Start) -> State {
        let key = |kv: &Kv| KeyState {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        };
        State {
            revision: start.revision,
            keys: start.kvs.iter().map(|kv| (kv.key.clone(), key(kv))).collect(),
            leases: start.leases.iter().copied().collect(),
        }
    }
}

impl State {
    pub fn kv(&self, key: &[u8]) -> Option<Kv> {
        self.keys.get(key).map(|k| Kv {
            key: key.to_vec(),
            value: k.value.clone(),
            create_revision: k.create_revision,
            mod_revision: k.mod_revision,
            version: k.version,
            lease: k.lease,
        })
    }

    fn range(&self, key: &[u8], end: &[u8]) -> impl Iterator<Item = Kv> + '_ {
        let (key, end) = (key.to_vec(), end.to_vec());
        self.keys.keys().filter(move |k| in_range(k, &key, &end)).map(|k| self.kv(k).expect("listed"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revisions {
    Exact,
    Projected,
}

/// Why an operation's answer does not fit the state it was applied to.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Model {
    pub revisions: Revisions,
}

impl Model {
    /// The state after `op`, if its recorded answer is what the model answers from `state`.
    /// An unknown outcome fits any answer; it still changes the state.
    pub fn step(&self, state: &State, op: &Operation) -> Result<State, Mismatch> {
        let observed = match &op.outcome {
            Outcome::Ok { revision, response } => Some((*revision, response)),
            Outcome::Unknown => None,
        };
        // The revision a write here gets: the next one, or (projected) the one its answer says.
        let stamp = match (self.revisions, observed) {
            (Revisions::Projected, Some((Some(r), _))) => r,
            _ => state.revision + 1,
        };
        let mut next = state.clone();
        let (response, wrote) = execute(&mut next, &op.request, stamp);
        if wrote {
            next.revision = stamp;
        }
        let Some((revision, observed)) = observed else { return Ok(next) };
        if !same_answer(&response, observed) {
            return Err(Mismatch(format!("answered {observed}, the model answers {response}")));
        }
        if let Some(r) = revision {
            match self.revisions {
                Revisions::Exact if r != next.revision => {
                    return Err(Mismatch(format!("header.revision {r}, the model is at {}", next.revision)));
                }
                Revisions::Projected if r < state.revision || (wrote && r == state.revision) => {
                    return Err(Mismatch(format!("header.revision {r} goes back from {}", state.revision)));
                }
                Revisions::Projected => next.revision = r,
                Revisions::Exact => {}
            }
        }
        Ok(next)
    }
}

/// What etcd answers to `request` from `state`, and the state after: how tests build
/// histories that are linearizable by construction.
pub fn apply(state: &State, request: &Request) -> (State, Outcome) {
    let mut next = state.clone();
    let (response, wrote) = execute(&mut next, request, state.revision + 1);
    if wrote {
        next.revision += 1;
    }
    let revision = match (&response, request) {
        (Response::Refused(_), _) | (_, Request::LeaseKeepAlive { .. }) => None,
        _ => Some(next.revision),
    };
    (next, Outcome::Ok { revision, response })
}

fn same_answer(model: &Response, observed: &Response) -> bool {
    match (model, observed) {
        (Response::LeaseKeepAlive { .. }, Response::LeaseKeepAlive { .. }) => true,
        _ => model == observed,
    }
}

/// Applies `request` to `state` as etcd would, writes at revision `stamp`; the answer and
/// whether anything was written.
fn execute(state: &mut State, request: &Request, stamp: i64) -> (Response, bool) {
    match request {
        Request::Kv(op) => {
            if let Some(refusal) = check_leases(state, std::slice::from_ref(op)) {
                return (Response::Refused(refusal), false);
            }
            let (result, wrote) = execute_kv(state, op, stamp);
            (Response::Kv(result), wrote)
        }
        Request::Txn { compares, success, failure } => {
            let succeeded = compares.iter().all(|c| compare(state, c));
            let branch = if succeeded { success } else { failure };
            if let Some(refusal) = check_leases(state, branch) {
                return (Response::Refused(refusal), false);
            }
            let mut wrote = false;
            let results = branch
                .iter()
                .map(|op| {
                    let (result, w) = execute_kv(state, op, stamp);
                    wrote |= w;
                    result
                })
                .collect();
            (Response::Txn { succeeded, results }, wrote)
        }
        Request::LeaseGrant { id, .. } => {
            if !state.leases.insert(*id) {
                return (Response::Refused(Refusal::LeaseExists), false);
            }
            (Response::LeaseGrant, false)
        }
        Request::LeaseRevoke { id } => {
            if !state.leases.remove(id) {
                return (Response::Refused(Refusal::LeaseNotFound), false);
            }
            let before = state.keys.len();
            state.keys.retain(|_, k| k.lease != *id);
            (Response::LeaseRevoke, state.keys.len() < before)
        }
        // Any TTL fits (see the module docs); 0 says the lease is gone, as etcd's does.
        Request::LeaseKeepAlive { id } => {
            (Response::LeaseKeepAlive { ttl: i64::from(state.leases.contains(id)) }, false)
        }
    }
}

/// etcd refuses a whole request whose puts name a lease that does not exist.
fn check_leases(state: &State, ops: &[KvOp]) -> Option<Refusal> {
    let missing =
        ops.iter().any(|op| matches!(op, KvOp::Put { lease, .. } if *lease != 0 && !state.leases.contains(lease)));
    missing.then_some(Refusal::LeaseNotFound)
}

fn execute_kv(state: &mut State, op: &KvOp, stamp: i64) -> (KvResult, bool) {
    match op {
        KvOp::Put { key, value, lease } => {
            let (create_revision, version) = match state.keys.get(key) {
                Some(k) => (k.create_revision, k.version + 1),
                None => (stamp, 1),
            };
            let entry = KeyState { value: value.clone(), create_revision, mod_revision: stamp, version, lease: *lease };
            state.keys.insert(key.clone(), entry);
            (KvResult::Put, true)
        }
        KvOp::Range { key, end, limit } => {
            let all: Vec<Kv> = state.range(key, end).collect();
            let count = all.len() as i64;
            let more = *limit > 0 && count > *limit;
            let kvs = if *limit > 0 { all.into_iter().take(*limit as usize).collect() } else { all };
            (KvResult::Range { kvs, count, more }, false)
        }
        KvOp::Delete { key, end } => {
            let doomed: Vec<Bytes> = state.range(key, end).map(|kv| kv.key).collect();
            for key in &doomed {
                state.keys.remove(key);
            }
            (KvResult::Delete { deleted: doomed.len() as i64 }, !doomed.is_empty())
        }
    }
}

/// etcd's compare: a missing key has version, revisions and lease 0, and no value (a value
/// compare on it is false).
fn compare(state: &State, c: &Compare) -> bool {
    let kv = state.kv(&c.key);
    let ordering = match (&c.target, &kv) {
        (Target::Value(_), None) => return false,
        (Target::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
        (Target::Version(v), _) => kv.as_ref().map_or(0, |kv| kv.version).cmp(v),
        (Target::Create(v), _) => kv.as_ref().map_or(0, |kv| kv.create_revision).cmp(v),
        (Target::Mod(v), _) => kv.as_ref().map_or(0, |kv| kv.mod_revision).cmp(v),
        (Target::Lease(v), _) => kv.as_ref().map_or(0, |kv| kv.lease).cmp(v),
    };
    match c.cmp {
        Cmp::Equal => ordering.is_eq(),
        Cmp::Greater => ordering.is_gt(),
        Cmp::Less => ordering.is_lt(),
        Cmp::NotEqual => ordering.is_ne(),
    }
}

/// The watch events `op` produced going from `before` to `after` (in key order: etcd keeps a
/// txn's order, and the validators compare one revision's events as a set).
pub fn events_between(before: &State, after: &State) -> Vec<WatchEvent> {
    let keys: BTreeSet<&Bytes> = before.keys.keys().chain(after.keys.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (before.kv(key), after.kv(key)) {
            (prev, Some(kv)) if prev.as_ref().map(|p| p.mod_revision) != Some(kv.mod_revision) => {
                Some(WatchEvent { kind: EventKind::Put, kv, prev_kv: prev })
            }
            (Some(prev), None) => {
                let kv = Kv { key: key.clone(), mod_revision: after.revision, ..Kv::default() };
                Some(WatchEvent { kind: EventKind::Delete, kv, prev_kv: Some(prev) })
            }
            _ => None,
        })
        .collect()
}
