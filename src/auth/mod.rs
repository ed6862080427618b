//! The auth store: etcd's users and roles (`auth/store.go`), replicated through raft.
//!
//! Owns the users, the roles, the enabled flag and the auth revision (etcd's `authRevision`:
//! one more for every change, so that cached permissions and tokens can tell they are stale),
//! and the tokens (in memory only). They live in memory behind one lock and in the `auth`
//! column family (etcd's `authUsers` and `authRoles` buckets, with etcd's `authpb` records).
//! The apply thread (`raftkv-apply`) is the only writer: it applies the auth entries of the
//! raft log into the apply batch, so users and roles are stored with the applied index that
//! covers them and travel in snapshots. Client threads read it, after the linearizable
//! barrier of the node's auth calls.
//!
//! Each change checks what etcd's does, in etcd's order, and answers etcd's error; a change
//! that fails leaves everything, the revision included, as it was.
//!
//! Passwords come here already hashed: the member that takes the call hashes it with bcrypt
//! before proposing ([`hash_password`]), as etcd 3.5 does (`hashedPassword`). So every member
//! stores the same hash, the raft log never holds a plain password, and the apply thread never
//! spends bcrypt's milliseconds. (etcd 3.4 hashes on apply, on every member, each with a salt
//! of its own.)
//!
//! Authentication and enforcement (etcd 3.4's): `auth enable` (refused unless a `root` user
//! has the `root` role) and `auth disable` are entries of the log like the changes above;
//! [`AuthStore::check_password`] runs bcrypt on the caller's thread before an `Authenticate`
//! entry is proposed, whose apply assigns the token ([`token`]); the permission checks
//! ([`AuthStore::is_range_permitted`] and its siblings, etcd's `isOpPermitted`) run on the
//! callers' threads for reads and admin calls and on the apply thread for writes, against
//! each user's merged permissions (`perm.rs`), rebuilt with every change. While auth is
//! disabled every check is one atomic load.

mod jwt;
mod perm;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch};

use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::storage::{Cf, Db};
use crate::{Error, Result};

/// The user and role etcd requires before auth can be enabled.
pub const ROOT: &str = "root";

/// etcd's `--bcrypt-cost` default (`bcrypt.DefaultCost`) and the range it accepts.
pub const BCRYPT_COST_DEFAULT: u32 = 10;
pub const BCRYPT_COST_RANGE: std::ops::RangeInclusive<u32> = 4..=31;

/// Keys of the `auth` column family (public for the restore of an etcd backend, which writes
/// them): `user/` + name → `authpb.User`, `role/` + name → `authpb.Role`, and the auth
/// revision (u64 BE).
pub const USER_PREFIX: &[u8] = b"user/";
pub const ROLE_PREFIX: &[u8] = b"role/";
pub const REVISION_KEY: &[u8] = b"revision";
/// Whether auth is enabled: one byte, 1 or 0 (etcd's `authEnabled`).
pub const ENABLED_KEY: &[u8] = b"enabled";

/// etcd's `--auth-token-ttl` default: a simple token lives 300 s after its last use.
pub const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// Who a call is from (etcd's `AuthInfo`): the user its credentials name and the auth
/// revision they were checked at. Revision 0 means no credentials were given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

/// Hashes `password` as etcd does (bcrypt, version `2a`, etcd's `--bcrypt-cost`).
pub fn hash_password(password: &str, cost: u32) -> Result<String> {
    let hashed =
        bcrypt::hash_with_result(password, cost).map_err(|e| Error::Config(format!("bcrypt with cost {cost}: {e}")))?;
    Ok(hashed.format_for_version(bcrypt::Version::TwoA))
}

/// What a call came with (etcd's gRPC metadata and TLS peer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// gRPC's `token` metadata, or the gateway's `Authorization` header.
    pub token: Option<String>,
    /// The verified client certificate's common name, on gRPC only: etcd ignores it for its
    /// gateway, whose requests it proxies with the server's own certificate.
    pub common_name: Option<String>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.common_name.is_none()
    }
}

#[derive(Default)]
struct State {
    revision: u64,
    enabled: bool,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Each user's permissions over its roles, rebuilt with every change (etcd's
    /// `rangePermCache`, refreshed on commit).
    perms: HashMap<String, Arc<perm::UserPerms>>,
}

impl State {
    fn refresh_perms(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, user)| (name.clone(), Arc::new(perm::UserPerms::merged(user, |r| roles.get(r)))))
            .collect();
    }

    fn has_root_role(&self, user: &str) -> Option<bool> {
        self.users.get(user).map(|u| u.roles.iter().any(|r| r == ROOT))
    }
}

fn load(db: &Db) -> Result<State> {
    let mut state = State::default();
    let corrupt =
        |what: &str, detail: String| Error::Decode { what: "auth record", detail: format!("{what}: {detail}") };
    for item in db.raw().iterator_cf(db.cf(Cf::Auth), IteratorMode::Start) {
        let (key, value) = item.map_err(|e| Error::Storage(e.into()))?;
        if let Some(name) = key.strip_prefix(USER_PREFIX) {
            let user = User::decode(&*value).map_err(|e| corrupt("user", e.to_string()))?;
            state.users.insert(String::from_utf8_lossy(name).into_owned(), user);
        } else if let Some(name) = key.strip_prefix(ROLE_PREFIX) {
            let role = Role::decode(&*value).map_err(|e| corrupt("role", e.to_string()))?;
            state.roles.insert(String::from_utf8_lossy(name).into_owned(), role);
        } else if &*key == REVISION_KEY {
            let bytes: [u8; 8] = (*value).try_into().map_err(|_| corrupt("revision", format!("{value:?}")))?;
            state.revision = u64::from_be_bytes(bytes);
        } else if &*key == ENABLED_KEY {
            state.enabled = *value == [1];
        }
    }
    state.refresh_perms();
    Ok(state)
}

pub struct AuthStore {
    state: RwLock<State>,
    /// `state.enabled`, read without the lock by every call's check.
    enabled: AtomicBool,
    tokens: token::Provider,
}

/// One change of the store as the apply thread makes it: the new records go into the batch and
/// into memory together, and the revision moves once.
struct Change<'a> {
    state: &'a mut State,
    db: &'a Db,
    batch: &'a mut WriteBatch,
}

impl Change<'_> {
    fn put_user(&mut self, name: &str, user: User) {
        self.batch.put_cf(self.db.cf(Cf::Auth), [USER_PREFIX, name.as_bytes()].concat(), user.encode_to_vec());
        self.state.users.insert(name.to_string(), user);
    }

    fn delete_user(&mut self, name: &str) {
        self.batch.delete_cf(self.db.cf(Cf::Auth), [USER_PREFIX, name.as_bytes()].concat());
        self.state.users.remove(name);
    }

    fn put_role(&mut self, name: &str, role: Role) {
        self.batch.put_cf(self.db.cf(Cf::Auth), [ROLE_PREFIX, name.as_bytes()].concat(), role.encode_to_vec());
        self.state.roles.insert(name.to_string(), role);
    }

    fn delete_role(&mut self, name: &str) {
        self.batch.delete_cf(self.db.cf(Cf::Auth), [ROLE_PREFIX, name.as_bytes()].concat());
        self.state.roles.remove(name);
    }

    fn set_enabled(&mut self, enabled: bool) {
        self.batch.put_cf(self.db.cf(Cf::Auth), ENABLED_KEY, [u8::from(enabled)]);
        self.state.enabled = enabled;
    }

    /// etcd's `commitRevision`: every change that happened moves the revision by one.
    fn commit(self) {
        self.state.revision += 1;
        self.batch.put_cf(self.db.cf(Cf::Auth), REVISION_KEY, self.state.revision.to_be_bytes());
        self.state.refresh_perms();
    }
}

impl AuthStore {
    /// Opens the store with the token provider `token_spec` (`--auth-token`); simple tokens
    /// live `token_ttl` after their last use.
    pub fn open(db: &Db, token_spec: &str, token_ttl: Duration) -> Result<AuthStore> {
        let tokens = token::Provider::new(token_spec, token_ttl)?;
        let state = load(db)?;
        log::info!(
            "auth: restored {} users and {} roles (revision {}, enabled: {})",
            state.users.len(),
            state.roles.len(),
            state.revision,
            state.enabled
        );
        let enabled = AtomicBool::new(state.enabled);
        Ok(AuthStore { state: RwLock::new(state), enabled, tokens })
    }

    /// Replaces everything by what `db` holds after a snapshot was installed (apply thread).
    /// Tokens are kept, as etcd keeps them: those of users that are gone stop resolving to a
    /// permitted user.
    pub fn reload(&self, db: &Db) -> Result<()> {
        let state = load(db)?;
        self.enabled.store(state.enabled, Ordering::Release);
        if !state.enabled {
            self.tokens.clear();
        }
        *self.state.write() = state;
        Ok(())
    }

    /// etcd's `IsAuthEnabled`: one atomic load, the whole cost of every check while disabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// etcd's `authRevision`.
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Applies one auth entry of the raft log (apply thread); `None` if `request` is not an
    /// auth change.
    pub fn apply(&self, db: &Db, batch: &mut WriteBatch, request: &Request) -> Option<Result<()>> {
        let mut state = self.state.write();
        let change = Change { state: &mut state, db, batch };
        let outcome = match request {
            Request::AuthEnable(_) => auth_enable(change),
            Request::AuthDisable(_) => auth_disable(change),
            Request::AuthUserAdd(r) => user_add(change, r),
            Request::AuthUserDelete(r) => user_delete(change, &r.name),
            Request::AuthUserChangePassword(r) => user_change_password(change, r),
            Request::AuthUserGrantRole(r) => user_grant_role(change, &r.user, &r.role),
            Request::AuthUserRevokeRole(r) => user_revoke_role(change, &r.name, &r.role),
            Request::AuthRoleAdd(r) => role_add(change, &r.name),
            Request::AuthRoleDelete(r) => role_delete(change, &r.role),
            Request::AuthRoleGrantPermission(r) => role_grant_permission(change, r),
            Request::AuthRoleRevokePermission(r) => role_revoke_permission(change, r),
            _ => return None,
        };
        if outcome.is_ok() {
            self.enabled.store(state.enabled, Ordering::Release);
            // etcd's `invalidateUser` and the token provider's `disable`.
            match request {
                Request::AuthDisable(_) => self.tokens.clear(),
                Request::AuthUserDelete(AuthUserRequest { name, .. })
                | Request::AuthUserChangePassword(AuthUserChangePasswordRequest { name, .. }) => {
                    self.tokens.invalidate_user(name)
                }
                _ => {}
            }
        }
        Some(outcome)
    }

    /// Applies an `Authenticate` entry at raft index `index` (etcd's `Authenticate` on apply):
    /// the user is looked up again, since the password was checked before proposing.
    pub fn authenticate(&self, r: &InternalAuthenticateRequest, index: u64) -> Result<String> {
        let state = self.state.read();
        if !state.enabled {
            return Err(Error::AuthNotEnabled);
        }
        let user = state.users.get(&r.name).ok_or(Error::AuthFailed)?;
        if user.options.is_some_and(|o| o.no_password) {
            return Err(Error::AuthFailed);
        }
        log::debug!("auth: authenticated user {:?}", r.name);
        self.tokens.assign(&r.name, &r.simple_token, index, state.revision)
    }

    /// etcd's `CheckPassword`, on the caller's thread: the auth revision the password was
    /// right at. bcrypt runs outside the lock.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64> {
        let (hash, revision) = {
            let state = self.state.read();
            if !state.enabled {
                return Err(Error::AuthNotEnabled);
            }
            let user = state.users.get(name).ok_or(Error::AuthFailed)?;
            if user.options.is_some_and(|o| o.no_password) {
                return Err(Error::NoPasswordUser);
            }
            (user.password.clone(), state.revision)
        };
        let hash = std::str::from_utf8(&hash).map_err(|_| Error::AuthFailed)?;
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            log::info!("auth: invalid password for user {name:?}");
            return Err(Error::AuthFailed);
        }
        Ok(revision)
    }

    /// etcd's `AuthInfoFromCtx` for a token: the user it names at the current revision, or
    /// `invalid auth token` (logged, without the token, which is a credential).
    pub fn info_from_token(&self, token: &str) -> Result<AuthInfo> {
        match self.tokens.info(token, self.revision()) {
            Some(info) => Ok(info),
            None => {
                log::warn!("auth: invalid auth token ({} bytes)", token.len());
                Err(Error::InvalidAuthToken)
            }
        }
    }

    /// etcd's `AuthInfoFromTLS`: a verified client certificate's common name is the user.
    pub fn info_from_common_name(&self, common_name: &str) -> AuthInfo {
        AuthInfo { username: common_name.to_string(), revision: self.revision() }
    }

    /// etcd's `isOpPermitted`.
    fn is_op_permitted(&self, info: &AuthInfo, write: bool, key: &[u8], range_end: &[u8]) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(Error::UserEmpty);
        }
        let state = self.state.read();
        if info.revision < state.revision {
            log::warn!(
                "auth: request auth revision {} is less than the store's {} (user {:?})",
                info.revision,
                state.revision,
                info.username
            );
            return Err(Error::AuthOldRevision);
        }
        match state.has_root_role(&info.username) {
            None => {
                log::error!("auth: cannot find user {:?} for a permission check", info.username);
                Err(Error::PermissionDenied)
            }
            Some(true) => Ok(()),
            Some(false) => match state.perms.get(&info.username) {
                Some(perms) if perms.permits(write, key, range_end) => Ok(()),
                _ => Err(Error::PermissionDenied),
            },
        }
    }

    pub fn is_range_permitted(&self, info: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.is_op_permitted(info, false, key, range_end)
    }

    pub fn is_put_permitted(&self, info: &AuthInfo, key: &[u8]) -> Result<()> {
        self.is_op_permitted(info, true, key, &[])
    }

    pub fn is_delete_range_permitted(&self, info: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.is_op_permitted(info, true, key, range_end)
    }

    /// etcd's `IsAdminPermitted`: the user has the `root` role (no revision check, as etcd).
    pub fn is_admin_permitted(&self, info: &AuthInfo) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        if info.username.is_empty() {
            return Err(Error::UserEmpty);
        }
        match self.state.read().has_root_role(&info.username) {
            None => Err(Error::UserNotFound),
            Some(false) => Err(Error::PermissionDenied),
            Some(true) => Ok(()),
        }
    }

    /// etcd's `checkTxnAuth`: every compare's range read, every op of both branches as the
    /// op itself needs. Nested txns are checked too, as etcd 3.5 does (3.4.23 skips them, which
    /// let a nested txn write where its user may not).
    pub fn check_txn(&self, info: &AuthInfo, txn: &TxnRequest) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        for c in &txn.compare {
            self.is_range_permitted(info, &c.key, &c.range_end)?;
        }
        for op in txn.success.iter().chain(&txn.failure).filter_map(|op| op.request.as_ref()) {
            match op {
                request_op::Request::RequestRange(r) => self.is_range_permitted(info, &r.key, &r.range_end)?,
                request_op::Request::RequestPut(r) => self.is_put_permitted(info, &r.key)?,
                request_op::Request::RequestDeleteRange(r) => {
                    if r.prev_kv {
                        self.is_range_permitted(info, &r.key, &r.range_end)?;
                    }
                    self.is_delete_range_permitted(info, &r.key, &r.range_end)?;
                }
                request_op::Request::RequestTxn(t) => self.check_txn(info, t)?,
            }
        }
        Ok(())
    }

    /// etcd's `HasRole`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.state.read().users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// etcd `UserGet`: the user's roles.
    pub fn user_roles(&self, name: &str) -> Result<Vec<String>> {
        self.state.read().users.get(name).map(|u| u.roles.clone()).ok_or(Error::UserNotFound)
    }

    /// etcd `UserList`, in name order (bolt's key order).
    pub fn user_names(&self) -> Vec<String> {
        self.state.read().users.keys().cloned().collect()
    }

    /// etcd `RoleGet`: the role's permissions.
    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>> {
        self.state.read().roles.get(name).map(|r| r.key_permission.clone()).ok_or(Error::RoleNotFound)
    }

    /// etcd `RoleList`, in name order.
    pub fn role_names(&self) -> Vec<String> {
        self.state.read().roles.keys().cloned().collect()
    }
}

/// etcd's `AuthEnable`: a no-op when enabled already; otherwise a `root` user with the `root`
/// role must exist. Enabling does not move the revision (etcd's neither).
fn auth_enable(mut c: Change) -> Result<()> {
    if c.state.enabled {
        log::info!("auth: authentication is already enabled; ignored auth enable request");
        return Ok(());
    }
    match c.state.has_root_role(ROOT) {
        None => return Err(Error::RootUserNotExist),
        Some(false) => return Err(Error::RootRoleNotExist),
        Some(true) => {}
    }
    c.set_enabled(true);
    log::info!("auth: enabled authentication");
    Ok(())
}

/// etcd's `AuthDisable`: a no-op when disabled; otherwise the revision moves, so every
/// credential checked before is old.
fn auth_disable(mut c: Change) -> Result<()> {
    if !c.state.enabled {
        return Ok(());
    }
    c.set_enabled(false);
    c.commit();
    log::info!("auth: disabled authentication");
    Ok(())
}

fn user_add(mut c: Change, r: &AuthUserAddRequest) -> Result<()> {
    if r.name.is_empty() {
        return Err(Error::UserEmpty);
    }
    if c.state.users.contains_key(&r.name) {
        return Err(Error::UserAlreadyExist);
    }
    let user = User {
        name: r.name.clone().into_bytes(),
        password: r.hashed_password.clone().into_bytes(),
        roles: Vec::new(),
        options: Some(r.options.unwrap_or_default()),
    };
    c.put_user(&r.name, user);
    c.commit();
    log::info!("auth: added user {:?}", r.name);
    Ok(())
}

fn user_delete(mut c: Change, name: &str) -> Result<()> {
    if c.state.enabled && name == ROOT {
        log::warn!("auth: cannot delete the root user while auth is enabled");
        return Err(Error::InvalidAuthMgmt);
    }
    if !c.state.users.contains_key(name) {
        return Err(Error::UserNotFound);
    }
    c.delete_user(name);
    c.commit();
    log::info!("auth: deleted user {name:?}");
    Ok(())
}

fn user_change_password(mut c: Change, r: &AuthUserChangePasswordRequest) -> Result<()> {
    let mut user = c.state.users.get(&r.name).cloned().ok_or(Error::UserNotFound)?;
    user.password = r.hashed_password.clone().into_bytes();
    c.put_user(&r.name, user);
    c.commit();
    log::info!("auth: changed the password of user {:?}", r.name);
    Ok(())
}

fn user_grant_role(mut c: Change, name: &str, role: &str) -> Result<()> {
    let mut user = c.state.users.get(name).cloned().ok_or(Error::UserNotFound)?;
    // `root` may be granted before it exists as a role (etcd's exception).
    if role != ROOT && !c.state.roles.contains_key(role) {
        return Err(Error::RoleNotFound);
    }
    match user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
        // Granted already: etcd answers success and changes nothing, the revision neither.
        Ok(_) => log::warn!("auth: user {name:?} has role {role:?} already"),
        Err(at) => {
            user.roles.insert(at, role.to_string());
            c.put_user(name, user);
            c.commit();
            log::info!("auth: granted role {role:?} to user {name:?}");
        }
    }
    Ok(())
}

fn user_revoke_role(mut c: Change, name: &str, role: &str) -> Result<()> {
    if c.state.enabled && name == ROOT && role == ROOT {
        log::warn!("auth: the root user cannot lose the root role while auth is enabled");
        return Err(Error::InvalidAuthMgmt);
    }
    let mut user = c.state.users.get(name).cloned().ok_or(Error::UserNotFound)?;
    let before = user.roles.len();
    user.roles.retain(|r| r != role);
    if user.roles.len() == before {
        return Err(Error::RoleNotGranted);
    }
    c.put_user(name, user);
    c.commit();
    log::info!("auth: revoked role {role:?} from user {name:?}");
    Ok(())
}

fn role_add(mut c: Change, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::RoleEmpty);
    }
    if c.state.roles.contains_key(name) {
        return Err(Error::RoleAlreadyExist);
    }
    c.put_role(name, Role { name: name.as_bytes().to_vec(), key_permission: Vec::new() });
    c.commit();
    log::info!("auth: added role {name:?}");
    Ok(())
}

/// Removes the role, and takes it from every user that has it, in one change.
fn role_delete(mut c: Change, name: &str) -> Result<()> {
    if c.state.enabled && name == ROOT {
        log::warn!("auth: cannot delete the root role while auth is enabled");
        return Err(Error::InvalidAuthMgmt);
    }
    if !c.state.roles.contains_key(name) {
        return Err(Error::RoleNotFound);
    }
    c.delete_role(name);
    let holders: Vec<(String, User)> = c
        .state
        .users
        .iter()
        .filter(|(_, u)| u.roles.iter().any(|r| r == name))
        .map(|(n, u)| (n.clone(), u.clone()))
        .collect();
    for (user_name, mut user) in holders {
        user.roles.retain(|r| r != name);
        c.put_user(&user_name, user);
    }
    c.commit();
    log::info!("auth: deleted role {name:?}");
    Ok(())
}

fn role_grant_permission(mut c: Change, r: &AuthRoleGrantPermissionRequest) -> Result<()> {
    let mut role = c.state.roles.get(&r.name).cloned().ok_or(Error::RoleNotFound)?;
    // etcd 3.4 dereferences the missing permission and crashes; 3.5 answers this.
    let perm = r.perm.as_ref().ok_or(Error::PermissionNotGiven)?;
    // etcd's rule, quirk included: only the first permission on the same key is looked at to
    // find one to update.
    let at = role.key_permission.partition_point(|p| p.key < perm.key);
    match role.key_permission.get_mut(at) {
        Some(found) if found.key == perm.key && found.range_end == perm.range_end => found.perm_type = perm.perm_type,
        _ => {
            role.key_permission.push(perm.clone());
            role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
    c.put_role(&r.name, role);
    c.commit();
    log::info!("auth: granted role {:?} a permission on {:?}", r.name, String::from_utf8_lossy(&perm.key));
    Ok(())
}

fn role_revoke_permission(mut c: Change, r: &AuthRoleRevokePermissionRequest) -> Result<()> {
    let mut role = c.state.roles.get(&r.role).cloned().ok_or(Error::RoleNotFound)?;
    let before = role.key_permission.len();
    role.key_permission.retain(|p| p.key != r.key || p.range_end != r.range_end);
    if role.key_permission.len() == before {
        return Err(Error::PermissionNotGranted);
    }
    c.put_role(&r.role, role);
    c.commit();
    log::info!("auth: revoked a permission on {:?} from role {:?}", String::from_utf8_lossy(&r.key), r.role);
    Ok(())
}

#[cfg(test)]
mod tests;
