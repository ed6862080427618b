//! Alarms and the space quota (etcd's `v3alarm`, `quota.go` and its capped and corrupt
//! appliers).
//!
//! [`Alarms`]: the raised alarms, (member, type) pairs, in memory and in the `meta` column
//! family under `alarm/` keys. Only the apply thread (`raftkv-apply`) changes them, applying an
//! `Alarm` entry, so every member holds the same set, stored with the applied index and sent in
//! snapshots. What the raised alarms refuse is decided here once ([`Alarms::refuse`]) and
//! checked by the apply thread: while NOSPACE is raised, whatever would grow the database (a
//! put, a txn with a put in the branch that would run, a lease grant); while CORRUPT is raised,
//! every write. Reads, and so read-only txns, are served either way, as etcd's are.
//!
//! [`Quota`]: `--quota-backend-bytes` against this member's database. Checked by client threads
//! before a put, txn or lease grant is proposed (etcd's quota KV and lease servers, which also
//! raise NOSPACE) and by the apply thread after one is applied (etcd's quota applier, which
//! keeps the write and answers NOSPACE). The size is [`Db::state_bytes`]: RocksDB's live-data
//! estimate plus memtables of the applied state's families (not the raft log, as etcd's quota
//! leaves out its WAL): what compaction and defragment bring down, unlike the files' size,
//! which lags behind RocksDB's own compactions. It is sampled at most every 100 ms (`SIZE_SAMPLE`):
//! reading RocksDB's properties costs more than a put.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rocksdb::{IteratorMode, WriteBatch};

use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::storage::{Cf, Db};
use crate::{Error, Result};

/// etcd's default quota (`DefaultQuotaBytes`), used for `--quota-backend-bytes 0`.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 << 30;
/// What etcd warns about beyond (`MaxQuotaBytes`).
pub const MAX_QUOTA_BYTES: i64 = 8 << 30;

/// etcd's estimates of what a lease and a key add to the database besides their bytes.
const LEASE_OVERHEAD: u64 = 64;
const KV_OVERHEAD: u64 = 256;

/// How stale the quota's view of the database size may be.
const SIZE_SAMPLE: Duration = Duration::from_millis(100);

const KEY_PREFIX: &[u8] = b"alarm/";

fn key(alarm: AlarmMember) -> Vec<u8> {
    [KEY_PREFIX, &alarm.member_id.to_be_bytes(), &alarm.alarm.to_be_bytes()].concat()
}

/// The alarms raised in the cluster.
pub struct Alarms {
    /// Ordered by (type, member), which is how `alarm list` shows them.
    raised: RwLock<BTreeSet<(i32, u64)>>,
}

fn load(db: &Db) -> Result<BTreeSet<(i32, u64)>> {
    let mut raised = BTreeSet::new();
    let iter = db.raw().iterator_cf(db.cf(Cf::Meta), IteratorMode::From(KEY_PREFIX, rocksdb::Direction::Forward));
    for item in iter {
        let (key, _) = item.map_err(|e| Error::Storage(e.into()))?;
        let Some(rest) = key.strip_prefix(KEY_PREFIX) else { break };
        let (member, alarm) = rest
            .split_at_checked(8)
            .filter(|(_, a)| a.len() == 4)
            .ok_or_else(|| Error::Decode { what: "alarm record", detail: format!("key {key:?}") })?;
        let member = u64::from_be_bytes(member.try_into().expect("8 bytes"));
        raised.insert((i32::from_be_bytes(alarm.try_into().expect("4 bytes")), member));
    }
    Ok(raised)
}

impl Alarms {
    pub fn open(db: &Db) -> Result<Alarms> {
        let raised = load(db)?;
        for (alarm, member) in &raised {
            log::warn!("alarm: {} raised by member {member:x} is active", name(*alarm));
        }
        Ok(Alarms { raised: RwLock::new(raised) })
    }

    /// Replaces the alarms by those in `db` after a snapshot was installed (apply thread).
    pub fn reload(&self, db: &Db) -> Result<()> {
        *self.raised.write() = load(db)?;
        Ok(())
    }

    /// The raised alarms of type `alarm`, or all of them for `None` (etcd's `Get`).
    pub fn list(&self, alarm: i32) -> Vec<AlarmMember> {
        let raised = self.raised.read();
        raised
            .iter()
            .filter(|(a, _)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised.read().iter().any(|(a, _)| *a == alarm as i32)
    }

    /// Applies an `Alarm` entry (apply thread): etcd's `applierV3backend.Alarm`.
    pub fn apply(&self, db: &Db, batch: &mut WriteBatch, req: &AlarmRequest) -> AlarmResponse {
        let member = AlarmMember { member_id: req.member_id, alarm: req.alarm };
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self.list(req.alarm),
            // etcd stores any alarm type it is asked to, and acts on the two it knows.
            Ok(AlarmAction::Activate) => {
                let mut raised = self.raised.write();
                let first = !raised.iter().any(|(a, _)| *a == req.alarm);
                if raised.insert((req.alarm, req.member_id)) {
                    batch.put_cf(db.cf(Cf::Meta), key(member), []);
                    if first {
                        log::warn!("alarm: {} raised by member {:x}", name(req.alarm), req.member_id);
                    }
                }
                vec![member]
            }
            Ok(AlarmAction::Deactivate) => {
                let mut raised = self.raised.write();
                if raised.remove(&(req.alarm, req.member_id)) {
                    batch.delete_cf(db.cf(Cf::Meta), key(member));
                    if !raised.iter().any(|(a, _)| *a == req.alarm) {
                        log::warn!("alarm: {} disarmed (member {:x})", name(req.alarm), req.member_id);
                    }
                    vec![member]
                } else {
                    Vec::new()
                }
            }
            // etcd answers an unknown action with an empty response too.
            Err(_) => Vec::new(),
        };
        AlarmResponse { header: None, alarms }
    }

    /// What the raised alarms refuse of `request` on apply: etcd's corrupt applier (every
    /// write) and capped applier (what has a quota cost). `None` lets it through.
    pub fn refuse(&self, request: &Request) -> Option<Error> {
        let writes = matches!(
            request,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        );
        if writes && self.is_raised(AlarmType::Corrupt) {
            return Some(Error::Corrupt);
        }
        if cost(request) > 0 && self.is_raised(AlarmType::Nospace) {
            return Some(Error::NoSpace);
        }
        None
    }
}

/// etcd's alarm names (`AlarmType_name`), as `alarm list` prints them.
pub fn name(alarm: i32) -> &'static str {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::None) => "NONE",
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        Err(_) => "UNKNOWN",
    }
}

/// An alarm in Go's text form (`AlarmMember.String()`), trailing space included, as etcd's
/// `Status` errors and `etcdctl alarm list` show it.
pub fn text(alarm: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", alarm.member_id, name(alarm.alarm))
}

/// What a request adds to the database, as etcd estimates it (`backendQuota.Cost`): a put its
/// key, value and overhead; a txn the costlier of its branches' puts; a lease grant its
/// overhead; anything else nothing.
pub fn cost(request: &Request) -> u64 {
    fn put(r: &PutRequest) -> u64 {
        KV_OVERHEAD + (r.key.len() + r.value.len()) as u64
    }
    fn branch(ops: &[RequestOp]) -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(r)) => put(r),
                _ => 0,
            })
            .sum()
    }
    match request {
        Request::Put(r) => put(r),
        Request::Txn(r) => branch(&r.success).max(branch(&r.failure)),
        Request::LeaseGrant(_) => LEASE_OVERHEAD,
        _ => 0,
    }
}

/// `--quota-backend-bytes` against this member's database.
pub struct Quota {
    db: Arc<Db>,
    /// `None`: no quota (a negative flag, as etcd's passthrough quota).
    max: Option<u64>,
    /// The last size read and when.
    sampled: Mutex<(Instant, u64)>,
}

impl Quota {
    /// The quota for etcd's flag value: negative disables it, 0 is etcd's 2 GiB default.
    pub fn new(db: Arc<Db>, quota_backend_bytes: i64) -> Quota {
        let max = match quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES as u64),
            q => Some(q as u64),
        };
        let size = db.state_bytes();
        Quota { db, max, sampled: Mutex::new((Instant::now(), size)) }
    }

    /// The quota in bytes, as `etcd_server_quota_backend_bytes` reports it (etcd reports the
    /// flag for a disabled one).
    pub fn bytes(&self) -> Option<u64> {
        self.max
    }

    /// Whether `request` fits (etcd's `Available`): free requests always do.
    pub fn available(&self, request: &Request) -> bool {
        let cost = cost(request);
        match self.max {
            Some(max) if cost > 0 => self.size() + cost < max,
            _ => true,
        }
    }

    /// The database size the quota is checked against, at most `SIZE_SAMPLE` old.
    pub fn size(&self) -> u64 {
        let mut sampled = self.sampled.lock();
        if sampled.0.elapsed() >= SIZE_SAMPLE {
            *sampled = (Instant::now(), self.db.state_bytes());
        }
        sampled.1
    }

    /// Forgets the sampled size, so the next check reads it afresh (after a defragment).
    pub fn resample(&self) {
        let mut sampled = self.sampled.lock();
        *sampled = (Instant::now(), self.db.state_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Request {
        Request::Put(PutRequest::new(key, value))
    }

    fn alarm(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 }
    }

    #[test]
    fn costs_are_etcds() {
        assert_eq!(cost(&put("k", "vv")), 259);
        let op = |r: Request| match r {
            Request::Put(p) => RequestOp { request: Some(request_op::Request::RequestPut(p)) },
            _ => unreachable!(),
        };
        let txn = TxnRequest {
            success: vec![op(put("a", "1"))],
            failure: vec![op(put("b", "22")), op(put("c", ""))],
            ..Default::default()
        };
        assert_eq!(cost(&Request::Txn(txn)), 259 + 257);
        assert_eq!(cost(&Request::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 1 })), 64);
        assert_eq!(cost(&Request::DeleteRange(DeleteRangeRequest::default())), 0);
    }

    #[test]
    fn raised_alarms_persist_refuse_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let alarms = Alarms::open(&db).unwrap();
        let apply = |req: AlarmRequest| {
            let mut batch = WriteBatch::default();
            let resp = alarms.apply(&db, &mut batch, &req);
            db.raw().write(batch).unwrap();
            resp.alarms
        };
        assert!(alarms.refuse(&put("k", "v")).is_none());
        let raised = apply(alarm(AlarmAction::Activate, 7, AlarmType::Nospace));
        assert_eq!(raised, [AlarmMember { member_id: 7, alarm: AlarmType::Nospace as i32 }]);
        assert_eq!(apply(alarm(AlarmAction::Activate, 7, AlarmType::Nospace)), raised, "raised once");
        assert!(matches!(alarms.refuse(&put("k", "v")), Some(Error::NoSpace)));
        assert!(alarms.refuse(&Request::DeleteRange(DeleteRangeRequest::default())).is_none());
        assert!(alarms.refuse(&Request::Compaction(CompactionRequest::default())).is_none());

        apply(alarm(AlarmAction::Activate, 3, AlarmType::Corrupt));
        assert!(matches!(alarms.refuse(&Request::DeleteRange(DeleteRangeRequest::default())), Some(Error::Corrupt)));
        let all = Alarms::open(&db).unwrap().list(AlarmType::None as i32);
        assert_eq!(
            all,
            [
                AlarmMember { member_id: 7, alarm: AlarmType::Nospace as i32 },
                AlarmMember { member_id: 3, alarm: AlarmType::Corrupt as i32 }
            ],
            "restored in (type, member) order"
        );
        assert_eq!(alarms.list(AlarmType::Corrupt as i32).len(), 1);

        assert_eq!(apply(alarm(AlarmAction::Deactivate, 9, AlarmType::Nospace)), [], "not raised by 9");
        apply(alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace));
        apply(alarm(AlarmAction::Deactivate, 3, AlarmType::Corrupt));
        assert!(alarms.refuse(&put("k", "v")).is_none());
        assert!(Alarms::open(&db).unwrap().list(AlarmType::None as i32).is_empty());
    }

    #[test]
    fn the_quota_follows_etcds_flag() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        assert_eq!(Quota::new(db.clone(), 0).bytes(), Some(2 << 30));
        assert_eq!(Quota::new(db.clone(), -1).bytes(), None);
        assert!(Quota::new(db.clone(), -1).available(&put("k", &"v".repeat(10_000))));
        // Empty memtables take some room already.
        let tiny = Quota::new(db.clone(), db.state_bytes() as i64 + 300);
        assert!(tiny.available(&put("k", "v")), "259 bytes fit in 300");
        assert!(!tiny.available(&put("k", &"v".repeat(100))));
        assert!(tiny.available(&Request::DeleteRange(DeleteRangeRequest::default())), "free requests always fit");
    }
}
