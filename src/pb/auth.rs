//! etcd's Auth service wire types (`etcdserverpb.Auth*` in `api/etcdserverpb/rpc.proto`, and
//! `authpb`'s `Permission` and `UserAddOptions`), with etcd's field names and numbers.
//! Compatibility rule: etcd's, never changed (as [`super::etcd`]; a file of its own because the
//! service has as many messages as the rest of the API together).

use prost::Message;

use super::etcd::ResponseHeader;

/// The answers etcd defines with a header only (`AuthEnableResponse`, `AuthDisableResponse`,
/// `AuthUserAddResponse`, `AuthUserDeleteResponse`, `AuthUserChangePasswordResponse`,
/// `AuthUserGrantRoleResponse`, `AuthUserRevokeRoleResponse`, `AuthRoleAddResponse`,
/// `AuthRoleDeleteResponse`, `AuthRoleGrantPermissionResponse`,
/// `AuthRoleRevokePermissionResponse`): one type, since their encodings are equal.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct AuthHeaderResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// Logs a user in (`etcdserverpb.AuthenticateRequest`).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthenticateRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthenticateResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub token: String,
}

/// `authpb.UserAddOptions`.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

/// Creates a user (`etcdserverpb.AuthUserAddRequest`).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(message, optional, tag = "3")]
    pub options: Option<UserAddOptions>,
    /// etcd 3.5's field: the bcrypt hash the member that took the call puts in its proposal
    /// (with `password` cleared). Whatever a client sends here is overwritten.
    #[prost(string, tag = "4")]
    pub hashed_password: String,
}

/// Names one user: `etcdserverpb.AuthUserGetRequest` and `AuthUserDeleteRequest`, whose
/// encodings are equal.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthUserGetResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, repeated, tag = "2")]
    pub roles: Vec<String>,
}

/// `etcdserverpb.AuthUserChangePasswordRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserChangePasswordRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    /// As in [`AuthUserAddRequest::hashed_password`] (etcd 3.5's field 3).
    #[prost(string, tag = "3")]
    pub hashed_password: String,
}

/// `etcdserverpb.AuthUserGrantRoleRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserGrantRoleRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub role: String,
}

/// `etcdserverpb.AuthUserRevokeRoleRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserRevokeRoleRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub role: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthUserListResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, repeated, tag = "2")]
    pub users: Vec<String>,
}

/// Creates a role (`etcdserverpb.AuthRoleAddRequest`).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Names one role: `etcdserverpb.AuthRoleGetRequest` and `AuthRoleDeleteRequest`, whose
/// encodings are equal.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleRequest {
    #[prost(string, tag = "1")]
    pub role: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PermissionType {
    Read = 0,
    Write = 1,
    Readwrite = 2,
}

/// What a role may do on a key range (`authpb.Permission`).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Permission {
    #[prost(enumeration = "PermissionType", tag = "1")]
    pub perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthRoleGetResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub perm: Vec<Permission>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthRoleListResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, repeated, tag = "2")]
    pub roles: Vec<String>,
}

/// `etcdserverpb.AuthRoleGrantPermissionRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleGrantPermissionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub perm: Option<Permission>,
}

/// `etcdserverpb.AuthRoleRevokePermissionRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleRevokePermissionRequest {
    #[prost(string, tag = "1")]
    pub role: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// A user as stored in the `auth` column family (`authpb.User`, etcd's `authUsers` bucket).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct User {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The bcrypt hash; empty for a user added with `no_password`.
    #[prost(bytes = "vec", tag = "2")]
    pub password: Vec<u8>,
    /// Sorted, as etcd keeps them.
    #[prost(string, repeated, tag = "3")]
    pub roles: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub options: Option<UserAddOptions>,
}

/// A role as stored in the `auth` column family (`authpb.Role`, etcd's `authRoles` bucket).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Role {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// Sorted by key, as etcd keeps them.
    #[prost(message, repeated, tag = "2")]
    pub key_permission: Vec<Permission>,
}
