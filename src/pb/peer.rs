//! raftkv's peer protocol beyond raft's messages: calls a member forwards to the leader, and
//! the HashKV a member asks each peer for (etcd's `/members/hashkv`).
//! Compatibility rule: members of two adjacent raftkv versions talk to each other (a member
//! that does not know a request answers it with an error, which its caller logs and skips).

use prost::{Message, Oneof};

use super::etcd::*;

/// A request a member makes of a peer over the peer transport (etcd makes them over its peer
/// HTTP API): lease calls only the leader can answer, and any member's HashKV.
#[derive(Clone, PartialEq, Message)]
pub struct PeerRequest {
    #[prost(oneof = "peer_request::Request", tags = "1, 2, 3")]
    pub request: Option<peer_request::Request>,
}

pub mod peer_request {
    use super::*;
    #[derive(Clone, PartialEq, Oneof)]
    pub enum Request {
        #[prost(message, tag = "1")]
        KeepAlive(LeaseKeepAliveRequest),
        #[prost(message, tag = "2")]
        TimeToLive(LeaseTimeToLiveRequest),
        /// The corruption checks' question: this member's HashKV at a revision.
        #[prost(message, tag = "3")]
        HashKv(HashKvRequest),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct PeerResponse {
    #[prost(oneof = "peer_response::Response", tags = "1, 2, 3, 4")]
    pub response: Option<peer_response::Response>,
}

pub mod peer_response {
    use super::*;
    #[derive(Clone, PartialEq, Oneof)]
    pub enum Response {
        #[prost(message, tag = "1")]
        KeepAlive(LeaseKeepAliveResponse),
        #[prost(message, tag = "2")]
        TimeToLive(LeaseTimeToLiveResponse),
        /// The peer's error: its etcd message and gRPC code.
        #[prost(message, tag = "3")]
        Error(PeerError),
        #[prost(message, tag = "4")]
        HashKv(HashKvResponse),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct PeerError {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}
