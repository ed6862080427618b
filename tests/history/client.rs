//! [`RecordingClient`]: a [`raftkv::Client`] that logs every call into a [`Recorder`], and the
//! translation between the checker's types and raftkv's protobufs.
//!
//! An error the server answered with a definite refusal the model knows (lease not found,
//! lease exists) is an answer; any other error (a timeout, a lost leader, a broken
//! connection) is an unknown outcome, as etcd's robustness tests treat them.

use raftkv::pb::{self, compare::TargetUnion, request_op, response_op};
use raftkv::Client;

use super::record::*;

pub struct RecordingClient<'a> {
    pub client: Client,
    pub recorder: &'a Recorder,
    /// This client's number in the history.
    pub id: usize,
}

impl RecordingClient<'_> {
    /// Calls `request`, records it with its outcome, and returns the outcome.
    pub fn call(&self, request: Request) -> Outcome {
        if let Request::LeaseGrant { id, .. } = request {
            // The history names leases by id: a server-chosen one is unknown if the answer is.
            assert_ne!(id, 0, "a recorded lease grant names its id");
        }
        let invoked = self.recorder.invoke(self.id, request.clone());
        let outcome = match self.send(&request) {
            Ok(outcome) => outcome,
            Err(raftkv::client::Error::Server { message, .. }) if message.ends_with("requested lease not found") => {
                Outcome::Ok { revision: None, response: Response::Refused(Refusal::LeaseNotFound) }
            }
            Err(raftkv::client::Error::Server { message, .. }) if message.ends_with("lease already exists") => {
                Outcome::Ok { revision: None, response: Response::Refused(Refusal::LeaseExists) }
            }
            Err(_) => Outcome::Unknown,
        };
        self.recorder.complete(invoked, outcome.clone());
        outcome
    }

    fn send(&self, request: &Request) -> raftkv::client::Result<Outcome> {
        let ok = |header: Option<pb::ResponseHeader>, response| Outcome::Ok {
            revision: header.map(|h| h.revision),
            response,
        };
        Ok(match request {
            Request::Kv(op @ KvOp::Put { .. }) => {
                let resp = self.client.put(&put_request(op))?;
                ok(resp.header, Response::Kv(KvResult::Put))
            }
            Request::Kv(op @ KvOp::Range { .. }) => {
                let resp = self.client.range(&range_request(op))?;
                let header = resp.header;
                ok(header, Response::Kv(range_result(resp)))
            }
            Request::Kv(op @ KvOp::Delete { .. }) => {
                let resp = self.client.delete_range(&delete_request(op))?;
                ok(resp.header, Response::Kv(KvResult::Delete { deleted: resp.deleted }))
            }
            Request::Txn { compares, success, failure } => {
                let req = pb::TxnRequest {
                    compare: compares.iter().map(compare).collect(),
                    success: success.iter().map(request_op).collect(),
                    failure: failure.iter().map(request_op).collect(),
                };
                let resp = self.client.txn(&req)?;
                let results = resp.responses.into_iter().map(response_op).collect();
                ok(resp.header, Response::Txn { succeeded: resp.succeeded, results })
            }
            Request::LeaseGrant { id, ttl } => {
                let resp = self.client.lease_grant(&pb::LeaseGrantRequest { ttl: *ttl, id: *id })?;
                ok(resp.header, Response::LeaseGrant)
            }
            Request::LeaseRevoke { id } => {
                let resp = self.client.lease_revoke(&pb::LeaseRevokeRequest { id: *id })?;
                ok(resp.header, Response::LeaseRevoke)
            }
            Request::LeaseKeepAlive { id } => {
                let resp = self.client.lease_keep_alive(&pb::LeaseKeepAliveRequest { id: *id })?;
                // The leader's revision, not the applied state's: nothing to check it against.
                Outcome::Ok { revision: None, response: Response::LeaseKeepAlive { ttl: resp.ttl } }
            }
        })
    }
}

fn put_request(op: &KvOp) -> pb::PutRequest {
    let KvOp::Put { key, value, lease } = op else { unreachable!("a put") };
    pb::PutRequest { key: key.clone(), value: value.clone(), lease: *lease, ..Default::default() }
}

fn range_request(op: &KvOp) -> pb::RangeRequest {
    let KvOp::Range { key, end, limit } = op else { unreachable!("a range") };
    pb::RangeRequest { key: key.clone(), range_end: end.clone(), limit: *limit, ..Default::default() }
}

fn delete_request(op: &KvOp) -> pb::DeleteRangeRequest {
    let KvOp::Delete { key, end } = op else { unreachable!("a delete") };
    pb::DeleteRangeRequest { key: key.clone(), range_end: end.clone(), ..Default::default() }
}

fn request_op(op: &KvOp) -> pb::RequestOp {
    let request = match op {
        KvOp::Put { .. } => request_op::Request::RequestPut(put_request(op)),
        KvOp::Range { .. } => request_op::Request::RequestRange(range_request(op)),
        KvOp::Delete { .. } => request_op::Request::RequestDeleteRange(delete_request(op)),
    };
    pb::RequestOp { request: Some(request) }
}

fn response_op(resp: pb::ResponseOp) -> KvResult {
    match resp.response {
        Some(response_op::Response::ResponsePut(_)) => KvResult::Put,
        Some(response_op::Response::ResponseRange(r)) => range_result(r),
        Some(response_op::Response::ResponseDeleteRange(d)) => KvResult::Delete { deleted: d.deleted },
        other => panic!("a txn answered {other:?} to a put, range or delete"),
    }
}

fn range_result(resp: pb::RangeResponse) -> KvResult {
    KvResult::Range { kvs: resp.kvs.into_iter().map(kv).collect(), count: resp.count, more: resp.more }
}

pub fn kv(kv: pb::KeyValue) -> Kv {
    Kv {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

fn compare(c: &Compare) -> pb::Compare {
    let (target, operand) = match &c.target {
        Target::Value(v) => (pb::CompareTarget::Value, TargetUnion::Value(v.clone())),
        Target::Version(n) => (pb::CompareTarget::Version, TargetUnion::Version(*n)),
        Target::Create(n) => (pb::CompareTarget::Create, TargetUnion::CreateRevision(*n)),
        Target::Mod(n) => (pb::CompareTarget::Mod, TargetUnion::ModRevision(*n)),
        Target::Lease(n) => (pb::CompareTarget::Lease, TargetUnion::Lease(*n)),
    };
    let result = match c.cmp {
        Cmp::Equal => pb::CompareResult::Equal,
        Cmp::Greater => pb::CompareResult::Greater,
        Cmp::Less => pb::CompareResult::Less,
        Cmp::NotEqual => pb::CompareResult::NotEqual,
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: c.key.clone(),
        target_union: Some(operand),
        range_end: Vec::new(),
    }
}

/// The checker's view of a watch response.
pub fn watch_response(resp: pb::WatchResponse) -> WatchResponse {
    let event = |e: pb::Event| WatchEvent {
        kind: if e.r#type == pb::EventType::Delete as i32 { EventKind::Delete } else { EventKind::Put },
        kv: kv(e.kv.unwrap_or_default()),
        prev_kv: e.prev_kv.map(kv),
    };
    WatchResponse {
        at_ns: now_ns(),
        revision: resp.header.map_or(0, |h| h.revision),
        created: resp.created,
        canceled: resp.canceled,
        events: resp.events.into_iter().map(event).collect(),
    }
}
