//! The cluster calls: member list, add, remove, promote and update (raft configuration changes
//! checked by etcd's rules first), and leadership transfer.

use std::time::{Duration, Instant};

use crossbeam::channel;
use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType};

use super::{unexpected, Node, Origin};
use crate::apply::Response;
use crate::cluster::Change;
use crate::config::Config;
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::raft::RaftRequest;
use crate::server::propose::wait_on;
use crate::{Error, Result};

/// How often a leadership transfer is asked for again while the target has not taken over.
const TRANSFER_POLL: Duration = Duration::from_millis(50);

impl Node {
    /// The members of the cluster (etcd `MemberList`). The header has no revision, as etcd's.
    pub fn member_list(&self) -> MemberListResponse {
        MemberListResponse { header: self.bare_header(), members: self.inner.membership.read().members() }
    }

    /// Adds a member (etcd `MemberAdd`); it then starts with `--initial-cluster-state existing`.
    /// Its id comes from its peer URLs and the time, as etcd's, so a removed member's URLs can
    /// be used again by a new member.
    pub fn member_add(&self, req: MemberAddRequest) -> Result<MemberAddResponse> {
        // etcd's `checkMembershipOperationPermission`.
        self.check_admin()?;
        crate::cluster::check_urls(&req.peer_urls)?;
        // etcd's `NewMember` mixes in the Unix time in whole seconds (with an empty cluster
        // name), so adding the same URLs again within the second they were added or removed
        // gives the same id, and etcd's "member ID already exist"/"member not found" answers
        // (finer time would answer "Peer URLs already exists", which etcd never does then).
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let member = Member {
            id: Config::member_id_for(&req.peer_urls, &now.to_string()),
            peer_urls: req.peer_urls,
            is_learner: req.is_learner,
            ..Default::default()
        };
        let (change, cc_type) = if req.is_learner {
            (Change::AddLearner, ConfChangeType::AddLearnerNode)
        } else {
            (Change::AddVoter, ConfChangeType::AddNode)
        };
        let (member, members) = self.change_membership(change, cc_type, member)?;
        Ok(MemberAddResponse { header: self.bare_header(), member, members })
    }

    /// Removes a member (etcd `MemberRemove`). A removed member stops, and its id is never
    /// accepted again.
    pub fn member_remove(&self, req: MemberRemoveRequest) -> Result<MemberListResponse> {
        // etcd's `checkMembershipOperationPermission`.
        self.check_admin()?;
        let member = Member { id: req.id, ..Default::default() };
        let (_, members) = self.change_membership(Change::Remove, ConfChangeType::RemoveNode, member)?;
        Ok(MemberListResponse { header: self.bare_header(), members })
    }

    /// Makes a learner a voter (etcd `MemberPromote`) once it has caught up with the leader.
    pub fn member_promote(&self, req: MemberPromoteRequest) -> Result<MemberListResponse> {
        // etcd's `checkMembershipOperationPermission`.
        self.check_admin()?;
        self.check_learner_ready(req.id)?;
        let member = Member { id: req.id, ..Default::default() };
        let (_, members) = self.change_membership(Change::Promote, ConfChangeType::AddNode, member)?;
        Ok(MemberListResponse { header: self.bare_header(), members })
    }

    /// Changes a member's peer URLs (etcd `MemberUpdate`).
    pub fn member_update(&self, req: MemberUpdateRequest) -> Result<MemberListResponse> {
        // etcd's `checkMembershipOperationPermission`.
        self.check_admin()?;
        self.inner.membership.read().check_update(req.id, &req.peer_urls)?;
        match self.propose(Origin::Client, Request::MemberUpdate(req))? {
            Response::Members { members, .. } => Ok(MemberListResponse { header: self.bare_header(), members }),
            other => Err(unexpected(other)),
        }
    }

    /// Hands leadership to `target_id` (etcd `MoveLeader`); only the leader can, and it answers
    /// once the target leads.
    pub fn move_leader(&self, req: MoveLeaderRequest) -> Result<MoveLeaderResponse> {
        let inner = &self.inner;
        if !inner.identity.is_leader() {
            return Err(Error::NotLeader);
        }
        let is_voter = inner.membership.read().get(req.target_id).is_some_and(|m| !m.is_learner);
        if !is_voter {
            return Err(Error::BadLeaderTransferee);
        }
        let deadline = inner.proposer.deadline();
        while inner.identity.raft().leader_id() != req.target_id {
            if Instant::now() >= deadline {
                return Err(Error::LeaderTransferTimeout);
            }
            // Repeated each round: raft-rs forgets a transfer that did not finish within an
            // election timeout.
            let _ = inner.proposer.try_ask(RaftRequest::TransferLeader { target: req.target_id });
            std::thread::sleep(TRANSFER_POLL);
        }
        Ok(MoveLeaderResponse { header: self.bare_header() })
    }

    /// etcd's `isLearnerReady`: a learner may be promoted once it has at least 90% of the
    /// leader's log. Only the leader knows; elsewhere the check is left to the leader's
    /// apply-time rules.
    fn check_learner_ready(&self, id: u64) -> Result<()> {
        let proposer = &self.inner.proposer;
        let (reply, progress) = channel::bounded(1);
        if proposer.ask(RaftRequest::Progress { reply }, proposer.deadline()).is_err() {
            return Err(Error::Stopped);
        }
        let (_, matched) = progress.recv_deadline(proposer.deadline()).map_err(|_| Error::Timeout)?;
        let leader_match = matched.iter().find(|(m, _)| *m == self.member_id()).map(|(_, i)| *i);
        let learner_match = matched.iter().find(|(m, _)| *m == id).map(|(_, i)| *i);
        match (leader_match, learner_match) {
            (Some(leader), Some(learner)) if (learner as f64) < leader as f64 * 0.9 => Err(Error::LearnerNotReady),
            _ => Ok(()),
        }
    }

    /// Checks and proposes a raft configuration change, and waits until it is applied.
    fn change_membership(
        &self,
        change: Change,
        cc_type: ConfChangeType,
        member: Member,
    ) -> Result<(Option<Member>, Vec<Member>)> {
        let proposer = &self.inner.proposer;
        // Check against every change already committed: a member add that returned through a
        // follower may not be applied on the leader yet, and its duplicate must still be refused.
        proposer.wait_applied()?;
        self.inner.membership.read().check(change, &member)?;
        let id = proposer.ids.next();
        let mut cc = ConfChange::default();
        cc.set_change_type(cc_type);
        cc.node_id = member.id;
        cc.context = ConfChangeContext { request_id: id, member: Some(member) }.encode_to_vec().into();
        match wait_on(|reply| proposer.propose_conf_change(id, cc, reply))? {
            Response::Members { member, members } => Ok((member, members)),
            other => Err(unexpected(other)),
        }
    }
}
