//! The Auth service's calls over the replicated auth store ([`crate::auth`]).
//!
//! Changes to users and roles, `auth enable` and `auth disable` go through raft like every
//! write, checked on apply for the caller's `root` role (etcd's `needAdminPermission`); the
//! member taking the call hashes a new password first, so the log carries only the hash.
//! Reads (get, list) wait for a linearizable barrier first, which orders them after every
//! change acknowledged before them, as etcd's trip through raft does (a learner refuses them
//! and a member without a leader times out, as etcd's would), then check the caller as
//! etcd's `authApplierV3` does. `Authenticate` checks the password here (bcrypt, on the
//! caller's thread) and proposes only the name and a random token prefix; the token is
//! assigned on apply, on every member.

use super::{Node, Origin};
use crate::auth::token;
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

    /// etcd `AuthEnable`: refused unless a `root` user has the `root` role.
    pub fn auth_enable(&self) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthEnable(EmptyRequest {}))
    }

    /// etcd `AuthDisable`: every token dies with it.
    pub fn auth_disable(&self) -> Result<AuthHeaderResponse> {
        self.auth_change(Request::AuthDisable(EmptyRequest {}))
    }

    /// Whether auth is enabled and the auth revision (etcd 3.5's `AuthStatus`), as applied on
    /// this member.
    pub fn auth_status(&self) -> (bool, u64) {
        (self.inner.auth.is_enabled(), self.inner.auth.revision())
    }

    /// etcd `Authenticate`: the password is checked at an auth revision, and the token asked
    /// for again if the store moved before the entry was applied (a password changed
    /// meanwhile must not yield a token).
    pub fn authenticate(&self, req: &AuthenticateRequest) -> Result<AuthenticateResponse> {
        self.auth_barrier()?;
        let auth = &self.inner.auth;
        loop {
            let checked = auth.check_password(&req.name, &req.password).inspect_err(|e| {
                if !matches!(e, Error::AuthNotEnabled) {
                    log::warn!("auth: invalid authentication was requested for user {:?}: {e}", req.name);
                }
            })?;
            let request = InternalAuthenticateRequest { name: req.name.clone(), simple_token: token::prefix()? };
            let resp: AuthenticateResponse =
                wait_on(|reply| self.propose_then(Origin::Client, Request::Authenticate(request), reply))?;
            if checked == auth.revision() {
                return Ok(resp);
            }
            log::info!("auth: revision when password checked became stale; retrying");
        }
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
    /// A user may read its own record (etcd's `authApplierV3.UserGet`).
    pub fn user_get(&self, req: &AuthUserRequest) -> Result<AuthUserGetResponse> {
        self.auth_barrier()?;
        if req.name != self.caller().username {
            self.check_admin()?;
        }
        let roles = self.inner.auth.user_roles(&req.name)?;
        Ok(AuthUserGetResponse { header: self.header_now(), roles })
    }

    /// etcd `UserList`.
    pub fn user_list(&self) -> Result<AuthUserListResponse> {
        self.auth_barrier()?;
        self.check_admin()?;
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
    /// A user may read the roles it has (etcd's `authApplierV3.RoleGet`).
    pub fn role_get(&self, req: &AuthRoleRequest) -> Result<AuthRoleGetResponse> {
        self.auth_barrier()?;
        if !self.inner.auth.has_role(&self.caller().username, &req.role) {
            self.check_admin()?;
        }
        let perm = self.inner.auth.role_permissions(&req.role)?;
        Ok(AuthRoleGetResponse { header: self.header_now(), perm })
    }

    /// etcd `RoleList`.
    pub fn role_list(&self) -> Result<AuthRoleListResponse> {
        self.auth_barrier()?;
        self.check_admin()?;
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
