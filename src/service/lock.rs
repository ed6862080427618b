//! etcd's Lock service (`v3lock/lock.go` over `concurrency/mutex.go`): a lock `name` is held
//! by the key under `name/` with the lowest create revision; each caller puts its own key
//! (`name/<lease in hex>`, attached to its lease) and waits until every key created before
//! it is gone. Deleting the key (`Unlock`), revoking its lease or letting it expire hands the
//! lock to the next waiter.
//!
//! `Lock` runs on the thread of the call (a pool thread for the protocols) for as long as the
//! lock is held by others; a caller that leaves ([`Cancel`]) has its waiting key deleted, as
//! etcd's `Mutex.Lock` deletes it when its context ends.

use super::recipes::{by_creation, created_at, prefix, put_op, range_kvs, range_op, relayed, session_key};
use super::Service;
use crate::pb::*;
use crate::wait::Cancel;
use crate::Result;

impl Service {
    /// Takes the lock `req.name` with `req.lease` (a new 60 s lease if 0), waiting until it
    /// is free or `cancel` fires. The answer names the key that holds it.
    pub fn lock(&self, req: LockRequest, cancel: &Cancel) -> Result<LockResponse> {
        let lease = self.session(req.lease)?;
        let prefix = prefix(&req.name);
        let key = session_key(&prefix, lease);
        // Queue up with our key, unless this lease queued already (then it keeps its place),
        // and learn the holder in the same round trip.
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put_op(&key, b"", lease), range_op(by_creation(&prefix, 1))],
            failure: vec![range_op(RangeRequest::key(key.clone())), range_op(by_creation(&prefix, 1))],
        };
        let resp = self.node.txn(txn).map_err(relayed)?;
        let mut my_rev = resp.header.map_or(0, |h| h.revision);
        if !resp.succeeded {
            my_rev = range_kvs(&resp, 0).first().map_or(my_rev, |kv| kv.create_revision);
        }
        let holder = range_kvs(&resp, 1).first();
        if holder.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(LockResponse { header: resp.header, key });
        }
        match self.wait_deletes(&prefix, my_rev - 1, cancel) {
            Ok(header) => Ok(LockResponse { header: Some(header), key }),
            Err(e) => {
                // Out of the queue, as etcd's `Mutex.Lock` leaves it when its wait fails.
                if let Err(undone) = self.node.delete_range(DeleteRangeRequest::key(key)) {
                    log::warn!("lock: cannot delete the key of a lock given up: {undone}");
                }
                Err(e)
            }
        }
    }

    /// Releases a lock: deletes the key `Lock` answered with (any key, as etcd's does).
    pub fn unlock(&self, req: UnlockRequest) -> Result<UnlockResponse> {
        let resp = self.node.delete_range(DeleteRangeRequest::key(req.key)).map_err(relayed)?;
        Ok(UnlockResponse { header: resp.header })
    }
}
