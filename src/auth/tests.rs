//! The auth store against etcd 3.4.23's `auth/store.go` rules, on a real database.

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    auth: AuthStore,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let auth = AuthStore::open(&db, "simple", TOKEN_TTL_DEFAULT).unwrap();
        Fixture { _dir: dir, db, auth }
    }

    /// Applies one change and writes its batch, as the apply thread does.
    fn apply(&self, request: Request) -> Result<()> {
        let mut batch = WriteBatch::default();
        let outcome = self.auth.apply(&self.db, &mut batch, &request).expect("an auth change");
        self.db.raw().write(batch).unwrap();
        outcome
    }

    /// The store as a member restarting on this database would see it.
    fn reopened(&self) -> AuthStore {
        AuthStore::open(&self.db, "simple", TOKEN_TTL_DEFAULT).unwrap()
    }
}

fn user_add(name: &str) -> Request {
    Request::AuthUserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: format!("hash of {name}"),
        ..Default::default()
    })
}

fn grant(user: &str, role: &str) -> Request {
    Request::AuthUserGrantRole(AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
}

fn revoke(user: &str, role: &str) -> Request {
    Request::AuthUserRevokeRole(AuthUserRevokeRoleRequest { name: user.into(), role: role.into() })
}

fn role_add(name: &str) -> Request {
    Request::AuthRoleAdd(AuthRoleAddRequest { name: name.into() })
}

fn perm(key: &str, range_end: &str, perm_type: PermissionType) -> Permission {
    Permission { perm_type: perm_type as i32, key: key.into(), range_end: range_end.into() }
}

fn grant_perm(role: &str, p: Permission) -> Request {
    Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest { name: role.into(), perm: Some(p) })
}

fn revoke_perm(role: &str, key: &str, range_end: &str) -> Request {
    Request::AuthRoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: role.into(),
        key: key.into(),
        range_end: range_end.into(),
    })
}

/// `outcome` failed with `expected` (errors carry no equality: they compare by variant).
#[track_caller]
fn fails<T: std::fmt::Debug>(outcome: Result<T>, expected: Error) {
    let error = outcome.expect_err("should fail");
    assert_eq!(std::mem::discriminant(&error), std::mem::discriminant(&expected), "{error:?}, want {expected:?}");
}

#[test]
fn users_are_added_listed_and_deleted_in_etcds_order_of_checks() {
    let f = Fixture::new();
    fails(f.apply(user_add("")), Error::UserEmpty);
    f.apply(user_add("zed")).unwrap();
    f.apply(user_add("amy")).unwrap();
    fails(f.apply(user_add("amy")), Error::UserAlreadyExist);
    assert_eq!(f.auth.user_names(), ["amy", "zed"]);
    assert_eq!(f.auth.user_roles("amy").unwrap(), Vec::<String>::new());
    fails(f.auth.user_roles("bob"), Error::UserNotFound);

    let delete = |name: &str| Request::AuthUserDelete(AuthUserRequest { name: name.into() });
    fails(f.apply(delete("bob")), Error::UserNotFound);
    f.apply(delete("zed")).unwrap();
    assert_eq!(f.auth.user_names(), ["amy"]);
    assert_eq!(f.reopened().user_names(), ["amy"]);
}

#[test]
fn only_changes_that_happen_move_the_revision() {
    let f = Fixture::new();
    f.apply(user_add("amy")).unwrap();
    f.apply(role_add("ops")).unwrap();
    assert_eq!(f.auth.revision(), 2);
    // Failed changes, and a role granted twice (success that changes nothing), keep it.
    assert!(f.apply(user_add("amy")).is_err());
    assert!(f.apply(grant("amy", "nope")).is_err());
    f.apply(grant("amy", "ops")).unwrap();
    f.apply(grant("amy", "ops")).unwrap();
    assert_eq!(f.auth.revision(), 3);
    assert_eq!(f.reopened().revision(), 3);
}

#[test]
fn roles_are_granted_sorted_and_root_before_it_exists() {
    let f = Fixture::new();
    f.apply(user_add("amy")).unwrap();
    fails(f.apply(grant("bob", "ops")), Error::UserNotFound);
    fails(f.apply(grant("amy", "ops")), Error::RoleNotFound);
    f.apply(role_add("ops")).unwrap();
    f.apply(role_add("dev")).unwrap();
    f.apply(grant("amy", "ops")).unwrap();
    f.apply(grant("amy", "root")).unwrap();
    f.apply(grant("amy", "dev")).unwrap();
    assert_eq!(f.auth.user_roles("amy").unwrap(), ["dev", "ops", "root"]);

    fails(f.apply(revoke("amy", "qa")), Error::RoleNotGranted);
    f.apply(revoke("amy", "ops")).unwrap();
    assert_eq!(f.reopened().user_roles("amy").unwrap(), ["dev", "root"]);
}

#[test]
fn deleting_a_role_takes_it_from_its_users() {
    let f = Fixture::new();
    for name in ["amy", "bob"] {
        f.apply(user_add(name)).unwrap();
    }
    f.apply(role_add("ops")).unwrap();
    f.apply(role_add("dev")).unwrap();
    f.apply(grant("amy", "ops")).unwrap();
    f.apply(grant("amy", "dev")).unwrap();
    f.apply(grant("bob", "ops")).unwrap();
    let delete = |role: &str| Request::AuthRoleDelete(AuthRoleRequest { role: role.into() });
    fails(f.apply(delete("qa")), Error::RoleNotFound);
    let before = f.auth.revision();
    f.apply(delete("ops")).unwrap();
    assert_eq!(f.auth.revision(), before + 1, "one change");
    let reopened = f.reopened();
    assert_eq!(reopened.role_names(), ["dev"]);
    assert_eq!(reopened.user_roles("amy").unwrap(), ["dev"]);
    assert_eq!(reopened.user_roles("bob").unwrap(), Vec::<String>::new());
}

#[test]
fn permissions_are_kept_by_key_and_updated_on_the_same_range() {
    let f = Fixture::new();
    fails(f.apply(grant_perm("ops", perm("a", "", PermissionType::Read))), Error::RoleNotFound);
    fails(f.apply(role_add("")), Error::RoleEmpty);
    f.apply(role_add("ops")).unwrap();
    fails(f.apply(role_add("ops")), Error::RoleAlreadyExist);
    let missing = Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest { name: "ops".into(), perm: None });
    fails(f.apply(missing), Error::PermissionNotGiven);

    f.apply(grant_perm("ops", perm("m", "", PermissionType::Read))).unwrap();
    f.apply(grant_perm("ops", perm("b", "c", PermissionType::Write))).unwrap();
    f.apply(grant_perm("ops", perm("m", "", PermissionType::Readwrite))).unwrap();
    f.apply(grant_perm("ops", perm("x", "\0", PermissionType::Read))).unwrap();
    assert_eq!(
        f.auth.role_permissions("ops").unwrap(),
        [
            perm("b", "c", PermissionType::Write),
            perm("m", "", PermissionType::Readwrite),
            perm("x", "\0", PermissionType::Read)
        ]
    );

    fails(f.apply(revoke_perm("ops", "b", "")), Error::PermissionNotGranted);
    fails(f.apply(revoke_perm("qa", "b", "c")), Error::RoleNotFound);
    f.apply(revoke_perm("ops", "b", "c")).unwrap();
    assert_eq!(
        f.reopened().role_permissions("ops").unwrap(),
        [perm("m", "", PermissionType::Readwrite), perm("x", "\0", PermissionType::Read)]
    );
}

#[test]
fn passwords_are_stored_as_given_hashes_and_changed_in_place() {
    let f = Fixture::new();
    f.apply(role_add("ops")).unwrap();
    f.apply(user_add("amy")).unwrap();
    f.apply(grant("amy", "ops")).unwrap();
    let change = |name: &str, hash: &str| {
        Request::AuthUserChangePassword(AuthUserChangePasswordRequest {
            name: name.into(),
            hashed_password: hash.into(),
            ..Default::default()
        })
    };
    fails(f.apply(change("bob", "h")), Error::UserNotFound);
    f.apply(change("amy", "new hash")).unwrap();
    let state = f.reopened().state.into_inner();
    let amy = &state.users["amy"];
    assert_eq!((amy.password.as_slice(), amy.roles.as_slice()), (&b"new hash"[..], &["ops".to_string()][..]));
    assert_eq!(amy.options, Some(UserAddOptions { no_password: false }), "etcd stores the default options");
}

#[test]
fn enabling_needs_a_root_user_with_the_root_role_and_then_protects_root() {
    let f = Fixture::new();
    let enable = || Request::AuthEnable(EmptyRequest {});
    fails(f.apply(enable()), Error::RootUserNotExist);
    f.apply(user_add(ROOT)).unwrap();
    fails(f.apply(enable()), Error::RootRoleNotExist);
    f.apply(grant(ROOT, ROOT)).unwrap();
    f.apply(role_add(ROOT)).unwrap();
    let before = f.auth.revision();
    f.apply(enable()).unwrap();
    assert!(f.auth.is_enabled() && f.reopened().is_enabled());
    assert_eq!(f.auth.revision(), before, "etcd's enable keeps the revision");
    f.apply(enable()).unwrap();
    fails(f.apply(Request::AuthUserDelete(AuthUserRequest { name: ROOT.into() })), Error::InvalidAuthMgmt);
    fails(f.apply(revoke(ROOT, ROOT)), Error::InvalidAuthMgmt);
    fails(f.apply(Request::AuthRoleDelete(AuthRoleRequest { role: ROOT.into() })), Error::InvalidAuthMgmt);
    f.apply(Request::AuthDisable(EmptyRequest {})).unwrap();
    assert!(!f.auth.is_enabled() && !f.reopened().is_enabled());
    assert_eq!(f.auth.revision(), before + 1, "etcd's disable moves the revision");
    f.apply(Request::AuthDisable(EmptyRequest {})).unwrap();
    assert_eq!(f.auth.revision(), before + 1);
    f.apply(revoke(ROOT, ROOT)).unwrap();
}

#[test]
fn checks_are_etcds_is_op_permitted() {
    let f = Fixture::new();
    let anyone = AuthInfo::default();
    f.auth.is_put_permitted(&anyone, b"k").unwrap();
    f.auth.is_admin_permitted(&anyone).unwrap();
    for r in [user_add(ROOT), grant(ROOT, ROOT), user_add("amy"), role_add("ro")] {
        f.apply(r).unwrap();
    }
    f.apply(grant_perm("ro", perm("a/", "a0", PermissionType::Read))).unwrap();
    f.apply(grant("amy", "ro")).unwrap();
    f.apply(Request::AuthEnable(EmptyRequest {})).unwrap();
    let rev = f.auth.revision();
    let amy = AuthInfo { username: "amy".into(), revision: rev };
    let root = AuthInfo { username: ROOT.into(), revision: rev };
    fails(f.auth.is_range_permitted(&anyone, b"a/x", b""), Error::UserEmpty);
    fails(f.auth.is_admin_permitted(&anyone), Error::UserEmpty);
    f.auth.is_range_permitted(&amy, b"a/x", b"").unwrap();
    f.auth.is_range_permitted(&amy, b"a/", b"a0").unwrap();
    fails(f.auth.is_put_permitted(&amy, b"a/x"), Error::PermissionDenied);
    fails(f.auth.is_range_permitted(&amy, b"b", b""), Error::PermissionDenied);
    fails(f.auth.is_admin_permitted(&amy), Error::PermissionDenied);
    f.auth.is_put_permitted(&root, b"anything").unwrap();
    f.auth.is_admin_permitted(&root).unwrap();
    let ghost = AuthInfo { username: "ghost".into(), revision: rev };
    fails(f.auth.is_range_permitted(&ghost, b"a/x", b""), Error::PermissionDenied);
    fails(f.auth.is_admin_permitted(&ghost), Error::UserNotFound);
    f.apply(role_add("other")).unwrap();
    fails(f.auth.is_range_permitted(&amy, b"a/x", b""), Error::AuthOldRevision);
}

#[test]
fn authenticate_assigns_simple_tokens_that_die_with_the_user_password_or_auth() {
    let f = Fixture::new();
    let login = |name: &str, index| {
        f.auth.authenticate(&InternalAuthenticateRequest { name: name.into(), simple_token: "abc".into() }, index)
    };
    fails(login("amy", 1), Error::AuthNotEnabled);
    let hashed = hash_password("pw", 4).unwrap();
    let amy = AuthUserAddRequest { name: "amy".into(), hashed_password: hashed, ..Default::default() };
    for r in [user_add(ROOT), grant(ROOT, ROOT), Request::AuthUserAdd(amy), Request::AuthEnable(EmptyRequest {})] {
        f.apply(r).unwrap();
    }
    fails(f.auth.check_password("amy", "wrong"), Error::AuthFailed);
    fails(f.auth.check_password("bob", "pw"), Error::AuthFailed);
    assert_eq!(f.auth.check_password("amy", "pw").unwrap(), f.auth.revision());
    fails(login("bob", 7), Error::AuthFailed);
    let token = login("amy", 7).unwrap();
    assert_eq!(token, "abc.7");
    assert_eq!(f.auth.info_from_token(&token).unwrap().username, "amy");
    fails(f.auth.info_from_token("abc.8"), Error::InvalidAuthToken);
    let change =
        AuthUserChangePasswordRequest { name: "amy".into(), hashed_password: "x".into(), ..Default::default() };
    f.apply(Request::AuthUserChangePassword(change)).unwrap();
    fails(f.auth.info_from_token(&token), Error::InvalidAuthToken);
    let token = login("amy", 9).unwrap();
    f.apply(Request::AuthDisable(EmptyRequest {})).unwrap();
    fails(f.auth.info_from_token(&token), Error::InvalidAuthToken);
}

#[test]
fn hashes_are_etcds_bcrypt_and_check_against_the_password() {
    let hashed = hash_password("s3cret", BCRYPT_COST_RANGE.start().to_owned()).unwrap();
    assert!(hashed.starts_with("$2a$04$"), "{hashed}");
    assert!(bcrypt::verify("s3cret", &hashed).unwrap());
    assert!(!bcrypt::verify("other", &hashed).unwrap());
}

#[test]
fn requests_that_are_not_auth_changes_are_refused() {
    let f = Fixture::new();
    let mut batch = WriteBatch::default();
    assert!(f.auth.apply(&f.db, &mut batch, &Request::Put(PutRequest::default())).is_none());
    assert!(f.auth.apply(&f.db, &mut batch, &user_add("amy")).is_some());
}
