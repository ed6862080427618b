//! etcd's `authApplierV3` (`etcdserver/apply_auth.go`): the permission checks of an entry,
//! made on the apply thread with the user and auth revision its proposer put in its header,
//! so that a change of the auth store committed before the entry is seen by every member
//! alike (a credential checked at an older revision is `revision of auth store is old`).
//!
//! An entry without a header is the member's own (lease expiry, compaction, publish) and is
//! applied unchecked, as etcd's proposals made `WithRoot`.

use crate::auth::{AuthInfo, AuthStore};
use crate::lease::Lessor;
use crate::pb::internal_request::Request;
use crate::pb::RequestHeader;
use crate::Result;

pub(super) fn check(auth: &AuthStore, lessor: &Lessor, header: Option<&RequestHeader>, req: &Request) -> Result<()> {
    let Some(header) = header else { return Ok(()) };
    if !auth.is_enabled() {
        return Ok(());
    }
    let info = AuthInfo { username: header.username.clone(), revision: header.auth_revision };
    match req {
        Request::Put(r) => {
            auth.is_put_permitted(&info, &r.key)?;
            // A lease already on a key this user cannot write cannot be revoked by it, so it
            // may not put more keys on it either (etcd's `checkLeasePuts`).
            check_lease_puts(auth, lessor, &info, r.lease)?;
            if r.prev_kv {
                auth.is_range_permitted(&info, &r.key, &[])?;
            }
            Ok(())
        }
        Request::DeleteRange(r) => {
            auth.is_delete_range_permitted(&info, &r.key, &r.range_end)?;
            if r.prev_kv {
                auth.is_range_permitted(&info, &r.key, &r.range_end)?;
            }
            Ok(())
        }
        Request::Txn(r) => auth.check_txn(&info, r),
        Request::LeaseRevoke(r) => check_lease_puts(auth, lessor, &info, r.id),
        // etcd's `needAdminPermission`.
        Request::AuthEnable(_)
        | Request::AuthDisable(_)
        | Request::AuthUserAdd(_)
        | Request::AuthUserDelete(_)
        | Request::AuthUserChangePassword(_)
        | Request::AuthUserGrantRole(_)
        | Request::AuthUserRevokeRole(_)
        | Request::AuthRoleAdd(_)
        | Request::AuthRoleGrantPermission(_)
        | Request::AuthRoleRevokePermission(_)
        | Request::AuthRoleDelete(_) => auth.is_admin_permitted(&info),
        _ => Ok(()),
    }
}

/// The keys of lease `id` must all be writable by the user.
fn check_lease_puts(auth: &AuthStore, lessor: &Lessor, info: &AuthInfo, id: i64) -> Result<()> {
    if id == 0 {
        return Ok(());
    }
    for key in lessor.time_to_live(id, true).map(|t| t.keys).unwrap_or_default() {
        auth.is_put_permitted(info, &key)?;
    }
    Ok(())
}
