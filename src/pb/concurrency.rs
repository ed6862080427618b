//! etcd's lock and election services' wire types (`v3lockpb`, `v3electionpb`:
//! `etcdserver/api/v3lock/v3lockpb/v3lock.proto`, `etcdserver/api/v3election/v3electionpb/
//! v3election.proto`), with etcd's field names and numbers. Compatibility rule: etcd's, never
//! changed.

use prost::Message;

use super::{KeyValue, ResponseHeader};

/// Acquires the lock `name`, held by the key it answers with until that key is deleted
/// (`Unlock`) or its lease ends (`v3lockpb.LockRequest`).
#[derive(Clone, PartialEq, Message)]
pub struct LockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The lease the lock's key is attached to; 0 grants one of 60 s that nobody renews.
    #[prost(int64, tag = "2")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct LockResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The key that holds the lock: `name/<lease in hex>`.
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UnlockRequest {
    /// The key a `Lock` answered with.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UnlockResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// Waits to become the leader of election `name`, proposing `value`
/// (`v3electionpb.CampaignRequest`).
#[derive(Clone, PartialEq, Message)]
pub struct CampaignRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The lease of the candidate's key; 0 grants one of 60 s that nobody renews.
    #[prost(int64, tag = "2")]
    pub lease: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CampaignResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub leader: Option<LeaderKey>,
}

/// What names a won election to the calls a leader makes (proclaim, resign).
#[derive(Clone, PartialEq, Message)]
pub struct LeaderKey {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    /// The create revision of `key`: leadership is that key at that revision.
    #[prost(int64, tag = "3")]
    pub rev: i64,
    #[prost(int64, tag = "4")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct LeaderRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LeaderResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The leader's key and value.
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResignRequest {
    #[prost(message, optional, tag = "1")]
    pub leader: Option<LeaderKey>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResignResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProclaimRequest {
    #[prost(message, optional, tag = "1")]
    pub leader: Option<LeaderKey>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProclaimResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}
