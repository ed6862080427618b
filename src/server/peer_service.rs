//! [`PeerService`]: what this member answers its peers over the transport: lease calls only
//! the leader can answer (keepalive, time-to-live; forwarded by followers, answered locally
//! when this member leads), this member's HashKV for the corruption checks (any member, as
//! etcd's `/members/hashkv`), and the membership for a member joining with
//! `--initial-cluster-state existing`.
//!
//! Runs on the transport's `raftkv-peer-rx` reader threads and on the callers of the node's
//! lease and hash calls. Holds the handles it uses and nothing else, so the transport can own
//! it from its start (no second wiring step).

use std::sync::Arc;

use parking_lot::RwLock;

use super::propose::Proposer;
use crate::cluster::Membership;
use crate::identity::Identity;
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::{Error, Result};

pub struct PeerService {
    identity: Arc<Identity>,
    lessor: Arc<Lessor>,
    store: Arc<Store>,
    membership: Arc<RwLock<Membership>>,
    proposer: Arc<Proposer>,
}

impl PeerService {
    pub fn new(
        identity: Arc<Identity>,
        lessor: Arc<Lessor>,
        store: Arc<Store>,
        membership: Arc<RwLock<Membership>>,
        proposer: Arc<Proposer>,
    ) -> PeerService {
        PeerService { identity, lessor, store, membership, proposer }
    }

    /// Restarts a lease's countdown, as the leader: TTL 0 for an unknown lease, as etcd.
    pub fn keep_alive(&self, req: &LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        self.proposer.wait_applied()?;
        let ttl = match self.lessor.renew(req.id) {
            Some((ttl, checkpointed)) => {
                if checkpointed {
                    // The stored remaining TTL is stale now; a restart must not resume from it.
                    let checkpoints = vec![LeaseCheckpoint { id: req.id, remaining_ttl: 0 }];
                    self.proposer.propose_nowait(Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints }));
                }
                ttl
            }
            None => 0,
        };
        Ok(LeaseKeepAliveResponse { header: self.identity.header_at(self.store.current_revision()), id: req.id, ttl })
    }

    /// A lease's remaining and granted TTL, as the leader counts them: TTL -1 if unknown.
    pub fn time_to_live(&self, req: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        self.proposer.wait_applied()?;
        let header = self.identity.header_at(self.store.current_revision());
        Ok(match self.lessor.time_to_live(req.id, req.keys) {
            Some(t) => {
                LeaseTimeToLiveResponse { header, id: req.id, ttl: t.remaining, granted_ttl: t.granted, keys: t.keys }
            }
            None => LeaseTimeToLiveResponse { header, id: req.id, ttl: -1, ..Default::default() },
        })
    }

    /// This member's HashKV at `req.revision` (0: now), the one implementation behind the
    /// client call ([`crate::Node::hash_kv`]) and the peer call: etcd's peer handler answers
    /// with `HashByRev` too, learners included, whoever leads.
    pub fn hash_kv(&self, req: &HashKvRequest) -> Result<HashKvResponse> {
        let h = self.store.hash_kv(req.revision)?;
        Ok(HashKvResponse {
            header: self.identity.header_at(h.current_rev),
            hash: h.hash,
            compact_revision: h.compact_rev,
        })
    }
}

fn peer_error(e: Error) -> peer_response::Response {
    peer_response::Response::Error(PeerError { code: e.code().as_u32(), message: e.to_string() })
}

impl crate::transport::PeerServices for PeerService {
    fn handle(&self, from: u64, request: PeerRequest) -> PeerResponse {
        use peer_request::Request as Call;
        use peer_response::Response as Answer;
        let answer = match request.request {
            Some(Call::HashKv(req)) => self.hash_kv(&req).map(Answer::HashKv),
            // Lease calls are the leader's alone: a caller that reached a former leader is told
            // so and asks the new one.
            Some(Call::KeepAlive(_) | Call::TimeToLive(_)) if !self.identity.is_leader() => {
                log::debug!("forwarded request from {from:x} reached a non-leader");
                Err(Error::LeaderChanged)
            }
            Some(Call::KeepAlive(req)) => self.keep_alive(&req).map(Answer::KeepAlive),
            Some(Call::TimeToLive(req)) => self.time_to_live(&req).map(Answer::TimeToLive),
            None => Err(Error::Decode { what: "peer request", detail: "empty".into() }),
        };
        PeerResponse { response: Some(answer.unwrap_or_else(peer_error)) }
    }

    fn membership(&self) -> MembershipRecord {
        self.membership.read().record()
    }
}
