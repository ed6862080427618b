//! Who this member is, and the header every answer carries: cluster id, member id and the
//! raft term now (read from the raft thread's [`RaftStatus`] without a lock). Shared by the
//! applier, the node API and the peer service; no thread of its own.

use std::sync::Arc;

use crate::pb::ResponseHeader;
use crate::raft::RaftStatus;

pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
    raft: Arc<RaftStatus>,
}

impl Identity {
    pub fn new(member_id: u64, cluster_id: u64, raft: Arc<RaftStatus>) -> Identity {
        Identity { member_id, cluster_id, raft }
    }

    /// The raft thread's latest term, leader and commit index.
    pub fn raft(&self) -> &RaftStatus {
        &self.raft
    }

    pub fn is_leader(&self) -> bool {
        self.raft.leader_id() == self.member_id
    }

    /// A response header at `revision` from this member.
    pub fn header_at(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader { revision, ..Default::default() });
        self.fill_header(&mut header);
        header
    }

    /// Completes a response header with this member's identity and the raft term.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id;
        h.member_id = self.member_id;
        h.raft_term = self.raft.term();
    }
}
