//! etcd's gRPC API on the client port, driven by the reference client: etcdctl 3.4
//! (`ETCDCTL_API=3`, grpc-go), against a real `raftkv` process, and by curl over HTTP/2 for
//! gRPC's health check, which etcdctl never calls. The same port keeps serving the JSON
//! gateway.

use std::process::Command;
use std::time::Duration;

use crate::harness::process::{ctl, Member};

/// `etcdctl --endpoints endpoint args...`: (exit code, stdout, stderr).
fn etcdctl(endpoint: &str, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--dial-timeout", "5s", "--command-timeout", "5s"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl 3.4 (apt-get install etcd-client)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn etcdctl_speaks_grpc_to_a_member_and_gets_etcds_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("grpc", dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let e = m.endpoint();
    let ok = |args: &[&str]| {
        let (code, out, err) = etcdctl(&e, args, "");
        assert_eq!(code, Some(0), "etcdctl {args:?}: {err}");
        out
    };
    assert_eq!(ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(ok(&["put", "foo/a", "1"]), "OK\n");
    assert_eq!(ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(ok(&["get", "foo", "--prefix", "--keys-only", "--order", "DESCEND"]), "foo/a\n\nfoo\n\n");
    let json = ok(&["get", "foo", "-w", "json"]);
    assert!(
        json.contains(r#""kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}]"#),
        "{json}"
    );
    let txn = "value(\"foo\") = \"bar\"\n\nput foo baz\n\nput foo nope\n\n";
    assert_eq!(etcdctl(&e, &["txn"], txn).1, "SUCCESS\n\nOK\n");
    assert_eq!(ok(&["del", "foo", "--prev-kv"]), "1\nfoo\nbaz\n");
    let grant = ok(&["lease", "grant", "60"]);
    assert!(grant.starts_with("lease ") && grant.ends_with(" granted with TTL(60s)\n"), "{grant}");
    assert!(ok(&["member", "list"]).contains(", started, grpc, "));
    assert!(ok(&["endpoint", "status"]).contains(", 3.4.23, "));
    // etcdctl 3.4 prints health on stderr.
    let (code, _, err) = etcdctl(&e, &["endpoint", "health"], "");
    assert!(code == Some(0) && err.contains("is healthy: successfully committed proposal"), "{err}");

    // etcd's errors, with their gRPC codes, as etcdctl prints them.
    let (code, _, err) = etcdctl(&e, &["put", "", "x"], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("code = InvalidArgument desc = etcdserver: key is not provided"), "{err}");
    let (_, _, err) = etcdctl(&e, &["get", "foo", "--rev", "1000"], "");
    assert!(err.contains("Error: etcdserver: mvcc: required revision is a future revision"), "{err}");

    // The same port still serves the gateway.
    assert_eq!(String::from_utf8_lossy(&ctl(&e, &["get", "foo/a"]).stdout), "foo/a\n1\n");
}

/// `curl --http2-prior-knowledge` as a bare gRPC client, for a call etcdctl never makes: the
/// answer's trailers and its message bytes.
fn grpc_call(endpoint: &str, path: &str, message: &[u8]) -> (String, Vec<u8>) {
    use std::io::Write;
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let mut child = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["--data-binary", "@-", "-D", "/dev/stderr", "-o", "-", &format!("http://{endpoint}{path}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl with HTTP/2");
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stderr).replace('\r', ""), out.stdout)
}

#[test]
fn health_hashkv_and_auth_over_grpc_answer_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("grpc-unary", dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let e = m.endpoint();

    // grpc-go's health server as etcd registers it: "" serves, any other name is unknown.
    let (trailers, message) = grpc_call(&e, "/grpc.health.v1.Health/Check", b"");
    assert!(trailers.contains("grpc-status: 0\n"), "{trailers}");
    assert_eq!(message, b"\x00\x00\x00\x00\x02\x08\x01", "status SERVING");
    let (trailers, message) = grpc_call(&e, "/grpc.health.v1.Health/Check", b"\x0a\x03abc");
    assert!(trailers.contains("grpc-status: 5\ngrpc-message: unknown service\n"), "{trailers}");
    assert!(message.is_empty());

    let ok = |args: &[&str]| {
        let (code, out, err) = etcdctl(&e, args, "");
        assert_eq!(code, Some(0), "etcdctl {args:?}: {err}");
        out
    };
    let fails = |args: &[&str]| {
        let (code, _, err) = etcdctl(&e, args, "");
        assert_eq!(code, Some(1), "etcdctl {args:?} succeeded");
        err.lines().last().unwrap_or_default().to_string()
    };
    ok(&["put", "a", "1"]);
    let json = ok(&["endpoint", "hashkv", "-w", "json"]);
    assert!(json.contains(r#""revision":2,"#) && json.contains(r#""compact_revision":-1"#), "{json}");
    assert_eq!(
        fails(&["endpoint", "hashkv", "--rev", "9"]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );

    // etcdctl's auth verbs, each answered as a fresh etcd 3.4.23 answers them.
    assert_eq!(fails(&["auth", "enable"]), "Error: etcdserver: root user does not exist");
    assert_eq!(ok(&["auth", "disable"]), "Authentication Disabled\n");
    assert_eq!(ok(&["user", "list"]), "");
    assert_eq!(ok(&["role", "list"]), "");
    assert_eq!(fails(&["user", "get", "foo"]), "Error: etcdserver: user name not found");
    assert_eq!(fails(&["user", "delete", "foo"]), "Error: etcdserver: user name not found");
    assert_eq!(fails(&["user", "grant-role", "foo", "r"]), "Error: etcdserver: user name not found");
    assert_eq!(fails(&["user", "revoke-role", "foo", "r"]), "Error: etcdserver: user name not found");
    assert_eq!(fails(&["role", "get", "r"]), "Error: etcdserver: role name not found");
    assert_eq!(fails(&["role", "delete", "r"]), "Error: etcdserver: role name not found");
    assert_eq!(fails(&["role", "grant-permission", "r", "readwrite", "k"]), "Error: etcdserver: role name not found");
    assert_eq!(fails(&["role", "revoke-permission", "r", "k"]), "Error: etcdserver: role name not found");
    let (_, _, err) = etcdctl(&e, &["user", "passwd", "foo", "--interactive=false"], "pw\n");
    assert!(err.ends_with("Error: etcdserver: user name not found\n"), "{err}");
    // The two calls that would store something are refused with gRPC's Unimplemented.
    let (_, _, err) = etcdctl(&e, &["user", "add", "foo:bar"], "");
    assert!(
        err.contains("code = Unimplemented desc = raftkv: storing users and roles is not implemented yet"),
        "{err}"
    );
    let (_, _, err) = etcdctl(&e, &["role", "add", "r"], "");
    assert!(
        err.contains("code = Unimplemented desc = raftkv: storing users and roles is not implemented yet"),
        "{err}"
    );
}
