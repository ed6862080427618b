//! The soak's client traffic, recorded into the history checker: Kubernetes' shapes on a
//! small key space (a create is a txn on `mod_revision == 0`, an update or a delete a txn
//! on the `mod_revision` last read, a list is paginated with a limit and checks `count`),
//! plain puts, gets and deletes, two-key txns, leases (grant, put with one, keepalive,
//! revoke), and each client's own ledger keys, which only it writes: the ledger is how the
//! end of the run counts acknowledged writes lost.
//!
//! A [`Workload`] keeps one client's state across the run's segments (the mod_revisions it
//! read, its leases, the ledger, the counters); each segment runs it on a thread of its own
//! until the driver stops the segment. Values are unique per key (`c<client>-<n>`, `n`
//! counting over the whole run), so a watch can tell which write of unknown outcome took
//! effect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raftkv::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::client::RecordingClient;
use crate::history::*;

/// Calls one client makes in a segment at most; past them it waits for the cut. A segment is
/// checked as one history, and a long one can be far beyond the checker's bound: a segment
/// that ran long (a crash at a persist point, a slow restart) recorded 6,015 operations and
/// took 291 s to check alone (the cost depends on the history: the 31-minute run's largest,
/// 6,909, took 72 s), while segments of a normal length (about 1,700 calls) check in seconds.
/// With six clients this keeps a segment under about 3,500 calls (a list's pages count as one).
const SEGMENT_STEPS_MAX: usize = 500;
/// Everything the soak writes is under this prefix, so one range reads the whole store at a cut.
pub const ROOT: &str = "s/";
/// `ROOT`'s range end.
pub const ROOT_END: &str = "s0";
const PODS: &str = "s/registry/pods/";
const PODS_END: &str = "s/registry/pods0";
const CONFIGMAPS: &str = "s/registry/configmaps/";
const CONFIGMAPS_END: &str = "s/registry/configmaps0";
/// Ledger keys per client (single writer each).
const LEDGER_KEYS: u64 = 3;
/// A list page's size: small, so most lists take several pages.
const PAGE: i64 = 4;
const PAGES_MAX: usize = 4;
/// Recorded lease ids are `(client + 1) × LEASE_ID_BASE + n`: unique over the run, and apart
/// from the keeper's lease, which is not recorded.
pub const LEASE_ID_BASE: i64 = 1_000_000_000_000;
/// Longest pause between two calls of one client: the load stays moderate on a shared
/// machine, and a segment's history small enough to check in seconds.
const PACE_MS_MAX: u64 = 15;
/// Longer than the members' request timeout (7 s), so a stalled call ends with the server's
/// answer rather than a client-side timeout.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The resource keys: 12 pods in two namespaces, 4 config maps.
fn resource_keys() -> Vec<Bytes> {
    let pods = (0..12).map(|i| format!("{PODS}ns{}/p{}", i % 2, i / 2));
    let configmaps = (0..4).map(|i| format!("{CONFIGMAPS}ns0/c{i}"));
    pods.chain(configmaps).map(String::into_bytes).collect()
}

/// Calls by kind: answered, unknown outcome.
#[derive(Clone, Debug, Default)]
pub struct Counts(pub BTreeMap<&'static str, (u64, u64)>);

impl Counts {
    fn add(&mut self, kind: &'static str, outcome: &Outcome) {
        let entry = self.0.entry(kind).or_default();
        match outcome {
            Outcome::Ok { .. } => entry.0 += 1,
            Outcome::Unknown => entry.1 += 1,
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (kind, (ok, unknown)) in &other.0 {
            let entry = self.0.entry(kind).or_default();
            entry.0 += ok;
            entry.1 += unknown;
        }
    }
}

/// The last acknowledged write of a ledger key: its number and revision.
#[derive(Clone, Copy, Debug)]
pub struct Acked {
    pub n: i64,
    pub revision: i64,
}

pub struct Workload {
    pub id: usize,
    rng: StdRng,
    n: i64,
    keys: Vec<Bytes>,
    /// The last mod_revision this client read per key: the guard of its updates and deletes.
    seen_mod: HashMap<Bytes, i64>,
    leases: Vec<i64>,
    pub ledger: HashMap<Bytes, Acked>,
    pub counts: Counts,
}

/// The number in a value this soak wrote (`c<client>-<n>`).
pub fn value_number(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.rsplit('-').next()?.parse().ok()
}

impl Workload {
    pub fn new(id: usize, seed: u64) -> Workload {
        Workload {
            id,
            rng: StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            n: 0,
            keys: resource_keys(),
            seen_mod: HashMap::new(),
            leases: Vec::new(),
            ledger: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// Recording clients for this segment, one per member (this client's preferred one
    /// first). One endpoint each: `raftkv::Client` with several endpoints re-sends a read
    /// whose connection broke to the next one, which is harmless, but failing over is left to
    /// the caller, which knows the outcome was unknown.
    pub fn clients<'a>(&self, endpoints: &[String], recorder: &'a Recorder) -> Vec<RecordingClient<'a>> {
        (0..endpoints.len())
            .map(|i| endpoints[(self.id + i) % endpoints.len()].clone())
            .map(|e| RecordingClient { client: Client::new(&[e], CLIENT_TIMEOUT).unwrap(), recorder, id: self.id })
            .collect()
    }

    /// Runs until `stop`, through `members`; after an unknown outcome moves on to the next
    /// member. `alive` are the recorded leases alive at the segment's start; `lease_ttl` the
    /// TTL of new ones (longer than the run: lease expiry is not in the model).
    pub fn run(&mut self, members: &[RecordingClient], stop: &AtomicBool, alive: &BTreeSet<i64>, lease_ttl: i64) {
        self.leases.retain(|l| alive.contains(l));
        let mut at = 0;
        let mut steps = 0;
        while !stop.load(Ordering::Relaxed) {
            if steps >= SEGMENT_STEPS_MAX {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            steps += 1;
            if !self.step(&members[at], lease_ttl) {
                at = (at + 1) % members.len();
            }
            std::thread::sleep(Duration::from_millis(self.rng.gen_range(0..=PACE_MS_MAX)));
        }
    }

    fn next_value(&mut self) -> Bytes {
        self.n += 1;
        format!("c{}-{}", self.id, self.n).into_bytes()
    }

    fn key(&mut self) -> Bytes {
        self.keys[self.rng.gen_range(0..self.keys.len())].clone()
    }

    fn guard(&self, key: &[u8]) -> i64 {
        *self.seen_mod.get(key).unwrap_or(&0)
    }

    /// One call (a list: its pages); false if an outcome was unknown.
    fn step(&mut self, member: &RecordingClient, lease_ttl: i64) -> bool {
        let key = self.key();
        let value = self.next_value();
        let put = |key: &Bytes, value: &Bytes, lease| KvOp::Put { key: key.clone(), value: value.clone(), lease };
        let get = |key: &Bytes| KvOp::Range { key: key.clone(), end: Vec::new(), limit: 0 };
        let guarded = |key: &Bytes, rev: i64, then: KvOp| Request::Txn {
            compares: vec![Compare { key: key.clone(), cmp: Cmp::Equal, target: Target::Mod(rev) }],
            success: vec![then],
            failure: vec![get(key)],
        };
        let lease = (!self.leases.is_empty()).then(|| self.leases[self.rng.gen_range(0..self.leases.len())]);
        let (kind, request) = match (self.rng.gen_range(0..100), lease) {
            (0..=11, _) => ("put", Request::Kv(put(&key, &value, 0))),
            (12..=26, _) => ("get", Request::Kv(get(&key))),
            (27..=36, _) => ("create (mod == 0)", guarded(&key, 0, put(&key, &value, 0))),
            (37..=51, _) => ("update (mod == read)", guarded(&key, self.guard(&key), put(&key, &value, 0))),
            (52..=55, _) => {
                let delete = KvOp::Delete { key: key.clone(), end: Vec::new() };
                ("guarded delete", guarded(&key, self.guard(&key), delete))
            }
            (56..=65, _) => return self.list(member, PODS, PODS_END),
            (66..=69, _) => (
                "count list",
                Request::Kv(KvOp::Range { key: CONFIGMAPS.into(), end: CONFIGMAPS_END.into(), limit: 0 }),
            ),
            (70..=78, _) => return self.ledger_put(member, value),
            (79..=82, _) => ("delete", Request::Kv(KvOp::Delete { key, end: Vec::new() })),
            (83..=86, _) => {
                // Another key: etcd refuses a txn writing one key twice.
                let other = self.keys.iter().find(|k| **k > key).unwrap_or(&self.keys[0]).clone();
                let guard = |k: &Bytes| Compare { key: k.clone(), cmp: Cmp::Equal, target: Target::Mod(self.guard(k)) };
                let txn = Request::Txn {
                    compares: vec![guard(&key), guard(&other)],
                    success: vec![put(&key, &value, 0), put(&other, &value, 0)],
                    failure: vec![get(&key), get(&other)],
                };
                ("two-key update", txn)
            }
            (87..=90, _) => {
                let id = (self.id as i64 + 1) * LEASE_ID_BASE + self.n;
                self.leases.push(id);
                ("lease grant", Request::LeaseGrant { id, ttl: lease_ttl })
            }
            (91..=94, Some(lease)) => ("leased put", Request::Kv(put(&key, &value, lease))),
            (95..=97, Some(lease)) => ("keepalive", Request::LeaseKeepAlive { id: lease }),
            (98..=99, Some(lease)) => {
                self.leases.retain(|l| *l != lease);
                ("lease revoke", Request::LeaseRevoke { id: lease })
            }
            _ => ("get", Request::Kv(get(&key))),
        };
        let outcome = member.call(request);
        self.counts.add(kind, &outcome);
        self.learn(&outcome);
        outcome != Outcome::Unknown
    }

    /// Remembers the mod_revisions a read or a failed guard showed.
    fn learn(&mut self, outcome: &Outcome) {
        let Outcome::Ok { response, .. } = outcome else { return };
        let results = match response {
            Response::Kv(result) => std::slice::from_ref(result),
            Response::Txn { results, .. } => results.as_slice(),
            _ => &[],
        };
        for result in results {
            if let KvResult::Range { kvs, .. } = result {
                for kv in kvs {
                    self.seen_mod.insert(kv.key.clone(), kv.mod_revision);
                }
            }
        }
    }

    /// A Kubernetes list: pages of `PAGE` keys, each starting after the last key of the one
    /// before, until `more` is false.
    fn list(&mut self, member: &RecordingClient, start: &str, end: &str) -> bool {
        let mut from: Bytes = start.into();
        for _ in 0..PAGES_MAX {
            let page = Request::Kv(KvOp::Range { key: from.clone(), end: end.into(), limit: PAGE });
            let outcome = member.call(page);
            self.counts.add("list page", &outcome);
            self.learn(&outcome);
            let Outcome::Ok { response: Response::Kv(KvResult::Range { kvs, more, .. }), .. } = outcome else {
                return false;
            };
            match kvs.last() {
                Some(last) if more => from = [last.key.as_slice(), &[0]].concat(),
                _ => break,
            }
        }
        true
    }

    fn ledger_put(&mut self, member: &RecordingClient, value: Bytes) -> bool {
        let key = format!("{ROOT}ledger/c{}/{}", self.id, self.n as u64 % LEDGER_KEYS).into_bytes();
        let outcome = member.call(Request::Kv(KvOp::Put { key: key.clone(), value, lease: 0 }));
        self.counts.add("ledger put", &outcome);
        if let Outcome::Ok { revision: Some(revision), .. } = outcome {
            self.ledger.insert(key, Acked { n: self.n, revision });
        }
        outcome != Outcome::Unknown
    }
}
