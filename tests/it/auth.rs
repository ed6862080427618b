//! Auth as etcd 3.4.23 enforces it, side by side: the same users, roles and grants on a
//! fresh raftkv and a fresh etcd, then every KV, txn, watch, lease, maintenance and auth call
//! made by each user over the gateway, with each answer's status and error compared. Then
//! tokens (expiry, password change, disable/enable) and etcdctl's `--user` against raftkv.
//! The side-by-side part is skipped (with a note) when etcd is not installed; CI installs it.
//! `scripts/auth-matrix.sh` prints the whole table.

use std::net::SocketAddr;
use std::time::Duration;

use super::etcdctl_compat::ETCD_BIN;
use crate::harness::http::{post, Conn, Reply};
use crate::harness::process::Member;

/// Where raftkv answers otherwise than etcd 3.4.23 on purpose (docs/compat.md): a from-key
/// watch is checked over the range it watches, where etcd checks its first key only.
const DEPARTURES: &[&str] = &["ro watch from-key p/", "rw watch from-key p/"];

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One gateway call with an optional `Authorization` header.
fn call(addr: SocketAddr, token: Option<&str>, path: &str, body: &str) -> Reply {
    let mut conn = Conn::open(addr, Duration::from_secs(10)).expect("connect");
    let auth = token.map(|t| format!("Authorization: {t}"));
    let mut headers = vec!["Connection: close"];
    headers.extend(auth.as_deref());
    conn.request("POST", path, &headers, body.as_bytes()).expect("write the request");
    conn.read_reply().expect("read the answer")
}

/// The first message of a gateway watch: `created`, or the reason it was canceled.
fn watch(addr: SocketAddr, token: Option<&str>, create: &str) -> String {
    let mut conn = Conn::open(addr, Duration::from_secs(10)).expect("connect");
    let auth = token.map(|t| format!("Authorization: {t}"));
    let headers: Vec<&str> = auth.as_deref().into_iter().collect();
    let body = format!(r#"{{"create_request":{create}}}"#);
    conn.request("POST", "/v3/watch", &headers, body.as_bytes()).expect("write the request");
    let mut head = conn.read_head().expect("read the head");
    if head.status != 200 {
        conn.read_body(&mut head).expect("read the body");
        return outcome(&head);
    }
    let chunk = conn.read_chunk(&mut head).expect("read a message").unwrap_or_default();
    let text = String::from_utf8_lossy(&chunk).into_owned();
    match field(&text, "cancel_reason") {
        Some(reason) => format!("canceled: {reason}"),
        None if text.contains(r#""created":true"#) => "created".into(),
        None => format!("unexpected: {text}"),
    }
}

/// A string field of a JSON text (enough for etcd's answers, which escape nothing here).
fn field(text: &str, name: &str) -> Option<String> {
    let at = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
    Some(text[at..].split('"').next()?.to_string())
}

/// What a call's answer says: `200` or the status and etcd's error text.
fn outcome(reply: &Reply) -> String {
    match reply.status {
        200 => "200".into(),
        status => format!("{status} {}", field(&reply.text(), "error").unwrap_or_else(|| reply.text())),
    }
}

/// A role's one permission: type, key, range end.
type Grant = (&'static str, &'static str, &'static str);

/// The users of the matrix: name and the role's permission (`None`: no role at all).
const USERS: &[(&str, Option<Grant>)] = &[
    ("ro", Some(("READ", "p/", "p0"))),
    ("wo", Some(("WRITE", "p/", "p0"))),
    ("rw", Some(("READWRITE", "p/", "p0"))),
    ("key", Some(("READWRITE", "k1", ""))),
    ("fk", Some(("READ", "q", "\0"))),
    ("none", None),
];

/// Users, roles and data as the matrix expects them; auth enabled at the end.
fn set_up(addr: SocketAddr) {
    let ok = |path: &str, body: String| {
        let reply = post(addr, path, &body);
        assert_eq!(reply.status, 200, "{path} {body}: {}", reply.text());
    };
    for key in ["p/a", "p/b", "k1", "other", "q"] {
        ok("/v3/kv/put", format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64("v")));
    }
    ok("/v3/lease/grant", r#"{"TTL":600,"ID":1000}"#.into());
    ok("/v3/lease/grant", r#"{"TTL":600,"ID":2000}"#.into());
    ok("/v3/kv/put", format!(r#"{{"key":"{}","value":"{}","lease":1000}}"#, b64("p/l"), b64("v")));
    ok("/v3/kv/put", format!(r#"{{"key":"{}","value":"{}","lease":2000}}"#, b64("other/l"), b64("v")));
    for (name, perm) in USERS.iter().copied().chain([("root", None)]) {
        ok("/v3/auth/user/add", format!(r#"{{"name":"{name}","password":"pw"}}"#));
        let Some((perm_type, key, end)) = perm else { continue };
        ok("/v3/auth/role/add", format!(r#"{{"name":"{name}"}}"#));
        let end = if end.is_empty() { String::new() } else { format!(r#","range_end":"{}""#, b64(end)) };
        let perm = format!(r#"{{"permType":"{perm_type}","key":"{}"{end}}}"#, b64(key));
        ok("/v3/auth/role/grant", format!(r#"{{"name":"{name}","perm":{perm}}}"#));
        ok("/v3/auth/user/grant", format!(r#"{{"user":"{name}","role":"{name}"}}"#));
    }
    ok("/v3/auth/role/add", r#"{"name":"root"}"#.into());
    ok("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#.into());
    ok("/v3/auth/enable", "{}".into());
}

fn token(addr: SocketAddr, user: &str) -> String {
    let reply = post(addr, "/v3/auth/authenticate", &format!(r#"{{"name":"{user}","password":"pw"}}"#));
    field(&reply.text(), "token").unwrap_or_else(|| panic!("no token for {user}: {}", reply.text()))
}

/// Every call of the matrix: a label, then the gateway path and body (`watch` for a watch
/// create, whose first message is the answer).
fn calls() -> Vec<(&'static str, &'static str, String)> {
    let kv = |k: &str| b64(k);
    let range = |k: &str, end: &str| {
        let end = if end.is_empty() { String::new() } else { format!(r#","range_end":"{}""#, b64(end)) };
        format!(r#"{{"key":"{}"{end}}}"#, kv(k))
    };
    let put = |k: &str| format!(r#"{{"key":"{}","value":"{}"}}"#, kv(k), kv("w"));
    let cmp = |k: &str| format!(r#"{{"key":"{}","target":"VERSION","result":"GREATER","version":"0"}}"#, kv(k));
    let get_op = |k: &str| format!(r#"{{"request_range":{{"key":"{}"}}}}"#, kv(k));
    let put_op = |k: &str| format!(r#"{{"request_put":{{"key":"{}","value":"{}"}}}}"#, kv(k), kv("t"));
    vec![
        ("range p/a", "/v3/kv/range", range("p/a", "")),
        ("range prefix p/", "/v3/kv/range", range("p/", "p0")),
        ("range from-key p/", "/v3/kv/range", range("p/", "\0")),
        ("range from-key q", "/v3/kv/range", range("q", "\0")),
        ("range k1", "/v3/kv/range", range("k1", "")),
        ("range k1..k2", "/v3/kv/range", range("k1", "k2")),
        ("range other", "/v3/kv/range", range("other", "")),
        ("range all", "/v3/kv/range", range("\0", "\0")),
        ("put p/a", "/v3/kv/put", put("p/a")),
        ("put k1", "/v3/kv/put", put("k1")),
        ("put other", "/v3/kv/put", put("other")),
        ("put p/x prev_kv", "/v3/kv/put", format!(r#"{{"key":"{}","value":"{}","prev_kv":true}}"#, kv("p/x"), kv("w"))),
        ("put p/y on other's lease", "/v3/kv/put", format!(r#"{{"key":"{}","lease":2000}}"#, kv("p/y"))),
        ("delete p/b", "/v3/kv/deleterange", range("p/b", "")),
        (
            "delete prefix p/ prev_kv",
            "/v3/kv/deleterange",
            format!(r#"{{"key":"{}","range_end":"{}","prev_kv":true}}"#, kv("p/z"), kv("p0")),
        ),
        ("delete other", "/v3/kv/deleterange", range("other", "")),
        ("txn read-only", "/v3/kv/txn", format!(r#"{{"compare":[{}],"success":[{}]}}"#, cmp("p/a"), get_op("p/a"))),
        (
            "txn put in success",
            "/v3/kv/txn",
            format!(r#"{{"compare":[{}],"success":[{}]}}"#, cmp("p/a"), put_op("p/a")),
        ),
        (
            "txn put other in failure",
            "/v3/kv/txn",
            format!(r#"{{"compare":[{}],"success":[{}],"failure":[{}]}}"#, cmp("p/a"), get_op("p/a"), put_op("other")),
        ),
        (
            "txn compare other",
            "/v3/kv/txn",
            format!(r#"{{"compare":[{}],"success":[{}]}}"#, cmp("other"), get_op("p/a")),
        ),
        ("lease grant", "/v3/lease/grant", r#"{"TTL":60}"#.into()),
        ("lease timetolive", "/v3/lease/timetolive", r#"{"ID":1000,"keys":true}"#.into()),
        ("lease leases", "/v3/lease/leases", "{}".into()),
        ("lease revoke other's", "/v3/lease/revoke", r#"{"ID":2000}"#.into()),
        ("compaction", "/v3/kv/compaction", r#"{"revision":2}"#.into()),
        ("status", "/v3/maintenance/status", "{}".into()),
        ("hash", "/v3/maintenance/hash", "{}".into()),
        ("defragment", "/v3/maintenance/defragment", "{}".into()),
        ("alarm list", "/v3/maintenance/alarm", "{}".into()),
        ("member list", "/v3/cluster/member/list", "{}".into()),
        ("user list", "/v3/auth/user/list", "{}".into()),
        ("user get ro", "/v3/auth/user/get", r#"{"name":"ro"}"#.into()),
        ("role get ro", "/v3/auth/role/get", r#"{"role":"ro"}"#.into()),
        ("role list", "/v3/auth/role/list", "{}".into()),
        ("role add", "/v3/auth/role/add", r#"{"name":"extra"}"#.into()),
        ("watch p/a", "watch", format!(r#"{{"key":"{}"}}"#, kv("p/a"))),
        ("watch prefix p/", "watch", range("p/", "p0")),
        ("watch from-key p/", "watch", range("p/", "\0")),
        ("watch k1", "watch", range("k1", "")),
        ("lease revoke p/l's", "/v3/lease/revoke", r#"{"ID":1000}"#.into()),
    ]
}

/// Every call by every caller, as `caller call => outcome` lines.
fn matrix(addr: SocketAddr) -> Vec<String> {
    let mut callers: Vec<(String, Option<String>)> =
        vec![("anonymous".into(), None), ("garbage".into(), Some("not-a-token.1".into()))];
    for (user, _) in USERS {
        callers.push((user.to_string(), Some(token(addr, user))));
    }
    callers.push(("root".into(), Some(token(addr, "root"))));
    let mut lines = Vec::new();
    for (caller, token) in &callers {
        for (label, path, body) in calls() {
            let got = match path {
                "watch" => watch(addr, token.as_deref(), &body),
                _ => outcome(&call(addr, token.as_deref(), path, &body)),
            };
            lines.push(format!("{caller} {label} => {got}"));
        }
    }
    lines
}

fn fresh_pair(name: &str) -> Option<(tempfile::TempDir, Member, Member)> {
    if !std::path::Path::new(ETCD_BIN).exists() {
        eprintln!("etcd is not installed (apt-get install etcd-server): skipping the side-by-side");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut raftkv = Member::new(name, dir.path());
    raftkv.spawn(&dir.path().join("raftkv"), "", &[]);
    raftkv.wait_healthy(Duration::from_secs(20));
    let mut etcd = Member::new(name, dir.path());
    etcd.spawn_binary(ETCD_BIN, &dir.path().join("etcd"));
    etcd.wait_healthy(Duration::from_secs(20));
    Some((dir, raftkv, etcd))
}

fn addr(m: &Member) -> SocketAddr {
    m.endpoint().parse().unwrap()
}

#[test]
fn every_call_of_every_user_is_allowed_or_refused_as_etcd_does() {
    let Some((_dir, raftkv, etcd)) = fresh_pair("auth-matrix") else { return };
    set_up(addr(&etcd));
    set_up(addr(&raftkv));
    let theirs = matrix(addr(&etcd));
    let ours = matrix(addr(&raftkv));
    let mut differ = Vec::new();
    for (want, got) in theirs.iter().zip(&ours) {
        let departs = DEPARTURES.iter().any(|d| want.starts_with(&format!("{d} =>")));
        if (want != got) != departs {
            differ.push(format!("etcd:   {want}\nraftkv: {got}"));
        }
    }
    // scripts/auth-matrix.sh: the whole table, one line a call, raftkv's answer beside etcd's
    // where they differ.
    if std::env::var_os("AUTH_MATRIX_PRINT").is_some() {
        println!("auth-matrix: caller call => etcd 3.4.23's answer [| raftkv's, where it differs]");
        for (want, got) in theirs.iter().zip(&ours) {
            match got.split_once(" => ") {
                Some((_, answer)) if want != got => println!("auth-matrix: DIFF {want} | raftkv: {answer}"),
                _ => println!("auth-matrix: same {want}"),
            }
        }
        let same = theirs.iter().zip(&ours).filter(|(a, b)| a == b).count();
        println!("auth-matrix: {} calls, {same} answered alike, {} differ", theirs.len(), theirs.len() - same);
    }
    assert_eq!(theirs.len(), ours.len());
    assert!(differ.is_empty(), "{} answers differ from etcd's:\n{}", differ.len(), differ.join("\n"));
}

fn ok(addr: SocketAddr, token: Option<&str>, path: &str, body: &str) {
    let reply = call(addr, token, path, body);
    assert_eq!(reply.status, 200, "{path} {body}: {}", reply.text());
}

fn range_a(addr: SocketAddr, token: &str) -> String {
    outcome(&call(addr, Some(token), "/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("p/a"))))
}

/// What old tokens do after a password change and after auth disable and enable, on one
/// member: the answers to a read with each.
fn old_tokens(addr: SocketAddr) -> Vec<String> {
    set_up(addr);
    let (ro, root) = (token(addr, "ro"), token(addr, "root"));
    let mut seen = vec![range_a(addr, &ro)];
    ok(addr, Some(&root), "/v3/auth/user/changepw", r#"{"name":"ro","password":"new"}"#);
    seen.push(range_a(addr, &ro));
    let rw = token(addr, "rw");
    ok(addr, Some(&root), "/v3/auth/disable", "{}");
    seen.push(range_a(addr, &rw));
    ok(addr, None, "/v3/auth/enable", "{}");
    seen.push(range_a(addr, &rw));
    seen.push(range_a(addr, &root));
    seen.push(range_a(addr, &token(addr, "rw")));
    seen
}

#[test]
fn old_tokens_stop_working_as_etcds_after_a_password_change_or_auth_disable_and_enable() {
    let Some((_dir, raftkv, etcd)) = fresh_pair("auth-tokens") else { return };
    let theirs = old_tokens(addr(&etcd));
    assert_eq!(theirs[0], "200");
    assert_eq!(theirs[1], "401 etcdserver: invalid auth token");
    assert_eq!(old_tokens(addr(&raftkv)), theirs);
}

#[test]
fn a_simple_token_lives_its_ttl_from_its_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("auth-ttl", dir.path());
    m.spawn(&dir.path().join("data"), "", &["--auth-token-ttl", "2", "--bcrypt-cost", "4"]);
    m.wait_healthy(Duration::from_secs(20));
    set_up(addr(&m));
    let ro = token(addr(&m), "ro");
    assert!(ro.len() > 17 && ro.as_bytes()[16] == b'.' && ro[..16].bytes().all(|b| b.is_ascii_alphabetic()), "{ro}");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(range_a(addr(&m), &ro), "200", "used within its TTL, it lives on");
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(range_a(addr(&m), &ro), "401 etcdserver: invalid auth token");
}

#[test]
fn a_jwt_signed_by_another_key_is_refused_and_an_auth_change_makes_ours_old() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let pair = rcgen::KeyPair::generate().unwrap();
        let (public, private) = (dir.path().join(format!("{name}.pub")), dir.path().join(format!("{name}.key")));
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        std::fs::write(&private, pair.serialize_pem()).unwrap();
        format!("jwt,pub-key={},priv-key={},sign-method=ES256,ttl=1m", public.display(), private.display())
    };
    let (ours, theirs) = (key("ours"), key("theirs"));
    let mut m = Member::new("auth-jwt", dir.path());
    m.spawn(&dir.path().join("data"), "", &["--auth-token", &ours, "--bcrypt-cost", "4"]);
    m.wait_healthy(Duration::from_secs(20));
    let mut other = Member::new("auth-jwt-other", dir.path());
    other.spawn(&dir.path().join("other"), "", &["--auth-token", &theirs, "--bcrypt-cost", "4"]);
    other.wait_healthy(Duration::from_secs(20));
    set_up(addr(&m));
    set_up(addr(&other));
    let (ro, foreign) = (token(addr(&m), "ro"), token(addr(&other), "ro"));
    assert_eq!(ro.split('.').count(), 3, "{ro}");
    assert_eq!(range_a(addr(&m), &ro), "200");
    assert_eq!(range_a(addr(&m), &foreign), "401 etcdserver: invalid auth token");
    assert_eq!(range_a(addr(&m), "e30.e30.garbage"), "401 etcdserver: invalid auth token");
    ok(addr(&m), Some(&token(addr(&m), "root")), "/v3/auth/role/add", r#"{"name":"later"}"#);
    assert_eq!(range_a(addr(&m), &ro), "400 etcdserver: revision of auth store is old");
    assert_eq!(range_a(addr(&m), &token(addr(&m), "ro")), "200");
}

/// etcdctl's `--user` and `--password` flags, and what it prints then: etcdctl against etcd
/// and raftkvctl against raftkv, also etcdctl against raftkv.
#[test]
fn etcdctl_and_raftkvctl_authenticate_with_user_flags_as_against_etcd() {
    let Some((dir, raftkv, etcd)) = fresh_pair("auth-ctl") else { return };
    // A second raftkv for etcdctl, since the steps change what they run on.
    let mut for_etcdctl = Member::new("auth-ctl-2", dir.path());
    for_etcdctl.spawn(&dir.path().join("raftkv-2"), "", &[]);
    for_etcdctl.wait_healthy(Duration::from_secs(20));
    for m in [&etcd, &raftkv, &for_etcdctl] {
        set_up(addr(m));
    }
    let steps: &[&[&str]] = &[
        &["--user", "ro:pw", "get", "p/a"],
        &["--user", "ro", "--password", "pw", "get", "p/a"],
        &["--user", "ro:pw", "put", "p/a", "x"],
        &["--user", "ro:bad", "get", "p/a"],
        &["--user", "ro", "get", "p/a"],
        &["get", "p/a"],
        &["--user", "rw:pw", "put", "p/a", "x"],
        &["--user", "rw:pw", "del", "p/", "--prefix"],
        &["--user", "key:pw", "txn"],
        &["--user", "root:pw", "user", "get", "ro", "--detail"],
        &["--user", "root:pw", "role", "get", "fk"],
        &["--user", "ro:pw", "user", "list"],
        &["--user", "root:pw", "user", "passwd", "ro", "--interactive=false"],
        &["--user", "ro:pw", "get", "p/a"],
        &["--user", "root:pw", "auth", "disable"],
        &["get", "p/a"],
    ];
    let answer = |code: Option<i32>, out: &[u8], err: &[u8]| {
        let err = String::from_utf8_lossy(err);
        let last = err.lines().rfind(|l| !l.starts_with('{')).unwrap_or_default().to_string();
        format!("{}{last}\nexit {code:?}", String::from_utf8_lossy(out))
    };
    let stdin = |args: &[&str]| match args {
        [.., "txn"] => "\n\nput k1 t\n\n",
        [.., "--interactive=false"] => "new\n",
        _ => "",
    };
    for (i, args) in steps.iter().enumerate() {
        let (code, out, err) = super::grpc::etcdctl(&etcd.endpoint(), args, stdin(args));
        let want = answer(code, out.as_bytes(), err.as_bytes());
        let (code, out, err) = super::grpc::etcdctl(&for_etcdctl.endpoint(), args, stdin(args));
        assert_eq!(answer(code, out.as_bytes(), err.as_bytes()), want, "etcdctl against raftkv, step {i}: {args:?}");
        let ours = crate::harness::process::ctl_stdin(&raftkv.endpoint(), args, stdin(args));
        let got = answer(ours.status.code(), &ours.stdout, &ours.stderr);
        assert_eq!(got, want, "raftkvctl, step {i}: {args:?}");
    }
}

/// Over gRPC with `raftkv::Client`: a watch create is checked with the stream's token (a
/// refused one is canceled at once with etcd's reason, the stream going on), a revoke does
/// not end a running watch (etcd 3.4), and a client whose token was invalidated
/// authenticates again by itself.
#[test]
fn grpc_watches_are_checked_and_the_client_authenticates_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("auth-grpc", dir.path());
    m.spawn(&dir.path().join("data"), "", &["--bcrypt-cost", "4"]);
    m.wait_healthy(Duration::from_secs(20));
    set_up(addr(&m));
    let endpoints = [m.endpoint()];
    let ro = raftkv::Client::new(&endpoints, Duration::from_secs(5)).unwrap().with_credentials("ro", "pw").unwrap();
    let first = |key: &str| {
        let mut got = None;
        let create = raftkv::pb::WatchCreateRequest { key: key.into(), ..Default::default() };
        ro.watch(&create, |resp| {
            got = Some(resp);
            false
        })
        .unwrap();
        got.unwrap()
    };
    let root = raftkv::Client::new(&endpoints, Duration::from_secs(5)).unwrap().with_credentials("root", "pw").unwrap();
    let allowed = first("p/a");
    assert!(allowed.created && !allowed.canceled, "{allowed:?}");
    let refused = first("other");
    assert!(refused.created && refused.canceled && refused.watch_id == -1, "{refused:?}");
    assert_eq!(refused.cancel_reason, "rpc error: code = PermissionDenied desc = etcdserver: permission denied");
    // A watch that was allowed keeps running when the permission goes (etcd 3.4 checks only
    // on create): an event after the revoke still arrives.
    let watcher = ro.clone();
    let events = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let create = raftkv::pb::WatchCreateRequest { key: "p/a".into(), ..Default::default() };
        watcher
            .watch(&create, |resp| {
                seen.extend(resp.events.iter().filter_map(|e| e.kv.as_ref()).map(|kv| kv.value.clone()));
                seen.is_empty()
            })
            .unwrap();
        seen
    });
    std::thread::sleep(Duration::from_millis(300));
    let revoke =
        raftkv::pb::AuthRoleRevokePermissionRequest { role: "ro".into(), key: "p/".into(), range_end: "p0".into() };
    let _: raftkv::pb::AuthHeaderResponse =
        root.call(raftkv::service::Method::AuthRoleRevokePermission, &revoke).unwrap();
    root.put(&raftkv::pb::PutRequest::new("p/a", "after the revoke")).unwrap();
    assert_eq!(events.join().unwrap(), [b"after the revoke".to_vec()]);
    let grant = raftkv::pb::AuthRoleGrantPermissionRequest {
        name: "ro".into(),
        perm: Some(raftkv::pb::Permission { perm_type: 0, key: "p/".into(), range_end: "p0".into() }),
    };
    let _: raftkv::pb::AuthHeaderResponse =
        root.call(raftkv::service::Method::AuthRoleGrantPermission, &grant).unwrap();
    // A password change (to the same password) kills ro's token: the client's next call is
    // refused with `invalid auth token`, and it authenticates again and calls once more.
    let changepw =
        raftkv::pb::AuthUserChangePasswordRequest { name: "ro".into(), password: "pw".into(), ..Default::default() };
    let _: raftkv::pb::AuthHeaderResponse =
        root.call(raftkv::service::Method::AuthUserChangePassword, &changepw).unwrap();
    let read = ro.range(&raftkv::pb::RangeRequest::key("p/a"));
    assert!(read.is_ok(), "the client authenticated again: {read:?}");
    let denied = ro.put(&raftkv::pb::PutRequest::new("p/a", "x")).unwrap_err();
    assert_eq!(denied.to_string(), "etcdserver: permission denied");
}

/// In a 3-member cluster an `Authenticate` entry assigns its simple token on every member,
/// so a token from one member works on the others once they applied it (etcd's design); a
/// write checked on apply is refused alike everywhere, and followers' own checks agree.
#[test]
fn a_simple_token_from_one_member_works_on_every_member() {
    use raftkv::auth::Credentials;
    use raftkv::pb::*;
    let cluster = crate::harness::cluster::Cluster::start(3, |cfg| cfg.bcrypt_cost = 4);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let node = cluster.node(leader);
    let user = |name: &str, role: Option<(&str, &str)>| {
        let add = AuthUserAddRequest { name: name.into(), password: "pw".into(), ..Default::default() };
        node.user_add(&add).unwrap();
        if let Some((key, end)) = role {
            node.role_add(&AuthRoleAddRequest { name: name.into() }).unwrap();
            let perm = Permission { perm_type: PermissionType::Read as i32, key: key.into(), range_end: end.into() };
            node.role_grant_permission(&AuthRoleGrantPermissionRequest { name: name.into(), perm: Some(perm) })
                .unwrap();
        }
        let role = if role.is_some() { name } else { "root" };
        node.user_grant_role(&AuthUserGrantRoleRequest { user: name.into(), role: role.into() }).unwrap();
    };
    user("root", None);
    node.role_add(&AuthRoleAddRequest { name: "root".into() }).unwrap();
    user("ro", Some(("p/", "p0")));
    node.auth_enable().unwrap();
    let follower = cluster.node((leader + 1) % 3);
    let login = AuthenticateRequest { name: "ro".into(), password: "pw".into() };
    let token = follower.authenticate(&login).unwrap().token;
    let applied = follower.applied_index();
    let everywhere = || cluster.running().all(|(_, m)| m.applied_index() >= applied);
    assert!(crate::harness::eventually(Duration::from_secs(10), everywhere));
    for (i, member) in cluster.running() {
        let ro = member.with_credentials(&Credentials { token: Some(token.clone()), common_name: None }).unwrap();
        assert!(ro.range(RangeRequest::key("p/a")).is_ok(), "member {i}");
        assert!(matches!(ro.range(RangeRequest::key("q")), Err(raftkv::Error::PermissionDenied)), "member {i}");
        assert!(matches!(ro.put(PutRequest::new("p/a", "x")), Err(raftkv::Error::PermissionDenied)), "member {i}");
        assert!(matches!(member.range(RangeRequest::key("p/a")), Err(raftkv::Error::UserEmpty)), "member {i}");
    }
}

/// A simple token used on another member right after it was assigned: that member waits
/// (at most the request timeout) until it has applied the token's entry instead of refusing
/// it, as etcd's `isValidSimpleToken` does; a made-up token ahead of the log is refused once
/// that time is up, and one behind the applied index at once.
#[test]
fn a_token_used_at_once_on_another_member_waits_for_its_entry() {
    use raftkv::auth::Credentials;
    use raftkv::pb::*;
    use raftkv::service::{self, Service};
    let cluster = crate::harness::cluster::Cluster::start(3, |cfg| {
        cfg.bcrypt_cost = 4;
        cfg.request_timeout_ms = 1000;
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let node = cluster.node(leader);
    node.user_add(&AuthUserAddRequest { name: "root".into(), password: "pw".into(), ..Default::default() }).unwrap();
    node.role_add(&AuthRoleAddRequest { name: "root".into() }).unwrap();
    node.user_grant_role(&AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() }).unwrap();
    node.auth_enable().unwrap();
    let others: Vec<Service> =
        cluster.running().filter(|(i, _)| *i != leader).map(|(_, n)| Service::new(n.clone())).collect();
    let range = |on: &Service, token: String| {
        let credentials = Credentials { token: Some(token), common_name: None };
        crate::harness::service_call(on, service::Request::Range(RangeRequest::key("k")), &credentials).map(|_| ())
    };
    for i in 0..50 {
        let login = AuthenticateRequest { name: "root".into(), password: "pw".into() };
        let token = node.authenticate(&login).unwrap().token;
        range(&others[i % 2], token).unwrap_or_else(|e| panic!("call {i}: {e}"));
    }
    let started = std::time::Instant::now();
    let ahead = range(&others[0], "abcdefghijklmnop.999999999".into());
    assert!(matches!(ahead, Err(raftkv::Error::InvalidAuthToken)), "{ahead:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "waited {:?}", started.elapsed());
    let started = std::time::Instant::now();
    assert!(matches!(range(&others[0], "abcdefghijklmnop.1".into()), Err(raftkv::Error::InvalidAuthToken)));
    assert!(started.elapsed() < Duration::from_millis(500), "waited {:?}", started.elapsed());
}
