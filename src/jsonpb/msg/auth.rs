//! The Auth service's messages (and `authpb`'s that they carry).

use super::*;

json_message!(AuthHeaderResponse {
    header: Msg<ResponseHeader> = "header",
});

json_message!(AuthenticateRequest { name: Str = "name", password: Str = "password" });

json_message!(AuthenticateResponse {
    header: Msg<ResponseHeader> = "header",
    token: Str = "token",
});

json_message!(UserAddOptions { no_password: Bool = "no_password" / "noPassword" });

json_message!(AuthUserAddRequest {
    name: Str = "name",
    password: Str = "password",
    options: Msg<UserAddOptions> = "options",
});

json_message!(AuthUserRequest { name: Str = "name" });

json_message!(AuthUserGetResponse {
    header: Msg<ResponseHeader> = "header",
    roles: Strs = "roles",
});

json_message!(AuthUserChangePasswordRequest { name: Str = "name", password: Str = "password" });

json_message!(AuthUserGrantRoleRequest { user: Str = "user", role: Str = "role" });

json_message!(AuthUserRevokeRoleRequest { name: Str = "name", role: Str = "role" });

json_message!(AuthUserListResponse {
    header: Msg<ResponseHeader> = "header",
    users: Strs = "users",
});

json_message!(AuthRoleAddRequest { name: Str = "name" });

json_message!(AuthRoleRequest { role: Str = "role" });

json_message!(Permission {
    perm_type: Enum<PermissionTypeNames> = "permType",
    key: Bytes = "key",
    range_end: Bytes = "range_end" / "rangeEnd",
});

json_message!(AuthRoleGetResponse {
    header: Msg<ResponseHeader> = "header",
    perm: Msgs<Permission> = "perm",
});

json_message!(AuthRoleListResponse {
    header: Msg<ResponseHeader> = "header",
    roles: Strs = "roles",
});

json_message!(AuthRoleGrantPermissionRequest {
    name: Str = "name",
    perm: Msg<Permission> = "perm",
});

json_message!(AuthRoleRevokePermissionRequest {
    role: Str = "role",
    key: Bytes = "key",
    range_end: Bytes = "range_end" / "rangeEnd",
});
