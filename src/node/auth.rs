//! The Auth service as etcd 3.4 answers it with authentication disabled and no user or role
//! stored: raftkv stores neither yet. etcd sends every auth call through raft, so each call
//! here first waits for a linearizable barrier (a learner refuses it, a member without a
//! leader times out, as etcd's would), then answers from that empty state: enabling fails
//! for want of a `root` user, every lookup finds nothing, the lists are empty, disabling
//! succeeds, and authenticating says auth is not enabled. Adding a user or a role, the only
//! calls that would make the state non-empty, passes etcd's check of the name and is then
//! refused as [`Error::Unimplemented`] — so every other answer stays exactly etcd's.

use super::Node;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::{Error, Result};

/// What adding a user or role would need.
const STORAGE: &str = "storing users and roles";

impl Node {
    /// Orders the call after every write acknowledged before it, as etcd's raft round does.
    fn auth_barrier(&self) -> Result<()> {
        wait_on(|ready| self.read_barrier_then(false, (), ready))
    }

    /// etcd `AuthEnable`.
    pub fn auth_enable(&self) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::RootUserNotExist)
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
        self.auth_barrier()?;
        if req.name.is_empty() {
            return Err(Error::UserEmpty);
        }
        Err(Error::Unimplemented(STORAGE))
    }

    /// etcd `UserGet`.
    pub fn user_get(&self, _req: &AuthUserRequest) -> Result<AuthUserGetResponse> {
        self.auth_barrier()?;
        Err(Error::UserNotFound)
    }

    /// etcd `UserList`.
    pub fn user_list(&self) -> Result<AuthUserListResponse> {
        self.auth_barrier()?;
        Ok(AuthUserListResponse { header: self.header_now(), users: Vec::new() })
    }

    /// etcd `UserDelete`.
    pub fn user_delete(&self, _req: &AuthUserRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::UserNotFound)
    }

    /// etcd `UserChangePassword`.
    pub fn user_change_password(&self, _req: &AuthUserChangePasswordRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::UserNotFound)
    }

    /// etcd `UserGrantRole`: the user is looked up before the role.
    pub fn user_grant_role(&self, _req: &AuthUserGrantRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::UserNotFound)
    }

    /// etcd `UserRevokeRole`.
    pub fn user_revoke_role(&self, _req: &AuthUserRevokeRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::UserNotFound)
    }

    /// etcd `RoleAdd`.
    pub fn role_add(&self, req: &AuthRoleAddRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        if req.name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        Err(Error::Unimplemented(STORAGE))
    }

    /// etcd `RoleGet`: `root` too is a role only once added.
    pub fn role_get(&self, _req: &AuthRoleRequest) -> Result<AuthRoleGetResponse> {
        self.auth_barrier()?;
        Err(Error::RoleNotFound)
    }

    /// etcd `RoleList`.
    pub fn role_list(&self) -> Result<AuthRoleListResponse> {
        self.auth_barrier()?;
        Ok(AuthRoleListResponse { header: self.header_now(), roles: Vec::new() })
    }

    /// etcd `RoleDelete`.
    pub fn role_delete(&self, _req: &AuthRoleRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::RoleNotFound)
    }

    /// etcd `RoleGrantPermission`.
    pub fn role_grant_permission(&self, _req: &AuthRoleGrantPermissionRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::RoleNotFound)
    }

    /// etcd `RoleRevokePermission`.
    pub fn role_revoke_permission(&self, _req: &AuthRoleRevokePermissionRequest) -> Result<AuthHeaderResponse> {
        self.auth_barrier()?;
        Err(Error::RoleNotFound)
    }
}
