//! The Auth service's calls over the replicated auth store ([`crate::auth`]).
//!
//! Changes to users and roles go through raft like every write; the member taking the call
//! hashes a new password first, so the log carries only the hash. Reads (get, list) and the
//! enable/disable/authenticate answers wait for a linearizable barrier first, which orders
//! them after every change acknowledged before them, as etcd's trip through raft does: a
//! learner refuses them and a member without a leader times out, as etcd's would.
//!
//! Authentication is not built yet, so it is always disabled: disabling succeeds,
//! authenticating says auth is not enabled, and enabling checks what etcd checks (a `root`
//! user with the `root` role) and then answers [`Error::Unimplemented`] rather than claim
//! a protection that nothing would enforce.

use super::{Node, Origin};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::{Error, Result};

impl Node {
    /// Orders the call after every write acknowledged before it, as etcd's raft round does.
    fn auth_barrier(&self) -> Result<()> {
        wait_on(|ready| self.read_barrier_then(false, (), ready))
    }

    fn auth_change(&self, request: Request) -> Result<AuthHeaderResponse> {
        wait_on(|reply| self.propose_then(Origin::Client, request, reply))
    }

    /// etcd `AuthEnable`.
    pub fn auth_enable(&self) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        self.inner.auth.check_root()?;
        Err(Error::Unimplemented("enabling authentication"))
    }

    /// etcd `AuthDisable`: auth is disabled already, which etcd answers with a header.
    pub fn auth_disable(&self) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Ok(AuthHeaderResponse { header: self.header_now() })
    }

    /// etcd `Authenticate`.
    pub fn authenticate(&self, _req: &AuthenticateRequest) -> Result<AuthenticateResponse> {
        self.auth_barrier()?;
        Err(Error::AuthNotEnabled)
    }

    /// etcd `UserAdd`.
    pub fn user_add(&self, req: &AuthUserAddRequest) -> Result<AuthHeaderResponse> {
        let mut req = req.clone();
        let no_password = req.options.is_some_and(|o| o.no_password);
        req.hashed_password =
            if no_password { String::new() } else { crate::auth::hash_password(&req.password, self.bcrypt_cost())? };
        req.password.clear();
        self.auth_change(Request::AuthUserAdd(req))
    }

    /// etcd `UserGet`.
    pub fn user_get(&self, req: &AuthUserRequest) -> Result<AuthUserGetResponse> {
        self.auth_barrier()?;
        let roles = self.inner.auth.user_roles(&req.name)?;
        Ok(AuthUserGetResponse { header: self.header_now(), roles })
    }

    /// etcd `UserList`.
    pub fn user_list(&self) -> Result<AuthUserListResponse> {
        self.auth_barrier()?;
        Ok(AuthUserListResponse { header: self.header_now(), users: self.inner.auth.user_names() })
    }

    /// etcd `UserDelete`.
    pub fn user_delete(&self, req: &AuthUserRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthUserDelete(req.clone()))
    }

    /// etcd `UserChangePassword`.
    pub fn user_change_password(&self, req: &AuthUserChangePasswordRequest) -> Result<AuthHeaderResponse> {
        let mut req = req.clone();
        req.hashed_password = crate::auth::hash_password(&req.password, self.bcrypt_cost())?;
        req.password.clear();
        self.auth_change(Request::AuthUserChangePassword(req))
    }

    /// etcd `UserGrantRole`: the user is looked up before the role.
    pub fn user_grant_role(&self, req: &AuthUserGrantRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthUserGrantRole(req.clone()))
    }

    /// etcd `UserRevokeRole`.
    pub fn user_revoke_role(&self, req: &AuthUserRevokeRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthUserRevokeRole(req.clone()))
    }

    /// etcd `RoleAdd`.
    pub fn role_add(&self, req: &AuthRoleAddRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthRoleAdd(req.clone()))
    }

    /// etcd `RoleGet`: `root` too is a role only once added.
    pub fn role_get(&self, req: &AuthRoleRequest) -> Result<AuthRoleGetResponse> {
        self.auth_barrier()?;
        let perm = self.inner.auth.role_permissions(&req.role)?;
        Ok(AuthRoleGetResponse { header: self.header_now(), perm })
    }

    /// etcd `RoleList`.
    pub fn role_list(&self) -> Result<AuthRoleListResponse> {
        self.auth_barrier()?;
        Ok(AuthRoleListResponse { header: self.header_now(), roles: self.inner.auth.role_names() })
    }

    /// etcd `RoleDelete`: the role is also taken from every user that has it.
    pub fn role_delete(&self, req: &AuthRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthRoleDelete(req.clone()))
    }

    /// etcd `RoleGrantPermission`: adds the permission, or changes the type of the one on the
    /// same range.
    pub fn role_grant_permission(&self, req: &AuthRoleGrantPermissionRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthRoleGrantPermission(req.clone()))
    }

    /// etcd `RoleRevokePermission`.
    pub fn role_revoke_permission(&self, req: &AuthRoleRevokePermissionRequest) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthRoleRevokePermission(req.clone()))
    }

    fn bcrypt_cost(&self) -> u32 {
        self.inner.cfg.bcrypt_cost()
    }
}
