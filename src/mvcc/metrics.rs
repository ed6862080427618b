//! etcd's mvcc operation counters (`etcd_mvcc_{put,range,delete,txn}_total`), counted by the
//! callers that run the operations: the apply thread for writes, client threads (the HTTP
//! loops, the pool) for local reads. A counter is one relaxed atomic add.

use crate::metrics::{counter, IntCounter, Registry};
use crate::pb::{response_op, TxnResponse};

pub struct MvccOps {
    pub put: IntCounter,
    pub range: IntCounter,
    pub delete: IntCounter,
    txn: IntCounter,
}

impl Default for MvccOps {
    fn default() -> MvccOps {
        MvccOps {
            put: counter("etcd_mvcc_put_total", "Total number of puts seen by this member."),
            range: counter("etcd_mvcc_range_total", "Total number of ranges seen by this member."),
            delete: counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member."),
            txn: counter("etcd_mvcc_txn_total", "Total number of txns seen by this member."),
        }
    }
}

impl MvccOps {
    pub(super) fn register(&self, registry: &Registry) {
        for c in [&self.put, &self.range, &self.delete, &self.txn] {
            registry.register(c.clone());
        }
    }

    /// A transaction's executed branch, nested ones included; as etcd's `metricsTxnWrite`, it
    /// counts as a txn when it ran more than one operation.
    pub fn txn_done(&self, resp: &TxnResponse) {
        if self.count_ops(resp) > 1 {
            self.txn.inc();
        }
    }

    fn count_ops(&self, resp: &TxnResponse) -> u64 {
        resp.responses
            .iter()
            .map(|op| match &op.response {
                Some(response_op::Response::ResponseRange(_)) => (self.range.inc(), 1).1,
                Some(response_op::Response::ResponsePut(_)) => (self.put.inc(), 1).1,
                Some(response_op::Response::ResponseDeleteRange(_)) => (self.delete.inc(), 1).1,
                Some(response_op::Response::ResponseTxn(nested)) => self.count_ops(nested),
                None => 0,
            })
            .sum()
    }
}
