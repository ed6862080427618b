//! etcd's gRPC API on the client port, driven by the reference client: etcdctl 3.4
//! (`ETCDCTL_API=3`, grpc-go), against a real `raftkv` process. The same port keeps serving
//! the JSON gateway.

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
