//! The one table of etcd's RPCs: each method with its gRPC path, its gateway paths, its shape
//! and where it runs. The gateway's router, the gRPC router and the client read it, so a path
//! is written once.

/// An etcd v3 call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    Snapshot,
    HashKv,
    MoveLeader,
    AuthEnable,
    AuthDisable,
    Authenticate,
    AuthUserAdd,
    AuthUserGet,
    AuthUserList,
    AuthUserDelete,
    AuthUserChangePassword,
    AuthUserGrantRole,
    AuthUserRevokeRole,
    AuthRoleAdd,
    AuthRoleGet,
    AuthRoleList,
    AuthRoleDelete,
    AuthRoleGrantPermission,
    AuthRoleRevokePermission,
    HealthCheck,
    Lock,
    Unlock,
    Campaign,
    Proclaim,
    Leader,
    Observe,
    Resign,
}

/// How a call's messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One request, one response.
    Unary,
    /// Requests and responses in both directions (watch, lease keepalive).
    Bidi,
    /// One request, a stream of responses (snapshot, an election's observers).
    ServerStream,
}

/// Where a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// On the adapter's thread without blocking, answered by the raft or apply thread: the
    /// key-value calls.
    Loop,
    /// On a pool, blocking at most the member's request timeout.
    Pool,
    /// On a pool, for as long as other clients take (a lock's holder, an election's leader),
    /// so until its caller leaves: the adapter hands it a [`crate::wait::Cancel`].
    Waits,
}

impl Kind {
    /// Whether the call's answer is a stream of messages.
    pub fn streams(self) -> bool {
        self != Kind::Unary
    }
}

pub struct Rpc {
    pub method: Method,
    /// `/<package>.<Service>/<Method>`, the HTTP/2 path gRPC calls it by.
    pub grpc: &'static str,
    /// Below `/v3/` (also served below `/v3beta/`), the first the canonical one; none for a
    /// call served over gRPC only.
    pub gateway: &'static [&'static str],
    pub kind: Kind,
    pub runs: Runs,
}

const fn unary(method: Method, grpc: &'static str, gateway: &'static [&'static str], runs: Runs) -> Rpc {
    Rpc { method, grpc, gateway, kind: Kind::Unary, runs }
}

const fn bidi(method: Method, grpc: &'static str, gateway: &'static [&'static str]) -> Rpc {
    Rpc { method, grpc, gateway, kind: Kind::Bidi, runs: Runs::Pool }
}

const fn server_stream(method: Method, grpc: &'static str, gateway: &'static [&'static str]) -> Rpc {
    Rpc { method, grpc, gateway, kind: Kind::ServerStream, runs: Runs::Pool }
}

use Method::*;
use Runs::{Loop, Pool, Waits};

pub static RPCS: &[Rpc] = &[
    unary(Range, "/etcdserverpb.KV/Range", &["kv/range"], Loop),
    unary(Put, "/etcdserverpb.KV/Put", &["kv/put"], Loop),
    unary(DeleteRange, "/etcdserverpb.KV/DeleteRange", &["kv/deleterange"], Loop),
    unary(Txn, "/etcdserverpb.KV/Txn", &["kv/txn"], Loop),
    unary(Compact, "/etcdserverpb.KV/Compact", &["kv/compaction"], Pool),
    bidi(Watch, "/etcdserverpb.Watch/Watch", &["watch"]),
    unary(LeaseGrant, "/etcdserverpb.Lease/LeaseGrant", &["lease/grant"], Pool),
    unary(LeaseRevoke, "/etcdserverpb.Lease/LeaseRevoke", &["lease/revoke", "kv/lease/revoke"], Pool),
    bidi(LeaseKeepAlive, "/etcdserverpb.Lease/LeaseKeepAlive", &["lease/keepalive"]),
    unary(LeaseTimeToLive, "/etcdserverpb.Lease/LeaseTimeToLive", &["lease/timetolive", "kv/lease/timetolive"], Pool),
    unary(LeaseLeases, "/etcdserverpb.Lease/LeaseLeases", &["lease/leases", "kv/lease/leases"], Pool),
    unary(MemberAdd, "/etcdserverpb.Cluster/MemberAdd", &["cluster/member/add"], Pool),
    unary(MemberRemove, "/etcdserverpb.Cluster/MemberRemove", &["cluster/member/remove"], Pool),
    unary(MemberUpdate, "/etcdserverpb.Cluster/MemberUpdate", &["cluster/member/update"], Pool),
    unary(MemberList, "/etcdserverpb.Cluster/MemberList", &["cluster/member/list"], Pool),
    unary(MemberPromote, "/etcdserverpb.Cluster/MemberPromote", &["cluster/member/promote"], Pool),
    unary(Alarm, "/etcdserverpb.Maintenance/Alarm", &["maintenance/alarm"], Pool),
    unary(Status, "/etcdserverpb.Maintenance/Status", &["maintenance/status"], Pool),
    unary(Defragment, "/etcdserverpb.Maintenance/Defragment", &["maintenance/defragment"], Pool),
    unary(Hash, "/etcdserverpb.Maintenance/Hash", &["maintenance/hash"], Pool),
    server_stream(Snapshot, "/etcdserverpb.Maintenance/Snapshot", &["maintenance/snapshot"]),
    // No gateway path: etcd 3.4's gateway gives HashKV Hash's, where Hash is found first
    // (3.5.10 moved it to `maintenance/hashkv`, etcd #16490).
    unary(HashKv, "/etcdserverpb.Maintenance/HashKV", &[], Pool),
    unary(MoveLeader, "/etcdserverpb.Maintenance/MoveLeader", &["maintenance/transfer-leadership"], Pool),
    unary(AuthEnable, "/etcdserverpb.Auth/AuthEnable", &["auth/enable"], Pool),
    unary(AuthDisable, "/etcdserverpb.Auth/AuthDisable", &["auth/disable"], Pool),
    unary(Authenticate, "/etcdserverpb.Auth/Authenticate", &["auth/authenticate"], Pool),
    unary(AuthUserAdd, "/etcdserverpb.Auth/UserAdd", &["auth/user/add"], Pool),
    unary(AuthUserGet, "/etcdserverpb.Auth/UserGet", &["auth/user/get"], Pool),
    unary(AuthUserList, "/etcdserverpb.Auth/UserList", &["auth/user/list"], Pool),
    unary(AuthUserDelete, "/etcdserverpb.Auth/UserDelete", &["auth/user/delete"], Pool),
    unary(AuthUserChangePassword, "/etcdserverpb.Auth/UserChangePassword", &["auth/user/changepw"], Pool),
    unary(AuthUserGrantRole, "/etcdserverpb.Auth/UserGrantRole", &["auth/user/grant"], Pool),
    unary(AuthUserRevokeRole, "/etcdserverpb.Auth/UserRevokeRole", &["auth/user/revoke"], Pool),
    unary(AuthRoleAdd, "/etcdserverpb.Auth/RoleAdd", &["auth/role/add"], Pool),
    unary(AuthRoleGet, "/etcdserverpb.Auth/RoleGet", &["auth/role/get"], Pool),
    unary(AuthRoleList, "/etcdserverpb.Auth/RoleList", &["auth/role/list"], Pool),
    unary(AuthRoleDelete, "/etcdserverpb.Auth/RoleDelete", &["auth/role/delete"], Pool),
    unary(AuthRoleGrantPermission, "/etcdserverpb.Auth/RoleGrantPermission", &["auth/role/grant"], Pool),
    unary(AuthRoleRevokePermission, "/etcdserverpb.Auth/RoleRevokePermission", &["auth/role/revoke"], Pool),
    // gRPC's own health service, which etcd registers beside its API (no gateway path).
    unary(HealthCheck, "/grpc.health.v1.Health/Check", &[], Pool),
    // etcd's concurrency services (`v3lockpb`, `v3electionpb`), registered beside its API on
    // the client port and in its gateway.
    unary(Lock, "/v3lockpb.Lock/Lock", &["lock/lock"], Waits),
    unary(Unlock, "/v3lockpb.Lock/Unlock", &["lock/unlock"], Pool),
    unary(Campaign, "/v3electionpb.Election/Campaign", &["election/campaign"], Waits),
    unary(Proclaim, "/v3electionpb.Election/Proclaim", &["election/proclaim"], Pool),
    unary(Leader, "/v3electionpb.Election/Leader", &["election/leader"], Pool),
    server_stream(Observe, "/v3electionpb.Election/Observe", &["election/observe"]),
    unary(Resign, "/v3electionpb.Election/Resign", &["election/resign"], Pool),
];

impl Method {
    /// Whether etcd resolves the caller's credentials for this call (`AuthInfoFromCtx`: every
    /// call through raft or with a permission check), so that a bad token refuses it. The
    /// others (lease keepalive and time-to-live, lease and member lists, status, move-leader,
    /// health) run whatever the client sent.
    pub fn checks_caller(self) -> bool {
        !matches!(self, LeaseKeepAlive | LeaseTimeToLive | LeaseLeases | MemberList | Status | MoveLeader | HealthCheck)
    }

    /// Whether etcd's handler answers an auth error of this call unconverted
    /// ([`crate::Error::Unconverted`]): its maintenance calls that resolve the caller.
    pub fn leaks_auth_errors(self) -> bool {
        matches!(self, Alarm | Defragment | Hash | HashKv | Snapshot)
    }

    pub fn rpc(self) -> &'static Rpc {
        RPCS.iter().find(|r| r.method == self).expect("every method is in the table")
    }

    /// The gateway path a client calls it by.
    pub fn gateway_path(self) -> String {
        format!("/v3/{}", self.rpc().gateway[0])
    }
}

/// The call at a gateway path (`/v3/...` or its `/v3beta/...` alias).
pub fn by_gateway_path(path: &str) -> Option<&'static Rpc> {
    let rest = path.strip_prefix("/v3/").or_else(|| path.strip_prefix("/v3beta/"))?;
    RPCS.iter().find(|rpc| rpc.gateway.contains(&rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_once_and_every_path_once() {
        let mut paths = std::collections::HashSet::new();
        for rpc in RPCS {
            assert!(std::ptr::eq(rpc.method.rpc(), rpc), "{:?} twice", rpc.method);
            assert!(paths.insert(rpc.grpc), "{}", rpc.grpc);
            for path in rpc.gateway {
                assert!(paths.insert(path), "{path}");
            }
        }
        assert_eq!(by_gateway_path("/v3beta/kv/lease/revoke").map(|r| r.method), Some(LeaseRevoke));
        // etcd 3.4 serves `/v3beta/` as `/v3/` for every gateway path (`embed/serve.go`).
        assert_eq!(by_gateway_path("/v3beta/election/observe").map(|r| r.method), Some(Observe));
        assert_eq!(by_gateway_path("/v3/kv/range/").map(|r| r.method), None);
        assert_eq!(Range.gateway_path(), "/v3/kv/range");
    }
}
