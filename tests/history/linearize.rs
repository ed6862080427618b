//! The linearizability checker: a Wing–Gong–Lowe search, as porcupine does it, over the KV
//! [`Model`], with partitions, memoization and a time bound.
//!
//! **Search.** Every operation becomes a call and a return entry in one list sorted by time
//! (calls before returns at equal times, which only widens concurrency). Walking the list, a
//! call whose operation the model accepts from the current state is *lifted* (both entries
//! unlinked) and the walk restarts from the head; reaching a return means an operation that had
//! to take effect by then could not, so the last lift is undone and the walk goes on after it.
//! A (set of lifted operations, state) pair already explored is never explored again: that
//! cache is what makes the search practical. Unknown outcomes return at +∞, so they may be
//! placed anywhere after their call (placed last, they change nothing anyone observed). At
//! each point they are tried only after every answered candidate failed: most never took
//! effect, and trying them first would explore every subset of them at every step.
//!
//! **Partitions.** Operations are grouped by the keys and leases they touch (a range or a txn
//! joins all its keys; a put with a lease joins the key to the lease). Each group is first
//! checked alone with [`Revisions::Projected`], which needs every write's revision, so a group
//! holding a write of unknown outcome is left to the joint check. The joint check then runs on
//! the whole history with [`Revisions::Exact`]: only it sees that revisions are consecutive
//! across keys and that each answer's `header.revision` is the revision after the op. A group
//! that fails alone is the reported sub-history, small and to the point.
//!
//! **Report.** On a violation: the group, the longest linearizable prefix the search reached,
//! and each operation that could be next there with the model's reason for refusing it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use super::model::{Model, Revisions, State};
use super::record::*;

#[derive(Debug)]
pub enum Verdict {
    /// `order`: indexes into the checked operations, in a linearization the joint check found.
    Linearizable {
        order: Vec<usize>,
    },
    Violation(Box<Report>),
    /// The time bound passed first: nothing is known about `partition`.
    TimedOut {
        partition: String,
    },
}

/// A violation: the smallest failing group and where its search got stuck.
#[derive(Debug)]
pub struct Report {
    /// The keys and leases of the group (`all` for the joint check).
    pub partition: String,
    /// The group's operations.
    pub ops: Vec<Operation>,
    /// Indexes into `ops`: the longest prefix that linearizes.
    pub prefix: Vec<usize>,
    /// The state after `prefix`.
    pub state: State,
    /// Each operation that could come next after `prefix`, and why the model refuses it.
    pub refused: Vec<(usize, String)>,
}

/// How many ops of the prefix a report shows before the point where it got stuck.
const REPORT_PREFIX_TAIL: usize = 12;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "not linearizable: partition {} ({} operations)", self.partition, self.ops.len())?;
        let skipped = self.prefix.len().saturating_sub(REPORT_PREFIX_TAIL);
        writeln!(f, "longest linearizable prefix: {} operations; the last ones:", self.prefix.len())?;
        for &i in &self.prefix[skipped..] {
            writeln!(f, "  #{i} {}", describe(&self.ops[i]))?;
        }
        writeln!(f, "state there: revision {}, leases {:?}", self.state.revision, self.state.leases)?;
        for key in self.state.keys.keys() {
            writeln!(f, "  {}", self.state.kv(key).expect("listed"))?;
        }
        writeln!(f, "could not be placed next:")?;
        for (i, why) in &self.refused {
            writeln!(f, "  #{i} {}\n      {why}", describe(&self.ops[*i]))?;
        }
        Ok(())
    }
}

/// One operation on one line: client, times in ms, request and outcome.
pub fn describe(op: &Operation) -> String {
    let ms = |ns: u64| if ns == NEVER { "∞".to_string() } else { format!("{:.3}", ns as f64 / 1e6) };
    format!("c{} [{} → {} ms] {} ⇒ {}", op.client, ms(op.invoke_ns), ms(op.complete_ns), op.request, op.outcome)
}

/// Checks `ops`, run on a store in state `start`, within `limit`.
pub fn check(start: &State, ops: &[Operation], limit: Duration) -> Verdict {
    let deadline = Instant::now() + limit;
    // An unknown outcome of an op that cannot write tells nothing and constrains nothing.
    let kept: Vec<usize> =
        (0..ops.len()).filter(|&i| ops[i].outcome != Outcome::Unknown || ops[i].may_write()).collect();
    let groups = partitions(start, ops, &kept);
    if groups.len() > 1 {
        for (name, members) in &groups {
            if members.iter().any(|&i| ops[i].outcome == Outcome::Unknown) {
                continue;
            }
            match search(start, ops, members, Revisions::Projected, deadline) {
                Search::Linearized(_) => {}
                Search::Stuck(best) => {
                    return Verdict::Violation(Box::new(report(start, ops, members, name, Revisions::Projected, best)))
                }
                Search::TimedOut => return Verdict::TimedOut { partition: name.clone() },
            }
        }
    }
    match search(start, ops, &kept, Revisions::Exact, deadline) {
        Search::Linearized(order) => Verdict::Linearizable { order },
        Search::Stuck(best) => Verdict::Violation(Box::new(report(start, ops, &kept, "all", Revisions::Exact, best))),
        Search::TimedOut => Verdict::TimedOut { partition: "all".into() },
    }
}

/// What an operation touches, for grouping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Resource {
    Key(Bytes),
    Lease(i64),
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Key(k) => write!(f, "{}", String::from_utf8_lossy(k)),
            Resource::Lease(id) => write!(f, "lease {id}"),
        }
    }
}

fn touches(op: &Operation, known_keys: &BTreeSet<Bytes>) -> Vec<Resource> {
    let kv = |op: &KvOp| -> Vec<Resource> {
        let (key, end, lease): (&[u8], &[u8], i64) = match op {
            KvOp::Put { key, lease, .. } => (key, &[], *lease),
            KvOp::Range { key, end, .. } | KvOp::Delete { key, end } => (key, end, 0),
        };
        let mut out: Vec<Resource> =
            known_keys.iter().filter(|k| in_range(k, key, end)).map(|k| Resource::Key(k.clone())).collect();
        // A range over keys nobody wrote still belongs somewhere.
        out.push(Resource::Key(key.to_vec()));
        if lease != 0 {
            out.push(Resource::Lease(lease));
        }
        out
    };
    match &op.request {
        Request::Kv(op) => kv(op),
        Request::Txn { compares, success, failure } => {
            let mut out: Vec<Resource> = compares
                .iter()
                .map(|c| Resource::Key(c.key.clone()))
                .chain(success.iter().chain(failure).flat_map(kv))
                .collect();
            // An empty txn only reads the revision; it still needs a group.
            if out.is_empty() {
                out.push(Resource::Key(Vec::new()));
            }
            out
        }
        Request::LeaseGrant { id, .. } | Request::LeaseRevoke { id } | Request::LeaseKeepAlive { id } => {
            vec![Resource::Lease(*id)]
        }
    }
}

/// The connected groups of `members` (by shared resources), each named by its resources. The
/// keys of `start` count as written (a range sees them), and each leased one is joined to its
/// lease (a revoke deletes it).
fn partitions(start: &State, ops: &[Operation], members: &[usize]) -> Vec<(String, Vec<usize>)> {
    let kv_ops = members.iter().flat_map(|&i| match &ops[i].request {
        Request::Kv(op) => vec![op],
        Request::Txn { success, failure, .. } => success.iter().chain(failure).collect(),
        _ => vec![],
    });
    let known_keys: BTreeSet<Bytes> = kv_ops
        .filter_map(|op| match op {
            KvOp::Put { key, .. } => Some(key.clone()),
            _ => None,
        })
        .chain(start.keys.keys().cloned())
        .collect();
    // Union-find over resources.
    let mut index: HashMap<Resource, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut join = |resources: Vec<Resource>| -> usize {
        let ids: Vec<usize> = resources
            .into_iter()
            .map(|r| {
                *index.entry(r).or_insert_with(|| {
                    parent.push(parent.len());
                    parent.len() - 1
                })
            })
            .collect();
        for &id in &ids[1..] {
            let (a, b) = (root(&mut parent, ids[0]), root(&mut parent, id));
            parent[a] = b;
        }
        ids[0]
    };
    for (key, state) in start.keys.iter().filter(|(_, k)| k.lease != 0) {
        join(vec![Resource::Key(key.clone()), Resource::Lease(state.lease)]);
    }
    let first_resource: Vec<usize> = members.iter().map(|&i| join(touches(&ops[i], &known_keys))).collect();
    let mut names: HashMap<usize, BTreeSet<Resource>> = HashMap::new();
    for (resource, &id) in &index {
        names.entry(root(&mut parent, id)).or_default().insert(resource.clone());
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (&i, &r) in members.iter().zip(&first_resource) {
        groups.entry(root(&mut parent, r)).or_default().push(i);
    }
    let mut out: Vec<(String, Vec<usize>)> =
        groups.into_iter().map(|(r, members)| (format!("{:?}", names[&r]), members)).collect();
    out.sort_by_key(|(_, members)| members[0]);
    out
}

enum Search {
    /// Indexes into the checked operations, in linearization order.
    Linearized(Vec<usize>),
    /// The longest prefix reached (indexes into the checked operations).
    Stuck(Vec<usize>),
    TimedOut,
}

/// How often (in search steps) the clock is read.
const DEADLINE_CHECK_STEPS: u64 = 4096;

/// The WGL search over `ops[members]` from `start` (see the module docs).
fn search(start: &State, ops: &[Operation], members: &[usize], revisions: Revisions, deadline: Instant) -> Search {
    let model = Model { revisions };
    let n = members.len();
    // Entries 1..=2n between a head (0) and a tail (2n+1): (time, is_return, op).
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (slot, &i) in members.iter().enumerate() {
        entries.push((ops[i].invoke_ns, false, slot));
        entries.push((ops[i].complete_ns, true, slot));
    }
    entries.sort();
    let (head, tail) = (0, 2 * n + 1);
    let mut next: Vec<usize> = (1..=tail + 1).collect();
    let mut prev: Vec<usize> = (0..=tail).map(|e| e.saturating_sub(1)).collect();
    let (mut call_of, mut return_of) = (vec![0; n], vec![0; n]);
    for (e, &(_, is_return, slot)) in entries.iter().enumerate() {
        if is_return {
            return_of[slot] = e + 1;
        } else {
            call_of[slot] = e + 1;
        }
    }
    let slot_of = |e: usize| entries[e - 1].2;
    let is_return = |e: usize| entries[e - 1].1;
    let unlink = |next: &mut [usize], prev: &mut [usize], e: usize| {
        next[prev[e]] = next[e];
        prev[next[e]] = prev[e];
    };
    let relink = |next: &mut [usize], prev: &mut [usize], e: usize| {
        next[prev[e]] = e;
        prev[next[e]] = e;
    };

    // Unknown outcomes last (see the module docs): the same candidates in another order, so
    // the search stays complete.
    let unknown: Vec<bool> = members.iter().map(|&i| ops[i].outcome == Outcome::Unknown).collect();
    let mut lifted = vec![0u64; n.div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    // The lifted calls, each with the state before it and whether it was tried among the
    // unknown outcomes (where the walk resumes after undoing it).
    let mut stack: Vec<(usize, State, bool)> = Vec::new();
    let mut state = start.clone();
    let mut best: Vec<usize> = Vec::new();
    let (mut entry, mut trying_unknown) = (next[head], false);
    let mut steps = 0u64;
    while next[head] != tail {
        steps += 1;
        if steps.is_multiple_of(DEADLINE_CHECK_STEPS) && Instant::now() > deadline {
            return Search::TimedOut;
        }
        if !is_return(entry) {
            let slot = slot_of(entry);
            if unknown[slot] == trying_unknown {
                if let Ok(after) = model.step(&state, &ops[members[slot]]) {
                    lifted[slot / 64] |= 1 << (slot % 64);
                    if seen.insert((lifted.clone(), after.clone())) {
                        stack.push((entry, std::mem::replace(&mut state, after), trying_unknown));
                        unlink(&mut next, &mut prev, entry);
                        unlink(&mut next, &mut prev, return_of[slot]);
                        (entry, trying_unknown) = (next[head], false);
                        continue;
                    }
                    lifted[slot / 64] &= !(1 << (slot % 64));
                }
            }
            entry = next[entry];
            continue;
        }
        if !trying_unknown {
            (entry, trying_unknown) = (next[head], true);
            continue;
        }
        // A return whose op could not be placed: undo the last lift.
        if stack.len() > best.len() {
            best = stack.iter().map(|(e, _, _)| slot_of(*e)).collect();
        }
        let Some((call, before, was_unknown)) = stack.pop() else {
            return Search::Stuck(best.into_iter().map(|slot| members[slot]).collect());
        };
        let slot = slot_of(call);
        relink(&mut next, &mut prev, return_of[slot]);
        relink(&mut next, &mut prev, call);
        lifted[slot / 64] &= !(1 << (slot % 64));
        state = before;
        (entry, trying_unknown) = (next[call], was_unknown);
    }
    Search::Linearized(stack.iter().map(|(e, _, _)| members[slot_of(*e)]).collect())
}

/// The report of a stuck search over `ops[members]` from `start`, whose longest prefix was `best`.
fn report(
    start: &State,
    ops: &[Operation],
    members: &[usize],
    partition: &str,
    revisions: Revisions,
    best: Vec<usize>,
) -> Report {
    let local: HashMap<usize, usize> = members.iter().enumerate().map(|(slot, &i)| (i, slot)).collect();
    let group: Vec<Operation> = members.iter().map(|&i| ops[i].clone()).collect();
    let model = Model { revisions };
    let mut state = start.clone();
    for &i in &best {
        state = model.step(&state, &ops[i]).expect("the prefix linearized");
    }
    let placed: HashSet<usize> = best.iter().copied().collect();
    let pending: Vec<usize> = members.iter().copied().filter(|i| !placed.contains(i)).collect();
    // Could be next: called before every pending op's completion.
    let first_return = pending.iter().map(|&i| ops[i].complete_ns).min().unwrap_or(NEVER);
    let refused = pending
        .iter()
        .filter(|&&i| ops[i].invoke_ns <= first_return)
        .map(|&i| {
            let why = match model.step(&state, &ops[i]) {
                Err(mismatch) => mismatch.0,
                Ok(_) => "fits here, but nothing after it does".to_string(),
            };
            (local[&i], why)
        })
        .collect();
    Report {
        partition: partition.to_string(),
        ops: group,
        prefix: best.iter().map(|i| local[i]).collect(),
        state,
        refused,
    }
}
