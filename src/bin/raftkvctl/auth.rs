//! The auth verbs (`auth`, `user`, `role`), printed as etcdctl 3.4's simple and JSON printers
//! print them. Passwords etcdctl would ask for on a terminal are read from stdin (one word, as its
//! `--interactive=false` reads them): raftkvctl does not prompt.

use raftkv::service::Method;

use super::*;

/// A word from stdin (etcdctl's `fmt.Scanf("%s")`).
fn password_from_stdin() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.split_whitespace().next().unwrap_or_default().to_string()
}

/// etcdctl's `permRange`: an empty key is `"\0"` (all keys with `--prefix` or `--from-key`).
fn perm_range(key: &str, range_end: Option<String>, prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
    if prefix && from_key {
        bad_args("--from-key and --prefix flags are mutually exclusive");
    }
    if key.is_empty() {
        return (vec![0], if prefix || from_key { vec![0] } else { Vec::new() });
    }
    match (range_end, prefix, from_key) {
        (Some(end), false, false) => (key.into(), end.into_bytes()),
        (Some(_), _, _) => bad_args("unexpected endkey argument with --prefix or --from-key"),
        (None, true, _) => (key.into(), prefix_end(key.as_bytes())),
        (None, _, true) => (key.into(), vec![0]),
        (None, false, false) => (key.into(), Vec::new()),
    }
}

/// etcdctl's `RoleGet` lines for one permission.
fn print_perm(perm: &Permission) {
    let (key, end) = (String::from_utf8_lossy(&perm.key), String::from_utf8_lossy(&perm.range_end));
    if perm.range_end.is_empty() {
        println!("\t{key}");
        return;
    }
    let mut line = if perm.range_end == [0] { format!("\t[{key}, <open ended>") } else { format!("\t[{key}, {end})") };
    if prefix_end(&perm.key) == perm.range_end {
        line.push_str(&format!(" (prefix {key})"));
    }
    println!("{line}");
}

fn print_role(name: &str, perms: &[Permission]) {
    println!("Role {name}");
    let of = |kinds: &[PermissionType]| {
        perms.iter().filter(|p| kinds.iter().any(|k| *k as i32 == p.perm_type)).for_each(print_perm)
    };
    println!("KV Read:");
    of(&[PermissionType::Read, PermissionType::Readwrite]);
    println!("KV Write:");
    of(&[PermissionType::Write, PermissionType::Readwrite]);
}

impl Ctl {
    fn role_perms(&self, role: &str) -> Result<Vec<Permission>, CtlError> {
        let resp: AuthRoleGetResponse =
            self.client.call(Method::AuthRoleGet, &AuthRoleRequest { role: role.into() })?;
        Ok(resp.perm)
    }

    /// etcdctl's printers for these verbs: `-w json` prints the response, any other format the
    /// simple printer's line(s).
    fn said(&self, resp: &impl ToJson, simple: impl FnOnce()) {
        if self.format == Format::Json {
            self.print_json(resp);
        } else {
            simple();
        }
    }

    pub(crate) fn auth(&self, command: AuthCommand) -> Outcome {
        match command {
            AuthCommand::Enable => {
                // etcdctl's loop: a root user without the root role gets it, and enabling is
                // asked again.
                loop {
                    match self.client.call::<_, AuthHeaderResponse>(Method::AuthEnable, &EmptyRequest {}) {
                        Ok(resp) => {
                            self.said(&resp, || println!("Authentication Enabled"));
                            break;
                        }
                        Err(e) if e.to_string() == raftkv::Error::RootRoleNotExist.to_string() => {
                            let _: AuthHeaderResponse =
                                self.client.call(Method::AuthRoleAdd, &AuthRoleAddRequest { name: "root".into() })?;
                            let grant = AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() };
                            let _: AuthHeaderResponse = self.client.call(Method::AuthUserGrantRole, &grant)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            AuthCommand::Disable => {
                let resp: AuthHeaderResponse = self.client.call(Method::AuthDisable, &EmptyRequest {})?;
                self.said(&resp, || println!("Authentication Disabled"));
            }
        }
        Ok(())
    }

    pub(crate) fn user(&self, command: UserCommand) -> Outcome {
        match command {
            UserCommand::Add { user, interactive: _, new_user_password, no_password } => {
                let (name, password) = match (no_password, new_user_password, user.split_once(':')) {
                    (true, _, _) => (user.clone(), String::new()),
                    (false, Some(password), _) => (user.clone(), password),
                    (false, None, Some((name, password))) => {
                        if name.is_empty() {
                            bad_args("empty user name is not allowed");
                        }
                        (name.to_string(), password.to_string())
                    }
                    (false, None, None) => (user.clone(), password_from_stdin()),
                };
                let options = Some(UserAddOptions { no_password });
                let req = AuthUserAddRequest { name: name.clone(), password, options, ..Default::default() };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthUserAdd, &req)?;
                self.said(&resp, || println!("User {name} created"));
            }
            UserCommand::Delete { name } => {
                let resp: AuthHeaderResponse =
                    self.client.call(Method::AuthUserDelete, &AuthUserRequest { name: name.clone() })?;
                self.said(&resp, || println!("User {name} deleted"));
            }
            UserCommand::Get { name, detail } => {
                let resp: AuthUserGetResponse =
                    self.client.call(Method::AuthUserGet, &AuthUserRequest { name: name.clone() })?;
                if self.format == Format::Json {
                    self.print_json(&resp);
                    return Ok(());
                }
                println!("User: {name}");
                if detail {
                    for role in &resp.roles {
                        println!();
                        print_role(role, &self.role_perms(role)?);
                    }
                } else {
                    println!("Roles:{}", resp.roles.iter().map(|r| format!(" {r}")).collect::<String>());
                }
            }
            UserCommand::List => {
                let resp: AuthUserListResponse = self.client.call(Method::AuthUserList, &EmptyRequest {})?;
                self.said(&resp, || resp.users.iter().for_each(|u| println!("{u}")));
            }
            UserCommand::Passwd { name, interactive: _ } => {
                let req = AuthUserChangePasswordRequest { name, password: password_from_stdin(), ..Default::default() };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthUserChangePassword, &req)?;
                self.said(&resp, || println!("Password updated"));
            }
            UserCommand::GrantRole { user, role } => {
                let req = AuthUserGrantRoleRequest { user: user.clone(), role: role.clone() };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthUserGrantRole, &req)?;
                self.said(&resp, || println!("Role {role} is granted to user {user}"));
            }
            UserCommand::RevokeRole { user, role } => {
                let req = AuthUserRevokeRoleRequest { name: user.clone(), role: role.clone() };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthUserRevokeRole, &req)?;
                self.said(&resp, || println!("Role {role} is revoked from user {user}"));
            }
        }
        Ok(())
    }

    pub(crate) fn role(&self, command: RoleCommand) -> Outcome {
        match command {
            RoleCommand::Add { name } => {
                let resp: AuthHeaderResponse =
                    self.client.call(Method::AuthRoleAdd, &AuthRoleAddRequest { name: name.clone() })?;
                self.said(&resp, || println!("Role {name} created"));
            }
            RoleCommand::Delete { name } => {
                let resp: AuthHeaderResponse =
                    self.client.call(Method::AuthRoleDelete, &AuthRoleRequest { role: name.clone() })?;
                self.said(&resp, || println!("Role {name} deleted"));
            }
            RoleCommand::Get { name } if self.format == Format::Json => {
                let resp: AuthRoleGetResponse =
                    self.client.call(Method::AuthRoleGet, &AuthRoleRequest { role: name })?;
                self.print_json(&resp);
            }
            RoleCommand::Get { name } => print_role(&name, &self.role_perms(&name)?),
            RoleCommand::List => {
                let resp: AuthRoleListResponse = self.client.call(Method::AuthRoleList, &EmptyRequest {})?;
                self.said(&resp, || resp.roles.iter().for_each(|r| println!("{r}")));
            }
            RoleCommand::GrantPermission { role, perm_type, key, range_end, prefix, from_key } => {
                let perm_type = match perm_type.to_uppercase().as_str() {
                    "READ" => PermissionType::Read,
                    "WRITE" => PermissionType::Write,
                    "READWRITE" => PermissionType::Readwrite,
                    _ => bad_args(&format!("invalid permission type: {perm_type}")),
                };
                let (key, range_end) = perm_range(&key, range_end, prefix, from_key);
                let perm = Some(Permission { perm_type: perm_type as i32, key, range_end });
                let req = AuthRoleGrantPermissionRequest { name: role.clone(), perm };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthRoleGrantPermission, &req)?;
                self.said(&resp, || println!("Role {role} updated"));
            }
            RoleCommand::RevokePermission { role, key: name, range_end, prefix, from_key } => {
                let (key, range_end) = perm_range(&name, range_end, prefix, from_key);
                let req = AuthRoleRevokePermissionRequest { role: role.clone(), key, range_end: range_end.clone() };
                let resp: AuthHeaderResponse = self.client.call(Method::AuthRoleRevokePermission, &req)?;
                let end = String::from_utf8_lossy(&range_end);
                self.said(&resp, || match range_end.as_slice() {
                    [] => println!("Permission of key {name} is revoked from role {role}"),
                    [0] => println!("Permission of range [{name}, <open ended> is revoked from role {role}"),
                    _ => println!("Permission of range [{name}, {end}) is revoked from role {role}"),
                });
            }
        }
        Ok(())
    }
}
