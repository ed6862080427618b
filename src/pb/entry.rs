//! The payload of raft log entries: what a member proposes and every member applies.
//! Compatibility rule: an entry written by one raftkv version is applied by the next, so a
//! field number, once used, keeps its meaning.

use prost::{Message, Oneof};

use super::auth::*;
use super::etcd::*;

/// The payload of a raft log entry: one client write with the id its waiter is registered under.
/// Field numbers follow etcd's `InternalRaftRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct InternalRequest {
    /// Request id; the proposing member's waiter for the result is keyed by it.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Who asked (etcd's `RequestHeader`): every client proposal has one, its user name empty
    /// when the client gave no credentials; the member's own proposals (lease expiry,
    /// compaction, publish) have none and are applied unchecked, as etcd's `WithRoot` ones.
    #[prost(message, optional, tag = "100")]
    pub header: Option<RequestHeader>,
    #[prost(
        oneof = "internal_request::Request",
        tags = "4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 1000, 1011, 1012, 1100, 1101, 1103, 1104, 1105, 1200, 1201, 1203, 1204"
    )]
    pub request: Option<internal_request::Request>,
}

pub mod internal_request {
    use super::*;
    #[derive(Clone, PartialEq, Oneof)]
    pub enum Request {
        #[prost(message, tag = "4")]
        Put(PutRequest),
        #[prost(message, tag = "5")]
        DeleteRange(DeleteRangeRequest),
        #[prost(message, tag = "6")]
        Txn(TxnRequest),
        #[prost(message, tag = "7")]
        Compaction(CompactionRequest),
        #[prost(message, tag = "8")]
        LeaseGrant(LeaseGrantRequest),
        #[prost(message, tag = "9")]
        LeaseRevoke(LeaseRevokeRequest),
        /// Lists, raises or clears an alarm (every action goes through raft, as in etcd).
        #[prost(message, tag = "10")]
        Alarm(AlarmRequest),
        #[prost(message, tag = "11")]
        LeaseCheckpoint(LeaseCheckpointRequest),
        /// A member's name and client URLs, published by the member itself after it starts
        /// (etcd's `publish`), so every member lists them.
        #[prost(message, tag = "20")]
        MemberAttributes(Member),
        /// New peer URLs for a member: no raft configuration change, only the member record.
        #[prost(message, tag = "21")]
        MemberUpdate(MemberUpdateRequest),
        /// The auth store's changes, with etcd's tags. The reads (user/role get and list) are
        /// served after a linearizable barrier instead of a log entry.
        #[prost(message, tag = "1000")]
        AuthEnable(EmptyRequest),
        #[prost(message, tag = "1011")]
        AuthDisable(EmptyRequest),
        #[prost(message, tag = "1012")]
        Authenticate(InternalAuthenticateRequest),
        #[prost(message, tag = "1100")]
        AuthUserAdd(AuthUserAddRequest),
        #[prost(message, tag = "1101")]
        AuthUserDelete(AuthUserRequest),
        #[prost(message, tag = "1103")]
        AuthUserChangePassword(AuthUserChangePasswordRequest),
        #[prost(message, tag = "1104")]
        AuthUserGrantRole(AuthUserGrantRoleRequest),
        #[prost(message, tag = "1105")]
        AuthUserRevokeRole(AuthUserRevokeRoleRequest),
        #[prost(message, tag = "1200")]
        AuthRoleAdd(AuthRoleAddRequest),
        #[prost(message, tag = "1201")]
        AuthRoleDelete(AuthRoleRequest),
        #[prost(message, tag = "1203")]
        AuthRoleGrantPermission(AuthRoleGrantPermissionRequest),
        #[prost(message, tag = "1204")]
        AuthRoleRevokePermission(AuthRoleRevokePermissionRequest),
    }
}

/// etcd's `RequestHeader` of a raft entry: the caller's user and the auth revision its
/// credentials were checked at, which the apply thread checks permissions with.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RequestHeader {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub username: String,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

/// etcd's `InternalAuthenticateRequest`: the password was checked by the member that took
/// the call, so only the name and the token's random prefix are in the log.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct InternalAuthenticateRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub simple_token: String,
}

/// The `context` of a raft `ConfChange`: who proposed it (to wake the caller) and the member it
/// is about, so that every member records the same URLs.
#[derive(Clone, PartialEq, Message)]
pub struct ConfChangeContext {
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    #[prost(message, optional, tag = "2")]
    pub member: Option<Member>,
}

impl internal_request::Request {
    /// The request as etcd's slow-request warnings print it (`InternalRaftStringer`,
    /// protobuf text): its kind, keys and sizes, never a value or a password. Only for logs.
    pub fn summary(&self) -> String {
        use internal_request::Request::*;
        match self {
            Put(r) => format!("put:<key:{} value_size:{} lease:{} >", text_bytes(&r.key), r.value.len(), r.lease),
            DeleteRange(r) => {
                format!("delete_range:<key:{} range_end:{} >", text_bytes(&r.key), text_bytes(&r.range_end))
            }
            Txn(r) => format!(
                "txn:<compare_size:{} success_size:{} failure_size:{} >",
                r.compare.len(),
                r.success.len(),
                r.failure.len()
            ),
            Compaction(r) => format!("compaction:<revision:{} >", r.revision),
            LeaseGrant(r) => format!("lease_grant:<ttl:{}-second id:{:x} >", r.ttl, r.id),
            LeaseRevoke(r) => format!("lease_revoke:<id:{:x} >", r.id),
            // The rest by kind alone: an auth change's fields include passwords.
            other => {
                let debug = format!("{other:?}");
                debug.split('(').next().unwrap_or_default().to_string()
            }
        }
    }
}

/// Bytes as protobuf's text format quotes them, cut at 64 bytes for a log line.
fn text_bytes(b: &[u8]) -> String {
    const SHOWN: usize = 64;
    let shown = String::from_utf8_lossy(&b[..b.len().min(SHOWN)]).escape_debug().to_string();
    let cut = if b.len() > SHOWN { "..." } else { "" };
    format!("\"{shown}{cut}\"")
}
