//! The auth store: etcd's users and roles (`auth/store.go`), replicated through raft.
//!
//! Owns the users, the roles and the auth revision (etcd's `authRevision`: one more for every
//! change, so that cached permissions and tokens can tell they are stale). They live in memory
//! behind one lock and in the `auth` column family (etcd's `authUsers` and `authRoles` buckets,
//! with etcd's `authpb` records). The apply thread (`raftkv-apply`) is the only writer: it
//! applies the auth entries of the raft log into the apply batch, so users and roles are
//! stored with the applied index that covers them and travel in snapshots. Client threads read
//! it, after the linearizable barrier of the node's auth calls.
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
//! Authentication itself (`auth enable`, tokens, permission checks) is not built yet: auth is
//! always disabled, so the root-only rules of etcd (the `root` user and role cannot be removed
//! while auth is enabled) never apply.

use std::collections::BTreeMap;

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

/// Hashes `password` as etcd does (bcrypt, version `2a`, etcd's `--bcrypt-cost`).
pub fn hash_password(password: &str, cost: u32) -> Result<String> {
    let hashed =
        bcrypt::hash_with_result(password, cost).map_err(|e| Error::Config(format!("bcrypt with cost {cost}: {e}")))?;
    Ok(hashed.format_for_version(bcrypt::Version::TwoA))
}

#[derive(Default)]
struct State {
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
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
        }
    }
    Ok(state)
}

pub struct AuthStore {
    state: RwLock<State>,
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

    /// etcd's `commitRevision`: every change that happened moves the revision by one.
    fn commit(self) {
        self.state.revision += 1;
        self.batch.put_cf(self.db.cf(Cf::Auth), REVISION_KEY, self.state.revision.to_be_bytes());
    }
}

impl AuthStore {
    pub fn open(db: &Db) -> Result<AuthStore> {
        let state = load(db)?;
        log::info!(
            "auth: restored {} users and {} roles (revision {})",
            state.users.len(),
            state.roles.len(),
            state.revision
        );
        Ok(AuthStore { state: RwLock::new(state) })
    }

    /// Replaces everything by what `db` holds after a snapshot was installed (apply thread).
    pub fn reload(&self, db: &Db) -> Result<()> {
        *self.state.write() = load(db)?;
        Ok(())
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
        Some(match request {
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
        })
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

    /// What etcd's `AuthEnable` checks: a `root` user that has the `root` role.
    pub fn check_root(&self) -> Result<()> {
        let state = self.state.read();
        let root = state.users.get(ROOT).ok_or(Error::RootUserNotExist)?;
        if !root.roles.iter().any(|r| r == ROOT) {
            return Err(Error::RootRoleNotExist);
        }
        Ok(())
    }
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
