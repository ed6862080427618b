//! etcd's Election service's unary calls (`v3election/election.go` over
//! `concurrency/election.go`): the leader of election `name` is the candidate whose key
//! under `name/` (`name/<lease in hex>`, its value the candidate's proposal) was created
//! first. `Campaign` puts the candidate's key and waits until every older one is gone;
//! `Proclaim` changes the leader's value while its key is the one it won with; `Resign` deletes
//! it; `Leader` reads it. A leader is named by its [`LeaderKey`]: the key and its create
//! revision, so a key deleted and put again under the same lease is a new candidate.
//! `Observe` is [`super::observe`].
//!
//! `Campaign` runs on the thread of the call (a pool thread for the protocols) until it wins
//! or its caller leaves ([`Cancel`]); one that leaves resigns, as etcd's does when its
//! context ends.

use super::recipes::{by_creation, created_at, prefix, put_op, range_kvs, range_op, relayed, session_key};
use super::Service;
use crate::pb::request_op::Request;
use crate::pb::*;
use crate::wait::Cancel;
use crate::{Error, Result};

impl Service {
    /// Campaigns in election `req.name` with `req.value` on `req.lease` (a new 60 s lease if
    /// 0), until elected or `cancel` fires. A lease already campaigning keeps its place and
    /// proclaims the new value if it differs.
    pub fn campaign(&self, req: CampaignRequest, cancel: &Cancel) -> Result<CampaignResponse> {
        let lease = self.session(req.lease)?;
        let prefix = prefix(&req.name);
        let key = session_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put_op(&key, &req.value, lease)],
            failure: vec![range_op(RangeRequest::key(key.clone()))],
        };
        let resp = self.node.txn(txn).map_err(relayed)?;
        let mut leader = LeaderKey { name: req.name, key, rev: resp.header.map_or(0, |h| h.revision), lease };
        if !resp.succeeded {
            if let Some(kv) = range_kvs(&resp, 0).first() {
                leader.rev = kv.create_revision;
                if kv.value != req.value {
                    if let Err(e) = self.proclaim_as(&leader, &req.value) {
                        // The campaign is given up whole, as etcd's.
                        let _ = self.resign_as(&leader);
                        return Err(e);
                    }
                }
            }
        }
        if let Err(e) = self.wait_deletes(&prefix, leader.rev - 1, cancel) {
            // A caller that left resigns; one that failed otherwise keeps its key, as etcd's.
            if matches!(e, Error::Canceled | Error::Stopped) {
                if let Err(undone) = self.resign_as(&leader) {
                    log::warn!("election: cannot resign a campaign given up: {undone}");
                }
            }
            return Err(e);
        }
        // The header of the put: etcd's answer says when the candidate queued, not when it won.
        Ok(CampaignResponse { header: resp.header, leader: Some(leader) })
    }

    /// Sets the leader's value, if `req.leader` still leads (`election: not leader` if not).
    /// The key is put with the leader's lease, or a new 60 s one if it names none, as etcd's.
    pub fn proclaim(&self, req: ProclaimRequest) -> Result<ProclaimResponse> {
        let mut leader = req.leader.ok_or(Error::MissingLeaderKey)?;
        leader.lease = self.session(leader.lease)?;
        Ok(ProclaimResponse { header: self.proclaim_as(&leader, &req.value)? })
    }

    /// Gives up leadership (or a campaign): deletes the leader's key if it is still the one
    /// it won with. Answers success either way, as etcd's does.
    pub fn resign(&self, req: ResignRequest) -> Result<ResignResponse> {
        let leader = req.leader.ok_or(Error::MissingLeaderKey)?;
        // etcd makes a session for the call, granting a lease nobody uses if it names none.
        self.session(leader.lease)?;
        Ok(ResignResponse { header: self.resign_as(&leader)? })
    }

    /// The current leader's key and value; `election: no leader` while nobody campaigns.
    pub fn leader(&self, req: LeaderRequest) -> Result<LeaderResponse> {
        let resp = self.node.range(by_creation(&prefix(&req.name), 1)).map_err(relayed)?;
        let kv = resp.kvs.into_iter().next().ok_or(Error::ElectionNoLeader)?;
        Ok(LeaderResponse { header: resp.header, kv: Some(kv) })
    }

    /// etcd's `Election.Proclaim`: puts `value` on the leader's key with its lease if the key
    /// is the one created at its revision.
    fn proclaim_as(&self, leader: &LeaderKey, value: &[u8]) -> Result<Option<ResponseHeader>> {
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![put_op(&leader.key, value, leader.lease)],
            failure: Vec::new(),
        };
        let resp = self.node.txn(txn).map_err(relayed)?;
        if !resp.succeeded {
            return Err(Error::ElectionNotLeader);
        }
        Ok(resp.header)
    }

    /// etcd's `Election.Resign`: deletes the leader's key if it is the one created at its
    /// revision.
    fn resign_as(&self, leader: &LeaderKey) -> Result<Option<ResponseHeader>> {
        let delete = DeleteRangeRequest::key(leader.key.clone());
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![RequestOp { request: Some(Request::RequestDeleteRange(delete)) }],
            failure: Vec::new(),
        };
        Ok(self.node.txn(txn).map_err(relayed)?.header)
    }
}
