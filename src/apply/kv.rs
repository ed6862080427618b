//! etcd's KV request semantics on top of the mvcc primitives (etcd's `applierV3backend`):
//! Range's filters, sorting and limit; Put's `ignore_value`/`ignore_lease`/`prev_kv`;
//! DeleteRange's `prev_kv`; Txn's compares, branch checks and nested txns; Compaction.
//!
//! The checks etcd runs before proposing are [`crate::node`]'s. Runs on the apply thread for
//! writes and on client threads for reads; holds no state.

use std::cmp::Ordering;

use crate::lease::Lessor;
use crate::mvcc::{PinnedView, RangeOptions, ReadView, WriteTxn};
use crate::pb::compare::TargetUnion;
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::*;
use crate::{Error, Result};

/// etcd's `mkGteRange`: an empty `range_end` means one key, `[0]` means "to the end".
fn range_end(end: &[u8]) -> Option<&[u8]> {
    match end {
        [] => None,
        [0] => Some(&[]),
        end => Some(end),
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

pub fn range(view: &impl ReadView, r: &RangeRequest) -> Result<RangeResponse> {
    let filtered = r.sort_order != SortOrder::None as i32
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    // Without sorting or filters, fetch one more than the limit to learn `more`.
    let limit = if filtered || r.limit <= 0 { 0 } else { r.limit + 1 };
    let opts = RangeOptions { limit, rev: r.revision, count: r.count_only };
    let mut rr = view.range(&r.key, range_end(&r.range_end), opts)?;

    rr.kvs.retain(|kv| {
        (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
    });

    // etcd sorts only by the five targets and in the two orders it names: any other order
    // leaves keys in key order. An unknown target with an order to sort in crashes etcd 3.4
    // (a nil sorter); that one request is refused instead.
    let mut order = r.sort_order;
    if r.sort_target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        order = SortOrder::Ascend as i32;
    }
    if sorts_by_unknown_target(r) {
        return Err(Error::InvalidSortOption);
    }
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    if order == SortOrder::Ascend as i32 || order == SortOrder::Descend as i32 {
        let by = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        if order == SortOrder::Descend as i32 {
            rr.kvs.sort_by(|a, b| by(b, a));
        } else {
            rr.kvs.sort_by(by);
        }
    }

    let mut more = false;
    if r.limit > 0 && rr.kvs.len() > r.limit as usize {
        rr.kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut rr.kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse { header: header(rr.rev), kvs: rr.kvs, more, count: rr.count })
}

/// Whether a range asks etcd 3.4 to sort by a target it does not know, in an order it would
/// sort in (an order of NONE with a target other than KEY means ascending): the request that
/// crashes etcd, which raftkv answers with `invalid sort option` (etcd 3.6's answer).
pub fn sorts_by_unknown_target(r: &RangeRequest) -> bool {
    SortTarget::try_from(r.sort_target).is_err()
        && [SortOrder::None, SortOrder::Ascend, SortOrder::Descend].iter().any(|o| *o as i32 == r.sort_order)
}

pub fn put(txn: &mut WriteTxn, r: &PutRequest, lessor: &Lessor) -> Result<PutResponse> {
    // etcd checks a plain put's lease before looking at the key (a txn's puts were checked
    // the other way round by `check_branch`).
    if r.lease != 0 && !lessor.exists(r.lease) {
        return Err(Error::LeaseNotFound);
    }
    let needs_prev = r.ignore_value || r.ignore_lease || r.prev_kv;
    let prev = if needs_prev { txn.range(&r.key, None, RangeOptions::default())?.kvs.into_iter().next() } else { None };
    if (r.ignore_value || r.ignore_lease) && prev.is_none() {
        return Err(Error::KeyNotFound);
    }
    let lease = match (&prev, r.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => r.lease,
    };
    let value = match (&prev, r.ignore_value) {
        (Some(prev), true) => prev.value.as_slice(),
        _ => r.value.as_slice(),
    };
    let kv = txn.put(&r.key, value, lease)?;
    lessor.attach(&r.key, lease);
    let prev_kv = if r.prev_kv { prev } else { None };
    Ok(PutResponse { header: header(kv.mod_revision), prev_kv })
}

pub fn delete_range(txn: &mut WriteTxn, r: &DeleteRangeRequest, lessor: &Lessor) -> Result<DeleteRangeResponse> {
    let deleted = txn.delete_range(&r.key, range_end(&r.range_end))?;
    for kv in deleted.iter().filter(|kv| kv.lease != 0) {
        lessor.attach(&kv.key, 0);
    }
    let count = deleted.len() as i64;
    let prev_kvs = if r.prev_kv { deleted } else { Vec::new() };
    Ok(DeleteRangeResponse { header: header(txn.rev()), deleted: count, prev_kvs })
}

/// What a txn runs against: reads always, writes unless the txn is read-only (which
/// [`is_read_only`] decides before a [`PinnedView`] is used).
pub trait TxnStore: ReadView {
    fn put(&mut self, r: &PutRequest, lessor: &Lessor) -> Result<PutResponse>;
    fn delete_range(&mut self, r: &DeleteRangeRequest, lessor: &Lessor) -> Result<DeleteRangeResponse>;
}

impl TxnStore for WriteTxn<'_, '_> {
    fn put(&mut self, r: &PutRequest, lessor: &Lessor) -> Result<PutResponse> {
        put(self, r, lessor)
    }

    fn delete_range(&mut self, r: &DeleteRangeRequest, lessor: &Lessor) -> Result<DeleteRangeResponse> {
        delete_range(self, r, lessor)
    }
}

impl TxnStore for PinnedView<'_> {
    fn put(&mut self, _: &PutRequest, _: &Lessor) -> Result<PutResponse> {
        Err(read_only_violation())
    }

    fn delete_range(&mut self, _: &DeleteRangeRequest, _: &Lessor) -> Result<DeleteRangeResponse> {
        Err(read_only_violation())
    }
}

fn read_only_violation() -> Error {
    Error::Decode { what: "read-only txn", detail: "a write reached a read-only view".into() }
}

/// etcd's `isTxnReadonly`: no put or delete in either branch, at any depth. Such a txn is
/// served locally (after a ReadIndex unless every range is serializable) instead of through
/// the raft log.
pub fn is_read_only(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| match &op.request {
        Some(Request::RequestRange(_)) | None => true,
        Some(Request::RequestTxn(inner)) => is_read_only(inner),
        Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
    })
}

/// etcd's `isTxnSerializable`: every range in the txn asks for a serializable read.
pub fn is_serializable(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| match &op.request {
        Some(Request::RequestRange(rr)) => rr.serializable,
        Some(Request::RequestTxn(inner)) => is_serializable(inner),
        _ => true,
    })
}

/// Applies a txn: compares (and those of nested txns on the taken path) are evaluated on the
/// state before any write, then the chosen branch is checked as a whole (so a failing op
/// leaves nothing half done), then executed at one revision.
pub fn txn(txn: &mut impl TxnStore, r: &TxnRequest, lessor: &Lessor) -> Result<TxnResponse> {
    let path = compare_path(txn, r);
    check_branch(txn, r, &path, lessor)?;
    let mut next = 0;
    let mut resp = exec_txn(txn, r, &path, &mut next, lessor)?;
    resp.header = header(txn.rev());
    Ok(resp)
}

/// The outcome of every compare on the execution path, depth first: one bool per txn visited.
fn compare_path(view: &impl ReadView, r: &TxnRequest) -> Vec<bool> {
    let mut path = Vec::new();
    walk_compares(view, r, &mut path);
    path
}

fn walk_compares(view: &impl ReadView, r: &TxnRequest, path: &mut Vec<bool>) {
    let ok = r.compare.iter().all(|c| compare(view, c));
    path.push(ok);
    for op in if ok { &r.success } else { &r.failure } {
        if let Some(Request::RequestTxn(inner)) = &op.request {
            walk_compares(view, inner, path);
        }
    }
}

fn compare(view: &impl ReadView, c: &Compare) -> bool {
    let Ok(rr) = view.range(&c.key, range_end(&c.range_end), RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        // A missing key has no value to compare; every other target compares against zero.
        return c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

/// etcd's `compareKV`: the key's field named by the target against the oneof's member for that
/// same target (zero or empty if the compare holds another member). An unknown target compares
/// as equal, an unknown result is true.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let union = c.target_union.as_ref();
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want = match union {
                Some(TargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Ok(target) => {
            let (have, want) = match (target, union) {
                (CompareTarget::Version, Some(TargetUnion::Version(v))) => (kv.version, *v),
                (CompareTarget::Version, _) => (kv.version, 0),
                (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => (kv.create_revision, *v),
                (CompareTarget::Create, _) => (kv.create_revision, 0),
                (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => (kv.mod_revision, *v),
                (CompareTarget::Mod, _) => (kv.mod_revision, 0),
                (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => (kv.lease, *v),
                (_, _) => (kv.lease, 0),
            };
            have.cmp(&want)
        }
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}

/// The ops of the taken path, depth first, in the order etcd visits them (`path` holds the
/// compare outcome of every txn on it, as [`compare_path`] found them).
fn taken_ops<'a>(r: &'a TxnRequest, path: &[bool], at: &mut usize, out: &mut Vec<&'a Request>) {
    let ok = path[*at];
    *at += 1;
    for op in if ok { &r.success } else { &r.failure } {
        match &op.request {
            Some(Request::RequestTxn(inner)) => taken_ops(inner, path, at, out),
            Some(request) => out.push(request),
            None => {}
        }
    }
}

/// etcd's `checkRequests` on the taken path before anything is written: first every put
/// (`ignore_*` needs the key, a lease must exist), then every range's revision; the untaken
/// branches are never looked at. Last, a range that would crash etcd (see
/// [`sorts_by_unknown_target`]) refuses the whole txn instead of failing half-way.
/// Whether `key` exists when an op runs after `before` on the taken path: the last of them to
/// touch it decides (a put makes it, a delete removes it), else the store before the txn.
/// etcd checks only the store before the txn, so an `ignore_value` put of a key an earlier
/// delete of the same txn removed passes its check and then panics etcd mid-txn; raftkv
/// refuses the txn instead.
fn exists_when(view: &impl ReadView, before: &[&Request], key: &[u8]) -> Result<bool> {
    for op in before.iter().rev() {
        match op {
            Request::RequestPut(p) if p.key == key => return Ok(true),
            Request::RequestDeleteRange(d) if deletes(d, key) => return Ok(false),
            _ => {}
        }
    }
    Ok(!view.range(key, None, RangeOptions::default())?.kvs.is_empty())
}

/// Whether executing `d` deletes `key`.
fn deletes(d: &DeleteRangeRequest, key: &[u8]) -> bool {
    match range_end(&d.range_end) {
        None => key == d.key.as_slice(),
        Some([]) => key >= d.key.as_slice(),
        Some(end) => key >= d.key.as_slice() && key < end,
    }
}

fn check_branch(view: &impl ReadView, r: &TxnRequest, path: &[bool], lessor: &Lessor) -> Result<()> {
    let mut ops = Vec::new();
    taken_ops(r, path, &mut 0, &mut ops);
    for (at, op) in ops.iter().enumerate() {
        let Request::RequestPut(p) = op else { continue };
        if (p.ignore_value || p.ignore_lease) && !exists_when(view, &ops[..at], &p.key)? {
            return Err(Error::KeyNotFound);
        }
        if p.lease != 0 && !lessor.exists(p.lease) {
            return Err(Error::LeaseNotFound);
        }
    }
    let ranges = ops.iter().filter_map(|op| match op {
        Request::RequestRange(rr) => Some(rr),
        _ => None,
    });
    for rr in ranges.clone() {
        // etcd's `checkRequestRange`: the raw revision against the compact revision, so a
        // negative one is compacted once anything is (a plain range reads it as "latest").
        if rr.revision != 0 {
            if rr.revision > view.rev() {
                return Err(Error::FutureRevision);
            }
            if rr.revision < view.compact_rev() {
                return Err(Error::Compacted);
            }
        }
    }
    if ranges.clone().any(sorts_by_unknown_target) {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

fn exec_txn(
    txn: &mut impl TxnStore,
    r: &TxnRequest,
    path: &[bool],
    next: &mut usize,
    lessor: &Lessor,
) -> Result<TxnResponse> {
    let succeeded = path[*next];
    *next += 1;
    let mut responses = Vec::new();
    for op in if succeeded { &r.success } else { &r.failure } {
        let response = match &op.request {
            Some(Request::RequestRange(rr)) => Response::ResponseRange(range(txn, rr)?),
            Some(Request::RequestPut(p)) => Response::ResponsePut(txn.put(p, lessor)?),
            Some(Request::RequestDeleteRange(d)) => Response::ResponseDeleteRange(txn.delete_range(d, lessor)?),
            Some(Request::RequestTxn(inner)) => {
                // Nested txn responses carry an empty header, as etcd's do.
                let mut resp = exec_txn(txn, inner, path, next, lessor)?;
                resp.header = Some(ResponseHeader::default());
                Response::ResponseTxn(resp)
            }
            None => continue,
        };
        responses.push(ResponseOp { response: Some(response) });
    }
    Ok(TxnResponse { header: None, succeeded, responses })
}

/// etcd's check for a compaction request against the store's revisions.
pub fn check_compaction(current: i64, compacted: i64, rev: i64) -> Result<()> {
    if rev <= compacted {
        return Err(Error::Compacted);
    }
    if rev > current {
        return Err(Error::FutureRevision);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(target: i32, result: i32, union: Option<TargetUnion>) -> Compare {
        Compare { target, result, key: b"k".to_vec(), target_union: union, ..Default::default() }
    }

    /// etcd 3.4.23's `compareKV`, case by case (measured against a real etcd).
    #[test]
    fn compares_as_etcd_compares() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            version: 2,
            create_revision: 3,
            mod_revision: 5,
            value: b"v".to_vec(),
            lease: 0,
        };
        let (eq, gt, lt, ne) = (0, 1, 2, 3);
        let cases = [
            ("version equal", cmp(0, eq, Some(TargetUnion::Version(2))), true),
            ("mod greater", cmp(2, gt, Some(TargetUnion::ModRevision(4))), true),
            ("create less", cmp(1, lt, Some(TargetUnion::CreateRevision(4))), true),
            ("value not equal", cmp(3, ne, Some(TargetUnion::Value(b"w".to_vec()))), true),
            // The operand is the member for the compared target only; another reads as zero.
            ("mod against a value member", cmp(2, eq, Some(TargetUnion::Value(b"x".to_vec()))), false),
            ("value against a mod member", cmp(3, gt, Some(TargetUnion::ModRevision(5))), true),
            // An unknown target compares as equal; an unknown result is true.
            ("unknown target, equal", cmp(7, eq, None), true),
            ("unknown target, greater", cmp(7, gt, None), false),
            ("unknown target, not equal", cmp(-1, ne, None), false),
            ("unknown result", cmp(2, 9, Some(TargetUnion::ModRevision(100))), true),
        ];
        for (what, c, expected) in cases {
            assert_eq!(compare_kv(&c, &kv), expected, "{what}");
        }
    }

    #[test]
    fn only_the_sort_that_crashes_etcd_is_refused() {
        let req = |order, target| RangeRequest { sort_order: order, sort_target: target, ..RangeRequest::key("k") };
        for (order, target, refused) in
            [(0, 5, true), (1, -1, true), (2, 7, true), (3, 5, false), (-1, 9, false), (9, 0, false), (2, 4, false)]
        {
            assert_eq!(sorts_by_unknown_target(&req(order, target)), refused, "order {order} target {target}");
        }
    }
}
