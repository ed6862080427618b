//! The real `raftkv` and `raftkvctl` binaries: start a member, drive it with raftkvctl, stop it
//! with SIGTERM (clean exit 0), restart it on the same data, and refuse a port in use.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::free_port;
use crate::harness::process::{ctl, ctl_stdin, raftkv, Member};

/// A member alone on `data_dir`, healthy. Its ports stay the same across restarts.
fn start(member: &mut Member, data_dir: &Path) {
    member.spawn(data_dir, "", &[]);
    member.wait_healthy(Duration::from_secs(20));
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "raftkvctl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn raftkvctl_drives_a_real_member_and_sigterm_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("cli-test", dir.path());
    start(&mut m, &dir.path().join("data"));
    let e = m.endpoint();
    assert_eq!(stdout(&ctl(&e, &["put", "foo", "bar"])), "OK\n");
    assert_eq!(stdout(&ctl(&e, &["put", "foo/a", "1"])), "OK\n");
    assert_eq!(stdout(&ctl(&e, &["put", "foo/b", "2"])), "OK\n");
    assert_eq!(stdout(&ctl(&e, &["get", "foo"])), "foo\nbar\n");
    assert_eq!(stdout(&ctl(&e, &["get", "foo/", "--prefix", "--print-value-only"])), "1\n2\n");
    assert_eq!(
        stdout(&ctl(&e, &["get", "foo/", "--prefix", "--keys-only", "--order", "DESCEND", "--sort-by", "KEY"])),
        "foo/b\n\nfoo/a\n\n",
        "etcdctl prints an empty value line after each key"
    );
    assert_eq!(stdout(&ctl(&e, &["get", "foo", "--from-key", "--count-only"])), "3\n");
    assert_eq!(stdout(&ctl(&e, &["get", "foo", "--rev", "2"])), "foo\nbar\n");
    let json = stdout(&ctl(&e, &["get", "foo", "-w", "json"]));
    assert!(
        json.contains(r#""kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}]"#),
        "{json}"
    );

    let txn = "value(\"foo\") = \"bar\"\n\nput foo \"bar 2\"\nget foo/a\n\nput foo nope\n";
    assert_eq!(stdout(&ctl_stdin(&e, &["txn"], txn)), "SUCCESS\n\nOK\n\nfoo/a\n1\n");
    assert_eq!(stdout(&ctl(&e, &["get", "foo"])), "foo\nbar 2\n");
    assert_eq!(stdout(&ctl(&e, &["del", "foo/", "--prefix"])), "2\n");

    let out = ctl(&e, &["put", "nokey", "--ignore-value", "x"]);
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr).trim()),
        (Some(1), "Error: etcdserver: key not found")
    );
    let out = ctl(&e, &["get", "foo", "--rev", "1000"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );

    assert_eq!(stdout(&ctl(&e, &["compaction", "3"])), "compacted revision 3\n");
    let status = stdout(&ctl(&e, &["endpoint", "status"]));
    assert!(status.starts_with(&format!("{e}, ")) && status.contains(", 3.4.23, "), "{status}");
    assert!(stdout(&ctl(&e, &["endpoint", "status", "-w", "table"])).contains("| IS LEADER |"));
    assert!(stdout(&ctl(&e, &["member", "list"])).contains(&format!(", started, cli-test, {}, ", m.peer_url())));

    let grant = stdout(&ctl(&e, &["lease", "grant", "60"]));
    assert!(grant.starts_with("lease ") && grant.ends_with(" granted with TTL(60s)\n"), "{grant}");
    let id = grant.split(' ').nth(1).unwrap().to_string();
    assert_eq!(stdout(&ctl(&e, &["put", "leased", "v", "--lease", &id])), "OK\n");
    let ttl = stdout(&ctl(&e, &["lease", "timetolive", &id, "--keys"]));
    assert!(ttl.contains("granted with TTL(60s), remaining(") && ttl.ends_with("attached keys([leased])\n"), "{ttl}");
    assert_eq!(stdout(&ctl(&e, &["lease", "list"])), format!("found 1 leases\n{id}\n"));
    assert_eq!(
        stdout(&ctl(&e, &["lease", "keep-alive", "--once", &id])),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert_eq!(stdout(&ctl(&e, &["lease", "revoke", &id])), format!("lease {id} revoked\n"));
    assert_eq!(stdout(&ctl(&e, &["get", "leased"])), "");
    assert_eq!(stdout(&ctl(&e, &["lease", "timetolive", &id])), format!("lease {id} already expired\n"));

    // raftkvctl watch replays from a revision and then follows live changes.
    let rev = stdout(&ctl(&e, &["put", "w/1", "x", "-w", "json"]));
    let rev: i64 = rev.split("\"revision\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
        .args(["--endpoints", &e, "watch", "w/", "--prefix", "--rev", &rev.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = watcher.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    stdout(&ctl(&e, &["del", "w/1"]));
    let lines: Vec<String> = (0..5).filter_map(|_| line_rx.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert_eq!(lines, ["PUT", "w/1", "x", "DELETE", "w/1"]);
    watcher.kill().unwrap();
    watcher.wait().unwrap();

    let bench = stdout(&ctl(
        &e,
        &["bench", "--conns", "2", "--clients", "4", "--total", "40", "--json", "put", "--key-space-size", "10"],
    ));
    assert!(bench.contains(r#""requests":40,"#) && bench.contains(r#""errors":[]"#), "{bench}");
    let bench = stdout(&ctl(&e, &["bench", "--total", "20", "range", "foo", "--consistency", "s"]));
    assert!(bench.contains("Requests/sec:") && bench.contains("99.9% in "), "{bench}");
    assert!(bench.contains("Response time histogram:"), "{bench}");
    for workload in [
        &["txn-put", "--txn-ops", "3", "--key-space-size", "10"][..],
        &["lease-keepalive"],
        &["watch-latency", "--watchers", "3"],
    ] {
        // watch-latency: 20 puts, each seen by 3 watchers.
        let want = if workload[0] == "watch-latency" { 60 } else { 20 };
        let args = [&["bench", "--total", "20", "--rate", "500", "--json", "--target-leader"][..], workload].concat();
        let bench = stdout(&ctl(&e, &args));
        assert!(
            bench.contains(&format!(r#""requests":{want},"#)) && bench.contains(r#""errors":[]"#),
            "{workload:?}: {bench}"
        );
    }

    assert_eq!(m.terminate().code(), Some(0), "SIGTERM must stop raftkv cleanly");

    // Restart on the same data dir: everything is still there.
    start(&mut m, &dir.path().join("data"));
    assert_eq!(stdout(&ctl(&e, &["get", "foo"])), "foo\nbar 2\n");
    let out = ctl(&e, &["get", "foo", "--rev", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted"));
    assert_eq!(m.terminate().code(), Some(0));
}

#[test]
fn startup_problems_are_one_clear_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = raftkv()
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("Address already in use") || stderr.contains("address already in use"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A data dir that is a file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = raftkv()
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("data dir") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A bad flag value names the flag.
    let out =
        raftkv().args(["--election-timeout", "100"]).arg("--data-dir").arg(dir.path().join("e")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--election-timeout"));
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn raftkvctl_member_verbs_print_what_etcdctl_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut member = Member::new("m", dir.path());
    start(&mut member, &dir.path().join("m"));
    let e = member.endpoint();

    let out = ctl(&e, &["member", "add", "newbie", "--peer-urls=http://127.0.0.1:1", "--learner"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("Member ") && first.contains(" added to cluster "), "{text}");
    assert!(
        text.contains("ETCD_NAME=\"newbie\"") && text.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{text}"
    );
    assert!(text.contains("newbie=http://127.0.0.1:1"), "{text}");
    let id = first.split_whitespace().nth(1).unwrap().to_string();

    let list = stdout(&ctl(&e, &["member", "list"]));
    assert!(list.contains(&format!("{id}, unstarted, , http://127.0.0.1:1, , true")), "{list}");
    let out = ctl(&e, &["member", "promote", &id]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: etcdserver: can only promote a learner member which is in sync with leader"
    );
    let out = ctl(&e, &["member", "remove", &id]);
    // etcdctl's `%16x`: ids below 2^60 are padded with spaces.
    assert!(stdout(&out).starts_with(&format!("Member {id:>16} removed from cluster ")), "{}", stdout(&out));
    let out = ctl(&e, &["member", "remove", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "Error: etcdserver: member not found");
    assert_eq!(out.status.code(), Some(1));
    let out = ctl(&e, &["member", "remove", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Error: bad member ID arg"), "{out:?}");

    // alarm and defrag, as etcdctl prints them against the same member.
    let etcdctl = |args: &[&str]| {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&e)
            .args(args)
            .output();
        out.ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let raise = r#"{"action":"ACTIVATE","memberID":"7","alarm":"NOSPACE"}"#;
    crate::harness::http::post(e.parse().unwrap(), "/v3/maintenance/alarm", raise);
    let listed = stdout(&ctl(&e, &["alarm", "list"]));
    assert_eq!(listed, "memberID:7 alarm:NOSPACE \n");
    if let Some(theirs) = etcdctl(&["alarm", "list"]) {
        assert_eq!(listed, theirs);
    }
    assert_eq!(stdout(&ctl(&e, &["alarm", "disarm"])), "memberID:7 alarm:NOSPACE \n");
    assert_eq!(stdout(&ctl(&e, &["alarm", "list"])), "");
    let defrag = stdout(&ctl(&e, &["defrag"]));
    assert_eq!(defrag, format!("Finished defragmenting etcd member[{e}]\n"));
    if let Some(theirs) = etcdctl(&["defrag"]) {
        assert_eq!(defrag, theirs);
    }

    // The only member is the leader: moving leadership to itself is a no-op, to a stranger an error.
    let me = stdout(&ctl(&e, &["member", "list"])).split(',').next().unwrap().to_string();
    let out = ctl(&e, &["move-leader", &me]);
    assert_eq!(stdout(&out).trim(), format!("Leadership transferred from {me} to {me}"));
    let out = ctl(&e, &["move-leader", "1234"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "Error: etcdserver: bad leader transferee");
    assert_eq!(member.terminate().code(), Some(0));
}

/// `raftkvctl endpoint hashkv` prints what etcdctl 3.4 prints, byte for byte, asked of the same
/// server (so the hashes are the same too): a raftkv member, and etcd 3.4.23 itself when it is
/// installed. Every format, with and without `--rev` (a future and a compacted one fail as
/// etcdctl fails), over two spellings of one endpoint so the table's columns have to align.
#[test]
fn endpoint_hashkv_prints_what_etcdctl_prints() {
    use super::etcdctl_compat::ETCD_BIN;
    use super::grpc::etcdctl;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = vec![Member::new("hashkv", dir.path())];
    servers[0].spawn(&dir.path().join("raftkv"), "", &[]);
    if Path::new(ETCD_BIN).exists() {
        let mut etcd = Member::new("hashkv", dir.path());
        etcd.spawn_binary(ETCD_BIN, &dir.path().join("etcd"));
        servers.push(etcd);
    } else {
        eprintln!("etcd is not installed (apt-get install etcd-server): comparing against raftkv only");
    }
    for server in &mut servers {
        server.wait_healthy(Duration::from_secs(20));
        let e = server.endpoint();
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")] {
            stdout(&ctl(&e, &["put", key, value]));
        }
        assert_eq!(stdout(&ctl(&e, &["compaction", "2"])), "compacted revision 2\n");
        let endpoints = format!("{e},http://{e}");
        let simple = stdout(&ctl(&endpoints, &["endpoint", "hashkv"]));
        let hash = simple.lines().next().and_then(|l| l.strip_prefix(&format!("{e}, "))).expect("one line each");
        assert!(hash.parse::<u32>().is_ok() && simple.ends_with(&format!("http://{e}, {hash}\n")), "{simple}");
        for rev in ["0", "3", "9", "1"] {
            for format in ["simple", "json", "table"] {
                let args = ["endpoint", "hashkv", "--rev", rev, "-w", format];
                let (code, want_out, want_err) = etcdctl(&endpoints, &args, "");
                let got = ctl(&endpoints, &args);
                let context = format!("{endpoints} {args:?}");
                assert_eq!(String::from_utf8_lossy(&got.stdout), want_out, "{context}");
                assert_eq!(got.status.code(), code, "{context}");
                // etcdctl's own log lines (JSON, with times) are not its answer.
                let want_err: String =
                    want_err.lines().filter(|l| !l.starts_with('{')).map(|l| l.to_string() + "\n").collect();
                assert_eq!(String::from_utf8_lossy(&got.stderr), want_err, "{context}");
            }
        }
    }
    // An endpoint that cannot be reached is reported and the others still printed (etcdctl
    // says only `context deadline exceeded`; raftkvctl says why after it).
    let e = servers[0].endpoint();
    let got = ctl(&format!("{e},127.0.0.1:1"), &["endpoint", "hashkv", "-w", "json"]);
    let (code, want_out, _) = etcdctl(&format!("{e},127.0.0.1:1"), &["endpoint", "hashkv", "-w", "json"], "");
    assert_eq!((got.status.code(), String::from_utf8_lossy(&got.stdout).into_owned()), (code, want_out));
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(err.starts_with("Failed to get the hash of endpoint 127.0.0.1:1 (context deadline exceeded: "), "{err}");
}

/// `check perf` with etcdctl's small model (150 writes/s from 50 clients), shortened to 5 s:
/// etcdctl's lines in etcdctl's order and the exit code that goes with the verdict (which
/// depends on the machine, so either is accepted: speed is never asserted in tests), no keys
/// left behind, and an unknown model or a prefix with keys refused as etcdctl refuses them.
#[test]
fn check_perf_prints_etcdctls_verdict_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("check-perf", dir.path());
    start(&mut m, &dir.path().join("data"));
    let e = m.endpoint();
    let run = |args: &[&str]| {
        crate::harness::process::ctl_command(&e, args).env("RAFTKVCTL_CHECK_PERF_SECS", "5").output().unwrap()
    };
    let out = run(&["check", "perf", "--auto-compact"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("Compacting with revision "), "{text}");
    assert!(lines[1].starts_with("Compacted with revision "), "{text}");
    let either = |line: &str, pass: &str, fail: &str| line.starts_with(pass) || line.starts_with(fail);
    assert!(either(lines[2], "PASS: Throughput is ", "FAIL: Throughput too low: "), "{text}");
    assert!(either(lines[3], "PASS: Slowest request took ", "Slowest request took too long: "), "{text}");
    assert!(either(lines[4], "PASS: Stddev is ", "Stddev too high: "), "{text}");
    let passed = lines[2..5].iter().all(|l| l.starts_with("PASS"));
    assert_eq!(lines[5], if passed { "PASS" } else { "FAIL" }, "{text}");
    assert_eq!(out.status.success(), passed, "{text}");
    assert_eq!(stdout(&ctl(&e, &["get", "/etcdctl-check-perf/", "--prefix", "--count-only"])), "0\n");

    let refused = run(&["check", "perf", "--load", "huge"]);
    assert_eq!(String::from_utf8_lossy(&refused.stderr), "Error: unknown load option huge\n");
    stdout(&ctl(&e, &["put", "/etcdctl-check-perf/x", "1"]));
    let refused = run(&["check", "perf"]);
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first\n"
    );
    m.kill();
}

/// `check datascale` with etcdctl's small model (10,000 pairs of 1 KiB from 50 clients):
/// raftkvctl and etcdctl itself, run against the same member, print the same lines (the
/// memory figure aside: it is the member's RSS growth) and leave no keys behind; an unknown
/// model is refused as etcdctl refuses it.
#[test]
fn check_datascale_reads_the_members_memory_as_etcdctl_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("check-datascale", dir.path());
    start(&mut m, &dir.path().join("data"));
    let e = m.endpoint();
    // The lines that are not progress bars (etcdctl's draws on stdout with carriage returns),
    // the figure masked.
    let verdict = |out: &str| -> Vec<String> {
        let lines = out.split(['\r', '\n']).map(str::trim).filter(|l| l.starts_with("Start") || l.starts_with("PASS"));
        lines.map(|l| l.split(" : ").next().unwrap().to_string()).collect()
    };
    let ours = stdout(&ctl(&e, &["check", "datascale"]));
    let (code, theirs, err) = crate::grpc::etcdctl(&e, &["check", "datascale"], "");
    assert_eq!(code, Some(0), "etcdctl check datascale: {err}\n{theirs}");
    let want = [
        "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients].",
        "PASS: Approximate system memory used",
    ];
    assert_eq!(verdict(&ours), want, "{ours}");
    assert_eq!(verdict(&theirs), want, "{theirs}");
    let figure = ours.rsplit(" : ").next().unwrap();
    assert!(figure.trim().trim_end_matches(" MB.").parse::<f64>().is_ok(), "{ours}");
    assert_eq!(stdout(&ctl(&e, &["get", "/etcdctl-check-datascale/", "--prefix", "--count-only"])), "0\n");
    let refused = ctl(&e, &["check", "datascale", "--load", "huge"]);
    assert_eq!(String::from_utf8_lossy(&refused.stderr), "Error: unknown load option huge\n");
    m.kill();
}

/// Under systemd (`Type=notify`): `READY=1` on `$NOTIFY_SOCKET` once the member serves, and
/// `STOPPING=1` when SIGTERM stops it, each one datagram, as sd_notify(3) sends them.
#[test]
fn systemd_hears_ready_when_the_member_serves_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut m = Member::new("notify", dir.path());
    m.env.push(("NOTIFY_SOCKET", socket_path.display().to_string()));
    m.spawn(&dir.path().join("data"), "", &[]);
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving: a linearizable read answers at once.
    assert_eq!(stdout(&ctl(&m.endpoint(), &["get", "x"])), "");
    assert!(m.terminate().success());
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
}
