//! The lessor (etcd's `lease.Lessor`): which leases exist, which keys each holds, and — on the
//! leader only — when each expires.
//!
//! Threads: the apply thread changes membership of leases (grant, revoke, attach, detach,
//! checkpoint) as it applies entries; client threads renew and query; the `raftkv-lessor`
//! thread ([`run`]) finds expired leases and sends their ids on the run loop's
//! expired-lease channel, and proposes checkpoints. Everything is under one mutex: every
//! operation is a few map lookups.
//!
//! Only the leader counts down (it is "primary"): followers' leases never expire, and a new
//! leader [`Lessor::promote`]s — resuming each lease from its last checkpointed remaining TTL
//! rather than the full TTL (etcd 3.4 restarts the full TTL, etcd #9395).
//!
//! Leases that expire together (a burst of grants with one TTL; every lease at once after a
//! leader change) are revoked at etcd's rate, [`REVOKE_RATE`] a second: each scan reports the
//! soonest expired ones only, and a promotion spreads a pile of expiries out first, as etcd's
//! lessor does. Each revoke is a proposal that deletes the lease's keys, so an unbounded batch
//! would fill raft's queue and the apply backlog and refuse every client's writes with
//! `too many requests` (measured: docs/reliability.md, "Resource bounds").

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender};
use parking_lot::Mutex;
use prost::Message as _;
use rocksdb::{IteratorMode, WriteBatch};

use crate::metrics::{IntCounter, Registry};
use crate::pb::{LeaseCheckpoint, LeaseRecord};
use crate::storage::{Cf, Db};
use crate::{Error, Result};

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Checkpoints per proposal, so one entry stays small however many leases there are.
const CHECKPOINTS_PER_PROPOSAL_MAX: usize = 1000;

/// How often the lessor thread looks for expired leases.
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// etcd's `leaseRevokeRate`: expired leases revoked per second at most.
pub const REVOKE_RATE: usize = 1000;

/// Expired leases one scan reports at most: the revoke rate over the scan interval (etcd's
/// `revokeLimit`, half the rate for its 500 ms scan).
const REVOKES_PER_SCAN_MAX: usize = REVOKE_RATE * EXPIRY_SCAN_INTERVAL.as_millis() as usize / 1000;

/// etcd's `targetExpiresPerSecond`: a promotion leaves at most this many leases expiring in
/// any one second, below the revoke rate so leases that expire anyway still find room.
const PROMOTED_EXPIRIES_PER_SECOND: usize = REVOKE_RATE * 3 / 4;

/// An expired lease is reported again after this long if its revoke has not been applied
/// (the proposal may have been dropped by a leader change).
const REVOKE_RETRY: Duration = Duration::from_secs(3);

struct Lease {
    ttl: i64,
    /// Seconds left at the last checkpoint; 0 = the full TTL.
    remaining_ttl: i64,
    /// When it expires; only while this member is primary.
    expiry: Option<Instant>,
    /// When its expiry was last reported to the run loop.
    reported: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    fn record(&self, id: i64) -> LeaseRecord {
        LeaseRecord { id, ttl: self.ttl, remaining_ttl: self.remaining_ttl }
    }

    /// Time left: exact on the leader, the checkpointed or full TTL elsewhere.
    fn time_left(&self, now: Instant) -> Duration {
        match self.expiry {
            Some(expiry) => expiry.saturating_duration_since(now),
            None if self.remaining_ttl > 0 => Duration::from_secs(self.remaining_ttl as u64),
            None => Duration::from_secs(self.ttl as u64),
        }
    }

    /// Whole seconds left as `LeaseTimeToLive` reports them: etcd truncates
    /// (`int64(le.Remaining().Seconds())`), so a lease granted 100 s a moment ago has 99 left.
    fn remaining(&self, now: Instant) -> i64 {
        self.time_left(now).as_secs() as i64
    }

    /// Whole seconds left as a checkpoint records them: etcd rounds up there (`math.Ceil`), so
    /// a lease resumed elsewhere never loses its last partial second.
    fn checkpoint_ttl(&self, now: Instant) -> i64 {
        self.time_left(now).as_secs_f64().ceil() as i64
    }
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Lease>,
    /// The lease each leased key is attached to.
    key_lease: HashMap<Vec<u8>, i64>,
    /// Whether this member is the leader and so counts leases down.
    primary: bool,
}

fn load(db: &Db, leased_keys: Vec<(Vec<u8>, i64)>) -> Result<State> {
    let mut state = State::default();
    for item in db.raw().iterator_cf(db.cf(Cf::Lease), IteratorMode::Start) {
        let (_, value) = item.map_err(|e| Error::Storage(e.into()))?;
        let r =
            LeaseRecord::decode(&*value).map_err(|e| Error::Decode { what: "lease record", detail: e.to_string() })?;
        let lease =
            Lease { ttl: r.ttl, remaining_ttl: r.remaining_ttl, expiry: None, reported: None, keys: BTreeSet::new() };
        state.leases.insert(r.id, lease);
    }
    for (key, id) in leased_keys {
        if let Some(lease) = state.leases.get_mut(&id) {
            lease.keys.insert(key.clone());
            state.key_lease.insert(key, id);
        }
    }
    log::info!("lease: restored {} leases", state.leases.len());
    Ok(state)
}

/// What [`Lessor::time_to_live`] reports.
pub struct TimeToLive {
    pub remaining: i64,
    pub granted: i64,
    pub keys: Vec<Vec<u8>>,
}

pub struct Lessor {
    /// Every lease, the key→lease map and the primary flag.
    state: Mutex<State>,
    /// Granted TTLs below this are raised to it: ceil(1.5 × election timeout), as etcd.
    min_ttl: i64,
    metrics: LeaseMetrics,
}

/// etcd's lessor counters: grants and revokes as applied (every member), renewals on the
/// leader, where they count.
struct LeaseMetrics {
    granted: IntCounter,
    revoked: IntCounter,
    renewed: IntCounter,
}

impl Default for LeaseMetrics {
    fn default() -> LeaseMetrics {
        use crate::metrics::counter;
        LeaseMetrics {
            granted: counter("etcd_debugging_lease_granted_total", "The total number of granted leases."),
            revoked: counter("etcd_debugging_lease_revoked_total", "The total number of revoked leases."),
            renewed: counter("etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader."),
        }
    }
}

impl Lessor {
    /// Loads the leases in `db`; `leased_keys` are the live keys with a lease (from mvcc).
    pub fn open(db: &Db, min_ttl: i64, leased_keys: Vec<(Vec<u8>, i64)>) -> Result<Lessor> {
        Ok(Lessor { state: Mutex::new(load(db, leased_keys)?), min_ttl, metrics: LeaseMetrics::default() })
    }

    pub fn register_metrics(&self, registry: &Registry) {
        let m = &self.metrics;
        for c in [&m.granted, &m.revoked, &m.renewed] {
            registry.register(c.clone());
        }
    }

    /// Replaces every lease by those in `db` after a snapshot was installed (apply thread). A
    /// leader keeps counting down, from each lease's checkpoint.
    pub fn reload(&self, db: &Db, leased_keys: Vec<(Vec<u8>, i64)>) -> Result<()> {
        let fresh = load(db, leased_keys)?;
        let primary = {
            let mut state = self.state.lock();
            let primary = state.primary;
            *state = fresh;
            primary
        };
        if primary {
            self.promote();
        }
        Ok(())
    }

    pub fn min_ttl(&self) -> i64 {
        self.min_ttl
    }

    pub fn exists(&self, id: i64) -> bool {
        self.state.lock().leases.contains_key(&id)
    }

    // ---- Applied through raft (apply thread) ----

    /// Creates a lease; returns the TTL granted.
    pub fn grant(&self, db: &Db, batch: &mut WriteBatch, id: i64, ttl: i64) -> Result<i64> {
        let mut state = self.state.lock();
        if state.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        let ttl = ttl.max(self.min_ttl);
        let expiry = state.primary.then(|| Instant::now() + Duration::from_secs(ttl as u64));
        let lease = Lease { ttl, remaining_ttl: 0, expiry, reported: None, keys: BTreeSet::new() };
        batch.put_cf(db.cf(Cf::Lease), id.to_be_bytes(), lease.record(id).encode_to_vec());
        state.leases.insert(id, lease);
        self.metrics.granted.inc();
        Ok(ttl)
    }

    /// Removes a lease; returns its keys, which the caller deletes in the same batch.
    pub fn revoke(&self, db: &Db, batch: &mut WriteBatch, id: i64) -> Result<Vec<Vec<u8>>> {
        let mut state = self.state.lock();
        let lease = state.leases.remove(&id).ok_or(Error::LeaseNotFound)?;
        for key in &lease.keys {
            state.key_lease.remove(key);
        }
        batch.delete_cf(db.cf(Cf::Lease), id.to_be_bytes());
        self.metrics.revoked.inc();
        Ok(lease.keys.into_iter().collect())
    }

    /// Attaches `key` to lease `id` (0: to none), detaching it from its previous lease.
    pub fn attach(&self, key: &[u8], id: i64) {
        let mut state = self.state.lock();
        if let Some(old) = state.key_lease.remove(key) {
            if let Some(lease) = state.leases.get_mut(&old) {
                lease.keys.remove(key);
            }
        }
        if id != 0 {
            if let Some(lease) = state.leases.get_mut(&id) {
                lease.keys.insert(key.to_vec());
                state.key_lease.insert(key.to_vec(), id);
            }
        }
    }

    /// Records remaining TTLs (from the leader) so a restart or new leader resumes them.
    pub fn checkpoint(&self, db: &Db, batch: &mut WriteBatch, checkpoints: &[LeaseCheckpoint]) {
        let mut state = self.state.lock();
        for cp in checkpoints {
            if let Some(lease) = state.leases.get_mut(&cp.id) {
                lease.remaining_ttl = cp.remaining_ttl;
                batch.put_cf(db.cf(Cf::Lease), cp.id.to_be_bytes(), lease.record(cp.id).encode_to_vec());
            }
        }
    }

    // ---- Leader side (client threads, lessor thread, run loop) ----

    /// Starts counting down (this member became leader): each lease resumes from its last
    /// checkpoint, or its full TTL if it has none.
    pub fn promote(&self) {
        let mut state = self.state.lock();
        state.primary = true;
        let now = Instant::now();
        for lease in state.leases.values_mut() {
            let left = if lease.remaining_ttl > 0 { lease.remaining_ttl } else { lease.ttl };
            lease.expiry = Some(now + Duration::from_secs(left as u64));
            lease.reported = None;
        }
        if state.leases.len() >= REVOKE_RATE {
            spread_expiries(&mut state.leases);
        }
    }

    /// Stops counting down (leadership lost): leases do not expire on followers.
    pub fn demote(&self) {
        let mut state = self.state.lock();
        state.primary = false;
        for lease in state.leases.values_mut() {
            lease.expiry = None;
        }
    }

    /// Renews a lease to its full TTL; returns the TTL, or `None` if it does not exist.
    /// The second value asks for a checkpoint resetting the stored remaining TTL, needed only
    /// when one was recorded (etcd's rule: at most two raft entries per lease per interval).
    pub fn renew(&self, id: i64) -> Option<(i64, bool)> {
        let mut state = self.state.lock();
        let primary = state.primary;
        let lease = state.leases.get_mut(&id)?;
        if primary {
            lease.expiry = Some(Instant::now() + Duration::from_secs(lease.ttl as u64));
            lease.reported = None;
            self.metrics.renewed.inc();
        }
        Some((lease.ttl, lease.remaining_ttl != 0))
    }

    pub fn time_to_live(&self, id: i64, with_keys: bool) -> Option<TimeToLive> {
        let state = self.state.lock();
        let lease = state.leases.get(&id)?;
        let keys = if with_keys { lease.keys.iter().cloned().collect() } else { Vec::new() };
        Some(TimeToLive { remaining: lease.remaining(Instant::now()), granted: lease.ttl, keys })
    }

    /// Lease ids, soonest to expire first (etcd's order).
    pub fn leases(&self) -> Vec<i64> {
        let state = self.state.lock();
        let now = Instant::now();
        let mut ids: Vec<(Duration, i64)> = state.leases.iter().map(|(id, l)| (l.time_left(now), *id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Expired leases not reported in the last `REVOKE_RETRY`, the soonest expired first and
    /// at most `REVOKES_PER_SCAN_MAX` of them (the rest come in the next scans); empty unless
    /// primary.
    pub fn expired(&self) -> Vec<i64> {
        let mut state = self.state.lock();
        if !state.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let mut due: Vec<(Instant, i64)> = state
            .leases
            .iter()
            .filter(|(_, l)| l.reported.is_none_or(|r| now.duration_since(r) >= REVOKE_RETRY))
            .filter_map(|(id, l)| l.expiry.filter(|e| *e <= now).map(|e| (e, *id)))
            .collect();
        if due.len() > REVOKES_PER_SCAN_MAX {
            due.select_nth_unstable(REVOKES_PER_SCAN_MAX);
            due.truncate(REVOKES_PER_SCAN_MAX);
        }
        due.sort_unstable();
        for (_, id) in &due {
            if let Some(lease) = state.leases.get_mut(id) {
                lease.reported = Some(now);
            }
        }
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// Remaining TTLs of the leader's leases that outlive `interval`, in proposals of bounded
    /// size (shorter leases expire before a checkpoint would matter).
    pub fn checkpoints(&self, interval: Duration) -> Vec<Vec<LeaseCheckpoint>> {
        let state = self.state.lock();
        if !state.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let all: Vec<LeaseCheckpoint> = state
            .leases
            .iter()
            .filter(|(_, l)| l.ttl as f64 > interval.as_secs_f64())
            .map(|(id, l)| LeaseCheckpoint { id: *id, remaining_ttl: l.checkpoint_ttl(now).max(1) })
            .collect();
        all.chunks(CHECKPOINTS_PER_PROPOSAL_MAX).map(<[LeaseCheckpoint]>::to_vec).collect()
    }
}

/// Moves expiries later so that no more than [`PROMOTED_EXPIRIES_PER_SECOND`] fall in a
/// second, as etcd's `Promote` does: walking the leases in expiry order, a pile is the leases
/// within a second of the pile's first (a pile grows as its leases are moved); past the
/// target, the n-th lease of a pile expires n/target seconds after the pile's first. So
/// 100,000 leases due at once expire over 133 s instead of in one scan.
fn spread_expiries(leases: &mut HashMap<i64, Lease>) {
    let mut order: Vec<(Instant, i64)> = leases.iter().filter_map(|(id, l)| l.expiry.map(|e| (e, *id))).collect();
    order.sort_unstable();
    let Some(&(first, _)) = order.first() else { return };
    let (mut pile_start, mut pile_end, mut in_pile) = (first, first + Duration::from_secs(1), 0usize);
    for (expiry, id) in order {
        if expiry > pile_end {
            (pile_start, pile_end, in_pile) = (expiry, expiry + Duration::from_secs(1), 1);
            continue;
        }
        in_pile += 1;
        if in_pile <= PROMOTED_EXPIRIES_PER_SECOND {
            continue;
        }
        let moved = pile_start + Duration::from_secs_f64(in_pile as f64 / PROMOTED_EXPIRIES_PER_SECOND as f64);
        pile_end = moved;
        if let Some(lease) = leases.get_mut(&id) {
            lease.expiry = Some(moved.max(expiry));
        }
    }
}

/// The body of the `raftkv-lessor` thread: every `EXPIRY_SCAN_INTERVAL` it sends expired
/// lease ids on the run loop's expired-lease channel (never blocking: a full channel means the
/// ids come again after the retry time), and every `checkpoint_interval` it hands the
/// remaining TTLs to `propose_checkpoints`. Returns when `stop_rx` fires.
pub fn run(
    lessor: &Lessor,
    checkpoint_interval: Duration,
    expired_tx: &Sender<Vec<i64>>,
    stop_rx: &Receiver<()>,
    mut propose_checkpoints: impl FnMut(Vec<LeaseCheckpoint>),
) {
    let ticker = channel::tick(EXPIRY_SCAN_INTERVAL);
    let mut last_checkpoint = Instant::now();
    loop {
        select! {
            recv(stop_rx) -> _ => return,
            recv(ticker) -> _ => {}
        }
        let expired = lessor.expired();
        if !expired.is_empty() {
            log::debug!("lease: {} expired", expired.len());
            let _ = expired_tx.try_send(expired);
        }
        if last_checkpoint.elapsed() >= checkpoint_interval {
            last_checkpoint = Instant::now();
            for batch in lessor.checkpoints(checkpoint_interval) {
                propose_checkpoints(batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessor(leases: usize, ttl: i64) -> Lessor {
        let mut state = State::default();
        for id in 1..=leases as i64 {
            state
                .leases
                .insert(id, Lease { ttl, remaining_ttl: 0, expiry: None, reported: None, keys: BTreeSet::new() });
        }
        Lessor { state: Mutex::new(state), min_ttl: 1, metrics: LeaseMetrics::default() }
    }

    fn expire_all(lessor: &Lessor) {
        let past = Instant::now() - Duration::from_secs(1);
        for lease in lessor.state.lock().leases.values_mut() {
            lease.expiry = Some(past);
        }
    }

    #[test]
    fn a_scan_reports_at_most_the_revoke_rate_and_the_rest_later() {
        let lessor = lessor(1_200, 60);
        lessor.promote();
        expire_all(&lessor);
        let first = lessor.expired();
        let second = lessor.expired();
        let third = lessor.expired();
        assert_eq!((first.len(), second.len(), third.len()), (500, 500, 200));
        let all: std::collections::HashSet<i64> = first.iter().chain(&second).chain(&third).copied().collect();
        assert_eq!(all.len(), 1_200, "each expired lease reported once");
        assert!(lessor.expired().is_empty(), "reported leases wait for their retry");
    }

    #[test]
    fn a_promotion_spreads_a_pile_of_expiries_at_the_target_rate() {
        let lessor = lessor(3_000, 10);
        lessor.promote();
        let state = lessor.state.lock();
        let mut expiries: Vec<Instant> = state.leases.values().filter_map(|l| l.expiry).collect();
        expiries.sort_unstable();
        let first = expiries[0];
        // No second after the first holds more than the target.
        for (i, e) in expiries.iter().enumerate() {
            let allowed = (e.duration_since(first).as_secs_f64() + 1.0) * PROMOTED_EXPIRIES_PER_SECOND as f64;
            assert!((i + 1) as f64 <= allowed + 1.0, "lease {i} expires {:?} after the first", e.duration_since(first));
        }
        // 3,000 at 750 a second: the last is 4 s after the first.
        let spread = expiries[2_999].duration_since(first).as_secs_f64();
        assert!((3.9..=4.1).contains(&spread), "spread over {spread} s");
    }

    #[test]
    fn fewer_leases_than_the_rate_keep_their_expiry() {
        let lessor = lessor(999, 10);
        lessor.promote();
        let state = lessor.state.lock();
        let expiries: Vec<Instant> = state.leases.values().filter_map(|l| l.expiry).collect();
        let (min, max) = (expiries.iter().min().unwrap(), expiries.iter().max().unwrap());
        assert!(max.duration_since(*min) < Duration::from_millis(100));
    }
}
