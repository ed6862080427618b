//! What etcd's lock and election services share, from etcd's `clientv3/concurrency`: the
//! session lease, the keys under a name, the ranges its recipes read, and `waitDeletes`,
//! which waits until every key under a prefix created before a revision is gone by watching
//! the newest of them until it is deleted, then looking again.
//!
//! etcd runs these recipes inside the server through an in-process client; here they call the
//! [`Node`](crate::Node) directly, with its blocking calls, on the thread of the call (a pool
//! thread for the protocols), and relay its errors as etcd's client relays them
//! ([`Error::Relayed`]).

use std::time::Duration;

use crossbeam::channel::select;

use super::Service;
use crate::pb::compare::TargetUnion;
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::*;
use crate::wait::Cancel;
use crate::{Error, Result};

/// etcd's `defaultSessionTTL`: the lease a lock or a campaign gets when it names none.
const SESSION_TTL_S: i64 = 60;
/// How often a wait looks whether the member stopped (a stop ends no watch).
const STOPPED_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A key-value or lease error as etcd's services hand it on (see [`Error::Relayed`]); a
/// cancel's own error stays as it is.
pub(super) fn relayed(e: Error) -> Error {
    match e {
        Error::Relayed(_) | Error::Canceled => e,
        e => Error::Relayed(Box::new(e)),
    }
}

/// The prefix of a lock's or an election's keys: its name and `/`.
pub(super) fn prefix(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// A session's key under `prefix`: the lease id in hex, as Go's `%x` prints an int64 (a
/// negative one with a minus sign).
pub(super) fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let sign = if lease < 0 { "-" } else { "" };
    [prefix, format!("{sign}{:x}", lease.unsigned_abs()).as_bytes()].concat()
}

/// The first key created under `prefix` (clientv3's `WithFirstCreate`); `limit` 0 for all of
/// them in creation order.
pub(super) fn by_creation(prefix: &[u8], limit: i64) -> RangeRequest {
    RangeRequest {
        limit,
        sort_target: SortTarget::Create as i32,
        sort_order: SortOrder::Ascend as i32,
        ..RangeRequest::prefix(prefix)
    }
}

/// `Compare(CreateRevision(key), "=", rev)`.
pub(super) fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        range_end: Vec::new(),
    }
}

pub(super) fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    let put = PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() };
    RequestOp { request: Some(Request::RequestPut(put)) }
}

pub(super) fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(range)) }
}

/// The key-values of a txn's `n`th answer, if it is a range's.
pub(super) fn range_kvs(resp: &TxnResponse, n: usize) -> &[KeyValue] {
    match resp.responses.get(n).and_then(|op| op.response.as_ref()) {
        Some(Response::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

impl Service {
    /// `concurrency.NewSession(WithLease(lease))` as etcd's services make it: the caller's
    /// lease, or a new one of 60 s when it names none (0). Nobody renews it: the services
    /// orphan their sessions at once, so a lock taken without a lease ends a minute later.
    pub(super) fn session(&self, lease: i64) -> Result<i64> {
        if lease != 0 {
            return Ok(lease);
        }
        let granted = self.node.lease_grant(LeaseGrantRequest { ttl: SESSION_TTL_S, id: 0 }).map_err(relayed)?;
        Ok(granted.id)
    }

    /// etcd's `waitDeletes`: returns once no key under `prefix` created at or before
    /// `max_create_rev` is left, with the header of the read that found none. Each round
    /// watches the newest such key until it is deleted: a waiter wakes only when its own
    /// predecessor goes, not on every change of the lock.
    pub(super) fn wait_deletes(&self, prefix: &[u8], max_create_rev: i64, cancel: &Cancel) -> Result<ResponseHeader> {
        let newest = RangeRequest {
            limit: 1,
            sort_target: SortTarget::Create as i32,
            sort_order: SortOrder::Descend as i32,
            max_create_revision: max_create_rev,
            ..RangeRequest::prefix(prefix)
        };
        loop {
            cancel.check()?;
            let resp = self.node.range(newest.clone()).map_err(relayed)?;
            let header = resp.header.unwrap_or_default();
            let Some(last) = resp.kvs.first() else { return Ok(header) };
            self.wait_delete(&last.key, header.revision, cancel)?;
        }
    }

    /// etcd's `waitDelete`: until `key` is deleted at or after `rev`.
    fn wait_delete(&self, key: &[u8], rev: i64, cancel: &Cancel) -> Result<()> {
        let watch =
            self.node.watch(WatchCreateRequest { key: key.to_vec(), start_revision: rev, ..Default::default() })?;
        loop {
            select! {
                recv(watch.responses) -> resp => {
                    // The hub lets go of a watch only after canceling it.
                    let Ok(resp) = resp else { return Err(relayed(Error::Compacted)) };
                    // The only cancel a member sends a watch it did not ask to stop: its
                    // history was compacted (etcd's client reports `ErrCompacted`).
                    if resp.canceled {
                        return Err(relayed(Error::Compacted));
                    }
                    if resp.events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                        return Ok(());
                    }
                }
                recv(cancel.receiver()) -> received => return Err(cancel.error(received)),
                default(STOPPED_CHECK_INTERVAL) => {
                    if self.node.is_stopped() {
                        return Err(Error::Stopped);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_as_etcds_recipes_name_them() {
        assert_eq!(prefix(b"lock"), b"lock/");
        assert_eq!(session_key(b"lock/", 0x694d_7f0c_3a8b_1b04), b"lock/694d7f0c3a8b1b04");
        assert_eq!(session_key(b"/", -1), b"/-1");
        assert_eq!(session_key(b"l/", i64::MIN), b"l/-8000000000000000");
        assert!(matches!(relayed(Error::LeaseNotFound), Error::Relayed(e) if matches!(*e, Error::LeaseNotFound)));
        assert!(matches!(relayed(relayed(Error::EmptyKey)), Error::Relayed(e) if matches!(*e, Error::EmptyKey)));
        assert!(matches!(relayed(Error::Canceled), Error::Canceled));
    }
}
