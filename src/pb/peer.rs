//! raftkv's peer protocol beyond raft's messages: calls a member forwards to the leader.
//! Compatibility rule: members of two adjacent raftkv versions talk to each other.

use prost::{Message, Oneof};

use super::etcd::*;

/// A request a member forwards to the leader over the peer transport: lease calls only the
/// leader can answer (etcd forwards them over its peer HTTP API).
#[derive(Clone, PartialEq, Message)]
pub struct PeerRequest {
    #[prost(oneof = "peer_request::Request", tags = "1, 2")]
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
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct PeerResponse {
    #[prost(oneof = "peer_response::Response", tags = "1, 2, 3")]
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
        /// The leader's error: its etcd message and gRPC code.
        #[prost(message, tag = "3")]
        Error(PeerError),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct PeerError {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}
