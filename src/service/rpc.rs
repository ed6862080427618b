//! The one table of etcd's RPCs: each method with its gRPC path, its gateway paths and its
//! shape. The gateway's router, the coming gRPC router and the client read it, so a path is
//! written once.

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
}

/// How a call's messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One request, one response.
    Unary,
    /// Requests and responses in both directions (watch, lease keepalive).
    Bidi,
    /// One request, a stream of responses (snapshot).
    ServerStream,
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
    /// Whether the call may block its thread (it then runs on a pool): every call except the
    /// key-value ones, which start without blocking and are answered by the raft or apply
    /// thread.
    pub blocking: bool,
}

const fn unary(method: Method, grpc: &'static str, gateway: &'static [&'static str], blocking: bool) -> Rpc {
    Rpc { method, grpc, gateway, kind: Kind::Unary, blocking }
}

const fn bidi(method: Method, grpc: &'static str, gateway: &'static [&'static str]) -> Rpc {
    Rpc { method, grpc, gateway, kind: Kind::Bidi, blocking: true }
}

use Method::*;

pub static RPCS: &[Rpc] = &[
    unary(Range, "/etcdserverpb.KV/Range", &["kv/range"], false),
    unary(Put, "/etcdserverpb.KV/Put", &["kv/put"], false),
    unary(DeleteRange, "/etcdserverpb.KV/DeleteRange", &["kv/deleterange"], false),
    unary(Txn, "/etcdserverpb.KV/Txn", &["kv/txn"], false),
    unary(Compact, "/etcdserverpb.KV/Compact", &["kv/compaction"], true),
    bidi(Watch, "/etcdserverpb.Watch/Watch", &["watch"]),
    unary(LeaseGrant, "/etcdserverpb.Lease/LeaseGrant", &["lease/grant"], true),
    unary(LeaseRevoke, "/etcdserverpb.Lease/LeaseRevoke", &["lease/revoke", "kv/lease/revoke"], true),
    bidi(LeaseKeepAlive, "/etcdserverpb.Lease/LeaseKeepAlive", &["lease/keepalive"]),
    unary(LeaseTimeToLive, "/etcdserverpb.Lease/LeaseTimeToLive", &["lease/timetolive", "kv/lease/timetolive"], true),
    unary(LeaseLeases, "/etcdserverpb.Lease/LeaseLeases", &["lease/leases", "kv/lease/leases"], true),
    unary(MemberAdd, "/etcdserverpb.Cluster/MemberAdd", &["cluster/member/add"], true),
    unary(MemberRemove, "/etcdserverpb.Cluster/MemberRemove", &["cluster/member/remove"], true),
    unary(MemberUpdate, "/etcdserverpb.Cluster/MemberUpdate", &["cluster/member/update"], true),
    unary(MemberList, "/etcdserverpb.Cluster/MemberList", &["cluster/member/list"], true),
    unary(MemberPromote, "/etcdserverpb.Cluster/MemberPromote", &["cluster/member/promote"], true),
    unary(Alarm, "/etcdserverpb.Maintenance/Alarm", &["maintenance/alarm"], true),
    unary(Status, "/etcdserverpb.Maintenance/Status", &["maintenance/status"], true),
    unary(Defragment, "/etcdserverpb.Maintenance/Defragment", &["maintenance/defragment"], true),
    unary(Hash, "/etcdserverpb.Maintenance/Hash", &["maintenance/hash"], true),
    Rpc {
        method: Snapshot,
        grpc: "/etcdserverpb.Maintenance/Snapshot",
        gateway: &["maintenance/snapshot"],
        kind: Kind::ServerStream,
        blocking: true,
    },
    // No gateway path: etcd 3.4's gateway gives HashKV Hash's, where Hash is found first
    // (3.5.10 moved it to `maintenance/hashkv`, etcd #16490).
    unary(HashKv, "/etcdserverpb.Maintenance/HashKV", &[], true),
    unary(MoveLeader, "/etcdserverpb.Maintenance/MoveLeader", &["maintenance/transfer-leadership"], true),
    unary(AuthEnable, "/etcdserverpb.Auth/AuthEnable", &["auth/enable"], true),
    unary(AuthDisable, "/etcdserverpb.Auth/AuthDisable", &["auth/disable"], true),
    unary(Authenticate, "/etcdserverpb.Auth/Authenticate", &["auth/authenticate"], true),
    unary(AuthUserAdd, "/etcdserverpb.Auth/UserAdd", &["auth/user/add"], true),
    unary(AuthUserGet, "/etcdserverpb.Auth/UserGet", &["auth/user/get"], true),
    unary(AuthUserList, "/etcdserverpb.Auth/UserList", &["auth/user/list"], true),
    unary(AuthUserDelete, "/etcdserverpb.Auth/UserDelete", &["auth/user/delete"], true),
    unary(AuthUserChangePassword, "/etcdserverpb.Auth/UserChangePassword", &["auth/user/changepw"], true),
    unary(AuthUserGrantRole, "/etcdserverpb.Auth/UserGrantRole", &["auth/user/grant"], true),
    unary(AuthUserRevokeRole, "/etcdserverpb.Auth/UserRevokeRole", &["auth/user/revoke"], true),
    unary(AuthRoleAdd, "/etcdserverpb.Auth/RoleAdd", &["auth/role/add"], true),
    unary(AuthRoleGet, "/etcdserverpb.Auth/RoleGet", &["auth/role/get"], true),
    unary(AuthRoleList, "/etcdserverpb.Auth/RoleList", &["auth/role/list"], true),
    unary(AuthRoleDelete, "/etcdserverpb.Auth/RoleDelete", &["auth/role/delete"], true),
    unary(AuthRoleGrantPermission, "/etcdserverpb.Auth/RoleGrantPermission", &["auth/role/grant"], true),
    unary(AuthRoleRevokePermission, "/etcdserverpb.Auth/RoleRevokePermission", &["auth/role/revoke"], true),
    // gRPC's own health service, which etcd registers beside its API (no gateway path).
    unary(HealthCheck, "/grpc.health.v1.Health/Check", &[], true),
];

impl Method {
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
        assert_eq!(by_gateway_path("/v3/kv/range/").map(|r| r.method), None);
        assert_eq!(Range.gateway_path(), "/v3/kv/range");
    }
}
