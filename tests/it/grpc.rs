//! etcd's gRPC API on the client port, driven by the reference client: etcdctl 3.4
//! (`ETCDCTL_API=3`, grpc-go), against a real `raftkv` process, and by curl over HTTP/2 for
//! gRPC's health check, which etcdctl never calls. The same port keeps serving the JSON
//! gateway.

use std::process::Command;
use std::time::Duration;

use crate::harness::process::{ctl, Member};

/// `etcdctl --endpoints endpoint args...`: (exit code, stdout, stderr).
pub(crate) fn etcdctl(endpoint: &str, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
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

/// A single member in a temp dir: the dir, the member (killed when dropped), its endpoint.
fn single(name: &str) -> (tempfile::TempDir, Member, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new(name, dir.path());
    m.spawn(&dir.path().join("data"), "", &[]);
    m.wait_healthy(Duration::from_secs(20));
    let endpoint = m.endpoint();
    (dir, m, endpoint)
}

/// etcdctl that must succeed: its stdout.
fn succeeds(endpoint: &str, args: &[&str]) -> String {
    let (code, out, err) = etcdctl(endpoint, args, "");
    assert_eq!(code, Some(0), "etcdctl {args:?}: {err}");
    out
}

#[test]
fn etcdctl_speaks_grpc_to_a_member_and_gets_etcds_answers() {
    let (_dir, _member, e) = single("grpc");
    let ok = |args: &[&str]| succeeds(&e, args);
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

/// A long-running etcdctl (a watch) whose output lines are read as they come.
pub(crate) struct Streaming {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Streaming {
    pub(crate) fn start(endpoint: &str, args: &[&str]) -> Streaming {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoint, "--dial-timeout", "5s"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcdctl 3.4 (apt-get install etcd-client)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The next `n` lines, within 10 s.
    pub(crate) fn next(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.lines.recv_timeout(Duration::from_secs(10)).expect("a line from etcdctl")).collect()
    }

    /// Every line until none came for a second.
    pub(crate) fn until_quiet(&self) -> Vec<String> {
        std::iter::from_fn(|| self.lines.recv_timeout(Duration::from_secs(1)).ok()).collect()
    }

    pub(crate) fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registered watchers, as `/metrics` counts them.
pub(crate) fn watchers(endpoint: &str) -> u64 {
    let addr = endpoint.trim_start_matches("http://").parse().unwrap();
    let metrics = crate::harness::http::send(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = metrics.text();
    let line = text.lines().find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total ")).expect("watcher gauge");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_for_watchers(endpoint: &str, want: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while watchers(endpoint) != want {
        assert!(std::time::Instant::now() < deadline, "watchers stay at {} (want {want})", watchers(endpoint));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn etcdctl_watches_keeps_leases_alive_and_saves_snapshots_over_grpc_streams() {
    let (dir, _member, e) = single("grpc-streams");
    let ok = |args: &[&str]| succeeds(&e, args);

    // A prefix watch sees puts and deletes as they happen, with previous values.
    let watch = Streaming::start(&e, &["watch", "w/", "--prefix", "--prev-kv"]);
    wait_for_watchers(&e, 1);
    ok(&["put", "w/a", "1"]);
    assert_eq!(watch.next(3), ["PUT", "w/a", "1"]);
    ok(&["put", "w/a", "2"]);
    assert_eq!(watch.next(5), ["PUT", "w/a", "1", "w/a", "2"]);
    ok(&["del", "w/a"]);
    assert_eq!(watch.next(5), ["DELETE", "w/a", "2", "w/a", ""]);

    // From an old revision, history comes first.
    let history = Streaming::start(&e, &["watch", "w/a", "--rev", "1"]);
    assert_eq!(history.next(9), ["PUT", "w/a", "1", "PUT", "w/a", "2", "DELETE", "w/a", ""]);

    // Interactive: several watches on one stream, and a progress request.
    let mut interactive = Streaming::start(&e, &["watch", "-i"]);
    interactive.send("watch i/x");
    interactive.send("watch i/y");
    wait_for_watchers(&e, 4);
    ok(&["put", "i/y", "why"]);
    assert_eq!(interactive.next(3), ["PUT", "i/y", "why"]);
    interactive.send("progress");
    let progress = interactive.next(1);
    assert!(progress[0].starts_with("progress notify: "), "{progress:?}");

    // A client that goes away takes its watchers with it.
    drop((watch, history, interactive));
    wait_for_watchers(&e, 0);

    // Lease keepalive is a stream too.
    let grant = ok(&["lease", "grant", "60"]);
    let id = grant.split(' ').nth(1).unwrap().to_string();
    assert_eq!(ok(&["lease", "keep-alive", "--once", &id]), format!("lease {id} keepalived with TTL(60)\n"));
    let (code, _, err) = etcdctl(&e, &["lease", "keep-alive", "--once", "1234"], "");
    assert_eq!((code, err.as_str()), (Some(2), "Error: etcdserver: requested lease not found\n"));

    // A snapshot download ends with the SHA-256 etcdctl checks, and has a bbolt file's size.
    let file = dir.path().join("snap.db");
    let saved = ok(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 512 && bytes.len() % 512 == 32, "{}", bytes.len());
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    use sha2::Digest;
    assert_eq!(sha2::Sha256::digest(body)[..], *sum);
}

/// `curl --http2-prior-knowledge` as a bare gRPC client, for a call etcdctl never makes: the
/// answer's trailers and its message bytes.
pub(crate) fn grpc_call(endpoint: &str, path: &str, message: &[u8]) -> (String, Vec<u8>) {
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
    let (_dir, _member, e) = single("grpc-unary");

    // grpc-go's health server as etcd registers it: "" serves, any other name is unknown.
    let (trailers, message) = grpc_call(&e, "/grpc.health.v1.Health/Check", b"");
    assert!(trailers.contains("grpc-status: 0\n"), "{trailers}");
    assert_eq!(message, b"\x00\x00\x00\x00\x02\x08\x01", "status SERVING");
    let (trailers, message) = grpc_call(&e, "/grpc.health.v1.Health/Check", b"\x0a\x03abc");
    assert!(trailers.contains("grpc-status: 5\ngrpc-message: unknown service\n"), "{trailers}");
    assert!(message.is_empty());

    let ok = |args: &[&str]| succeeds(&e, args);
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
    // Users and roles are stored, as etcd stores them with auth disabled.
    assert_eq!(ok(&["user", "add", "foo:bar"]), "User foo created\n");
    assert_eq!(ok(&["role", "add", "r"]), "Role r created\n");
    assert_eq!(ok(&["user", "grant-role", "foo", "r"]), "Role r is granted to user foo\n");
    assert_eq!(ok(&["user", "get", "foo"]), "User: foo\nRoles: r\n");
    assert_eq!(ok(&["user", "add", "root:pw"]), "User root created\n");
    // etcdctl's `auth enable` grants root the root role itself, then enables.
    assert_eq!(ok(&["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(fails(&["user", "get", "root"]), "Error: etcdserver: user name is empty");
    assert_eq!(ok(&["--user", "root:pw", "user", "get", "root"]), "User: root\nRoles: root\n");
    // etcdctl fails to make its client (exit 2) when it cannot authenticate.
    let (code, _, err) = etcdctl(&e, &["--user", "root:nope", "get", "a"], "");
    assert_eq!(code, Some(2));
    assert!(err.ends_with("Error: etcdserver: authentication failed, invalid user ID or password\n"), "{err}");
    assert_eq!(fails(&["--user", "foo:bar", "put", "a", "2"]), "Error: etcdserver: permission denied");
    assert_eq!(ok(&["--user", "root:pw", "auth", "disable"]), "Authentication Disabled\n");
}

#[test]
fn grpc_message_limits_follow_max_request_bytes_as_etcds_do() {
    // Under gRPC's limit (1.5 MiB + 512 KiB) but over --max-request-bytes: etcd's own check.
    let big = "v".repeat(1_800_000);
    let (_dir, _member, e) = single("grpc-limits");
    let (code, _, err) = etcdctl(&e, &["put", "big"], &big);
    assert_eq!(code, Some(1));
    assert!(err.contains("Error: etcdserver: request is too large"), "{err}");

    // A smaller --max-request-bytes lowers gRPC's receive limit with it.
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("grpc-limits-small", dir.path());
    m.spawn(&dir.path().join("data"), "", &["--max-request-bytes", "1000000"]);
    m.wait_healthy(Duration::from_secs(20));
    let (code, _, err) = etcdctl(&m.endpoint(), &["put", "big"], &big);
    assert_eq!(code, Some(1));
    let want = "code = ResourceExhausted desc = grpc: received message larger than max (1800009 vs. 1524288)";
    assert!(err.contains(want), "{err}");
}
