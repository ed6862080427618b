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

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender};
use parking_lot::Mutex;
use prost::Message as _;
use rocksdb::{IteratorMode, WriteBatch};

use crate::pb::{LeaseCheckpoint, LeaseRecord};
use crate::storage::{Cf, Db};
use crate::{Error, Result};

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Checkpoints per proposal, so one entry stays small however many leases there are.
const CHECKPOINTS_PER_PROPOSAL_MAX: usize = 1000;

/// How often the lessor thread looks for expired leases.
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_millis(500);

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
}

impl Lessor {
    /// Loads the leases in `db`; `leased_keys` are the live keys with a lease (from mvcc).
    pub fn open(db: &Db, min_ttl: i64, leased_keys: Vec<(Vec<u8>, i64)>) -> Result<Lessor> {
        Ok(Lessor { state: Mutex::new(load(db, leased_keys)?), min_ttl })
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

    /// Expired leases not reported in the last `REVOKE_RETRY`; empty unless primary.
    pub fn expired(&self) -> Vec<i64> {
        let mut state = self.state.lock();
        if !state.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let mut ids = Vec::new();
        for (id, lease) in state.leases.iter_mut() {
            let due = lease.expiry.is_some_and(|e| e <= now);
            let fresh = lease.reported.is_none_or(|r| now.duration_since(r) >= REVOKE_RETRY);
            if due && fresh {
                lease.reported = Some(now);
                ids.push(*id);
            }
        }
        ids
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
