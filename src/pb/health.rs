//! gRPC's health checking protocol (`grpc.health.v1`, `grpc/health/v1/health.proto`), which
//! etcd serves beside its own API. Compatibility rule: gRPC's, never changed.

use prost::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    /// Only for the streaming `Watch`, which raftkv does not serve.
    ServiceUnknown = 3,
}

/// `grpc.health.v1.HealthCheckRequest`: the service to check, `""` for the whole server.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub status: i32,
}
