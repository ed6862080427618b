//! The checks etcd runs on a request before proposing it (`v3rpc/key.go`): keys given,
//! option combinations, a txn's op budget and nesting, and overlapping writes in one txn path.
//! Pure functions, on the caller's thread.

use std::collections::HashSet;

use crate::pb::request_op::Request;
use crate::pb::*;
use crate::{Error, Result};

pub fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Txns nested deeper than this are refused as etcd refuses a txn over its op budget. etcd's
/// budget alone allows `max_txn_ops` levels; every level costs stack in each recursive walk
/// and prost decodes at most 100 nested messages (two per level), so raftkv stops well before.
pub const TXN_NESTING_MAX: usize = 32;

/// Size, keys and options of a txn, then etcd's overlap rule for both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    check_txn_ops(r, max_txn_ops, 0)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`: a level may hold at most `budget` ops (the longest of its compare,
/// success and failure lists), and a nested txn gets what its parent left of the budget.
fn check_txn_ops(r: &TxnRequest, budget: usize, depth: usize) -> Result<()> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > budget || depth > TXN_NESTING_MAX {
        return Err(Error::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(rr)) => check_range(rr)?,
            Some(Request::RequestPut(p)) => check_put(p)?,
            Some(Request::RequestDeleteRange(d)) => check_delete(d)?,
            Some(Request::RequestTxn(inner)) => check_txn_ops(inner, budget - ops, depth + 1)?,
            None => return Err(Error::KeyNotFound),
        }
    }
    Ok(())
}

/// Deleted intervals of one branch, `[start, end)`, as etcd's interval tree holds them: the
/// raw `range_end`, so `"\0"` (which deletes to the end) is an empty interval here, as in etcd.
#[derive(Default)]
struct Deletes(Vec<(Vec<u8>, Vec<u8>)>);

impl Deletes {
    fn covers(&self, key: &[u8]) -> bool {
        self.0.iter().any(|(start, end)| key >= start.as_slice() && key < end.as_slice())
    }
}

/// etcd's `checkIntervals`: within one execution path, no key may be put twice or both put
/// and deleted. The two branches of a nested txn are exclusive, so a key put in both is fine.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Deletes)> {
    let mut dels = Deletes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            let end = if d.range_end.is_empty() { prefix_successor(&d.key) } else { d.range_end.clone() };
            dels.0.push((d.key.clone(), end));
        }
    }
    let mut puts = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(inner)) = &op.request else { continue };
        let (puts_then, dels_then) = check_intervals(&inner.success)?;
        let (puts_else, dels_else) = check_intervals(&inner.failure)?;
        for key in &puts_then {
            if puts.contains(key) || dels.covers(key) {
                return Err(Error::DuplicateKey);
            }
        }
        for key in &puts_else {
            if (puts.contains(key) && !puts_then.contains(key)) || dels.covers(key) {
                return Err(Error::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.0.extend(dels_then.0);
        dels.0.extend(dels_else.0);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else { continue };
        if puts.contains(&p.key) || dels.covers(&p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// The smallest key after `key` itself: deleting one key covers exactly `[key, key\0)`.
fn prefix_successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::request_op::Request as Op;

    fn put(key: &str) -> RequestOp {
        RequestOp { request: Some(Op::RequestPut(PutRequest::new(key, "v"))) }
    }

    fn del(key: &str, end: &[u8]) -> RequestOp {
        let d = DeleteRangeRequest { key: key.into(), range_end: end.to_vec(), ..Default::default() };
        RequestOp { request: Some(Op::RequestDeleteRange(d)) }
    }

    fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp { request: Some(Op::RequestTxn(TxnRequest { success, failure, ..Default::default() })) }
    }

    fn branch(ops: Vec<RequestOp>) -> Result<()> {
        check_txn(&TxnRequest { success: ops, ..Default::default() }, 128)
    }

    /// etcd 3.4.23's `checkIntervals` answers, measured against a real etcd.
    #[test]
    fn overlapping_writes_as_etcd_checks_them() {
        let (dup, ok) = (true, false);
        let cases: Vec<(&str, Vec<RequestOp>, bool)> = vec![
            ("two overlapping deletes", vec![del("a", b"c"), del("b", b"d")], ok),
            ("the same delete twice", vec![del("a", b""), del("a", b"")], ok),
            ("delete then put", vec![del("a", b""), put("a")], dup),
            ("put then delete", vec![put("a"), del("a", b"")], dup),
            ("put twice", vec![put("a"), put("a")], dup),
            ("put inside a deleted range", vec![del("a", b"c"), put("b")], dup),
            ("put at the end of a deleted range", vec![del("a", b"c"), put("c")], ok),
            ("a \\0 range end is an empty interval", vec![del("b", b"\0"), put("c")], ok),
            ("outer delete, nested put", vec![del("a", b""), nested(vec![put("a")], vec![])], dup),
            ("outer put, nested delete", vec![put("a"), nested(vec![del("a", b"")], vec![])], dup),
            ("a nested put in both branches", vec![nested(vec![put("a")], vec![put("a")])], ok),
            ("a nested put and delete in its branches", vec![nested(vec![put("a")], vec![del("a", b"")])], ok),
            ("two nested puts", vec![nested(vec![put("a")], vec![]), nested(vec![put("a")], vec![])], dup),
            (
                "nested put, then nested delete",
                vec![nested(vec![put("a")], vec![]), nested(vec![del("a", b"")], vec![])],
                ok,
            ),
            (
                "nested delete, then nested put",
                vec![nested(vec![del("a", b"")], vec![]), nested(vec![put("a")], vec![])],
                dup,
            ),
        ];
        for (what, ops, duplicate) in cases {
            let outcome = branch(ops);
            assert!(
                if duplicate { matches!(outcome, Err(Error::DuplicateKey)) } else { outcome.is_ok() },
                "{what}: {outcome:?}"
            );
        }
        // The branches are checked apart.
        let txn = TxnRequest { success: vec![put("a")], failure: vec![del("a", b"")], ..Default::default() };
        assert!(check_txn(&txn, 128).is_ok());
    }

    #[test]
    fn a_nested_txn_gets_what_its_parent_left_of_the_budget() {
        let wide = |n: usize| (0..n).map(|i| put(&format!("k{i}"))).collect::<Vec<_>>();
        assert!(check_txn(&TxnRequest { success: wide(128), ..Default::default() }, 128).is_ok());
        assert!(matches!(
            check_txn(&TxnRequest { success: wide(129), ..Default::default() }, 128),
            Err(Error::TooManyOps)
        ));
        // 100 ops here leave 28 for the nested txn.
        let mut ops = wide(99);
        ops.push(nested(wide(29), vec![]));
        assert!(matches!(check_txn(&TxnRequest { success: ops, ..Default::default() }, 128), Err(Error::TooManyOps)));
        let deep = (0..=TXN_NESTING_MAX).fold(TxnRequest::default(), |inner, _| TxnRequest {
            success: vec![RequestOp { request: Some(Op::RequestTxn(inner)) }],
            ..Default::default()
        });
        assert!(matches!(check_txn(&deep, 1000), Err(Error::TooManyOps)), "nested past TXN_NESTING_MAX");
        let empty_op = TxnRequest { success: vec![RequestOp::default()], ..Default::default() };
        assert!(matches!(check_txn(&empty_op, 128), Err(Error::KeyNotFound)));
    }
}
