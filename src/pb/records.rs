//! Records raftkv keeps in its own column families (leases, membership). Compatibility rule: a
//! data dir written by one raftkv version opens in the next.

use prost::Message;

use super::etcd::Member;

/// A lease as stored in the `lease` column family (etcd's `leasepb.Lease`).
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Last checkpointed remaining TTL; 0 = full TTL.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// The cluster's membership as stored in the `meta` family: current members, and the ids of
/// removed members, which may never come back (etcd's `removed_member` bucket).
#[derive(Clone, PartialEq, Message)]
pub struct MembershipRecord {
    #[prost(message, repeated, tag = "1")]
    pub members: Vec<Member>,
    #[prost(uint64, repeated, tag = "2")]
    pub removed: Vec<u64>,
}
