//! The key-value calls: Range, Put, DeleteRange, Txn, Compact, with etcd's request checks
//! before anything is proposed or read.

use super::{checks, Node, Origin, Ticket};
use crate::apply::kv;
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::wait::Reply;
use crate::Result;

impl Node {
    /// Reads keys (etcd `Range`).
    pub fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.check_range(&req)?;
        let req = wait_on(|ready| self.read_barrier_then(req.serializable, req, ready))?;
        self.range_local(req)
    }

    /// The checks [`Node::range`] makes before reading.
    pub fn check_range(&self, req: &RangeRequest) -> Result<()> {
        checks::check_range(req)
    }

    /// Reads a checked range from what this member has applied: the end of a [`Node::range`]
    /// whose barrier passed in [`Node::read_barrier_then`].
    /// Permissions are checked here, after the barrier, as etcd's `doSerialize` does.
    pub fn range_local(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.inner.auth.is_range_permitted(self.caller(), &req.key, &req.range_end)?;
        self.inner.store.ops.range.inc();
        let mut resp = kv::range(&*self.inner.store, &req)?;
        self.check_auth_unchanged()?;
        self.inner.identity.fill_header(&mut resp.header);
        Ok(resp)
    }

    /// Writes one key (etcd `Put`).
    pub fn put(&self, req: PutRequest) -> Result<PutResponse> {
        wait_on(|reply| self.put_then(req, reply))
    }

    /// [`Node::put`] without blocking: `reply` is answered once the write is applied (on the
    /// apply thread) or refused (maybe at once, on this thread).
    pub fn put_then(&self, req: PutRequest, reply: Reply<PutResponse>) -> Ticket {
        if let Err(e) = checks::check_put(&req) {
            return self.inner.proposer.refuse(reply, e);
        }
        self.propose_then(Origin::Client, Request::Put(req), reply)
    }

    /// Deletes a key or a range (etcd `DeleteRange`).
    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        wait_on(|reply| self.delete_range_then(req, reply))
    }

    /// [`Node::delete_range`] without blocking, answered as [`Node::put_then`] is.
    pub fn delete_range_then(&self, req: DeleteRangeRequest, reply: Reply<DeleteRangeResponse>) -> Ticket {
        if let Err(e) = checks::check_delete(&req) {
            return self.inner.proposer.refuse(reply, e);
        }
        self.propose_then(Origin::Client, Request::DeleteRange(req), reply)
    }

    /// Runs a transaction (etcd `Txn`). A read-only one is served locally after the read
    /// barrier, on one revision, without going through raft (etcd's `isTxnReadonly`).
    pub fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        self.check_txn(&req)?;
        if kv::is_read_only(&req) {
            let req = wait_on(|ready| self.read_barrier_then(kv::is_serializable(&req), req, ready))?;
            return self.txn_local(req);
        }
        wait_on(|reply| self.txn_then(req, reply))
    }

    /// The checks [`Node::txn`] makes first.
    pub fn check_txn(&self, req: &TxnRequest) -> Result<()> {
        checks::check_txn(req, self.inner.cfg.max_txn_ops)
    }

    /// Whether a transaction only reads: [`Node::txn_local`] may run it after the read barrier
    /// ([`Node::read_barrier_then`], serializable if [`Node::txn_is_serializable`]).
    pub fn txn_is_read_only(req: &TxnRequest) -> bool {
        kv::is_read_only(req)
    }

    pub fn txn_is_serializable(req: &TxnRequest) -> bool {
        kv::is_serializable(req)
    }

    /// Runs a checked read-only transaction on what this member has applied, on one revision.
    pub fn txn_local(&self, req: TxnRequest) -> Result<TxnResponse> {
        let inner = &self.inner;
        inner.auth.check_txn(self.caller(), &req)?;
        let mut resp = kv::txn(&mut inner.store.pinned(), &req, &inner.lessor)?;
        self.check_auth_unchanged()?;
        inner.store.ops.txn_done(&resp);
        inner.identity.fill_header(&mut resp.header);
        Ok(resp)
    }

    /// Proposes a transaction without blocking, answered as [`Node::put_then`] is (read-only
    /// ones too, through raft; [`Node::txn`] serves those locally).
    pub fn txn_then(&self, req: TxnRequest, reply: Reply<TxnResponse>) -> Ticket {
        if let Err(e) = self.check_txn(&req) {
            return self.inner.proposer.refuse(reply, e);
        }
        self.propose_then(Origin::Client, Request::Txn(req), reply)
    }

    /// Discards the history before a revision (etcd `Compact`). Returns once the compaction is
    /// applied here (reads below the revision fail from then on), and with `physical` only
    /// once this member has also removed the old revisions from disk, as etcd.
    pub fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse> {
        let (rev, physical) = (req.revision, req.physical);
        let resp = wait_on(|reply| self.propose_then(Origin::Client, Request::Compaction(req), reply))?;
        if physical {
            self.inner.store.wait_removed(rev)?;
        }
        Ok(resp)
    }
}
