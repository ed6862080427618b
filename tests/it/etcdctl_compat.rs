//! etcdctl 3.4 side by side: one script of etcdctl commands against a fresh etcd 3.4.23 and a
//! fresh raftkv member, every answer (stdout, stderr, exit code) compared after the parts
//! that must differ are masked: member, cluster and lease ids, ports, paths, timings, sizes
//! and raft indexes. `scripts/etcdctl-compat.sh` runs it and prints every line compared.
//! Skipped (with a note) when etcd is not installed; CI installs it.

use std::time::Duration;

use super::grpc::{etcdctl, Streaming};
use crate::harness::process::Member;

pub(crate) const ETCD_BIN: &str = "/usr/bin/etcd";

/// One step: etcdctl arguments and what it reads on stdin; `{lease}`, `{member}` and `{dir}`
/// are filled in from earlier answers.
const SCRIPT: &[(&str, &str)] = &[
    ("put foo bar", ""),
    ("put foo/a 1", ""),
    ("put foo/b 2", ""),
    ("put zoo 3", ""),
    ("put foo bar2 --prev-kv", ""),
    ("get foo", ""),
    ("get foo --prefix", ""),
    ("get foo --from-key", ""),
    ("get foo --prefix --limit 1", ""),
    ("get foo --prefix --sort-by=KEY --order=DESCEND", ""),
    ("get foo --prefix --sort-by=MODIFY --order=ASCEND --keys-only", ""),
    ("get foo --rev 2", ""),
    ("get foo --prefix --hex", ""),
    ("get foo --print-value-only", ""),
    ("get foo --prefix --count-only -w json", ""),
    ("get foo -w json", ""),
    ("get nosuch -w json", ""),
    ("get foo --rev 100", ""),
    ("txn", "value(\"foo\") = \"bar2\"\n\nput foo/c 3\nget foo --prefix\n\nput nope 1\n\n"),
    ("txn", "mod(\"zoo\") < \"1\"\n\nput nope 1\n\ndel zoo\n\n"),
    ("txn -w json", "create(\"foo\") > \"0\"\n\nget foo\n\n\n"),
    ("del foo/a --prev-kv", ""),
    ("del foo --prefix", ""),
    ("del nosuch", ""),
    ("compaction 3 --physical", ""),
    ("get foo --rev 2", ""),
    ("compaction 1", ""),
    ("lease grant 100", ""),
    ("put leased v --lease {lease}", ""),
    ("lease timetolive {lease} --keys", ""),
    ("lease list", ""),
    ("lease keep-alive --once {lease}", ""),
    ("lease revoke {lease}", ""),
    ("lease timetolive {lease}", ""),
    ("lease revoke {lease}", ""),
    ("put k v --lease 1234", ""),
    ("member list", ""),
    ("member list -w json", ""),
    // Learners only: a second voter that never starts would cost a single member its quorum
    // (etcd allows that add, and then stalls the same way).
    ("member add extra --learner --peer-urls=http://127.0.0.1:1", ""),
    ("member list", ""),
    ("member remove {member}", ""),
    ("member add late --learner --peer-urls=http://127.0.0.1:2", ""),
    ("member promote {member}", ""),
    ("member remove {member}", ""),
    ("member remove 1234", ""),
    ("endpoint health", ""),
    ("endpoint status", ""),
    ("endpoint status -w json", ""),
    ("endpoint hashkv", ""),
    ("endpoint hashkv -w json", ""),
    ("defrag", ""),
    ("alarm list", ""),
    ("alarm disarm", ""),
    ("move-leader 1234", ""),
    ("snapshot save {dir}/snap.db", ""),
    ("user list", ""),
    ("role list", ""),
    ("auth enable", ""),
    ("user add amy:pw1", ""),
    ("user add amy:pw2", ""),
    ("user add nopw --no-password", ""),
    ("user add :pw", ""),
    ("user list", ""),
    ("user get amy", ""),
    ("user get amy -w json", ""),
    ("user list -w json", ""),
    ("user add bob:pw -w json", ""),
    ("user get nosuch", ""),
    ("role add ops", ""),
    ("role add ops", ""),
    ("role add dev", ""),
    ("role grant-permission ops readwrite foo", ""),
    ("role grant-permission ops read zoo --prefix", ""),
    ("role grant-permission ops write a --from-key", ""),
    ("role grant-permission ops read foo", ""),
    ("role grant-permission nosuch read foo", ""),
    ("role get ops", ""),
    ("role get ops -w json", ""),
    ("role list -w json", ""),
    ("role add qa -w json", ""),
    ("role get nosuch", ""),
    ("role list", ""),
    ("user grant-role amy ops", ""),
    ("user grant-role amy dev", ""),
    ("user grant-role amy ops", ""),
    ("user grant-role amy nosuch", ""),
    ("user grant-role nosuch ops", ""),
    ("user get amy", ""),
    ("user get amy --detail", ""),
    ("user get amy -w json", ""),
    ("role revoke-permission ops foo", ""),
    ("role revoke-permission ops foo", ""),
    ("role revoke-permission ops zoo --prefix", ""),
    ("role get ops -w json", ""),
    ("user revoke-role amy dev", ""),
    ("user revoke-role amy dev", ""),
    ("user passwd amy --interactive=false", "pw3\n"),
    ("user passwd nosuch --interactive=false", "pw3\n"),
    ("role delete ops", ""),
    ("role delete ops", ""),
    ("user get amy", ""),
    ("user delete amy", ""),
    ("user delete amy", ""),
    ("user add root:rootpw", ""),
    ("user list -w json", ""),
    ("role list -w json", ""),
];

/// The streams: a watch from revision 1 (history, then live), and an interactive one.
const WATCHES: &[(&str, &str)] =
    &[("watch foo --prefix --rev 3 --prev-kv", ""), ("watch -i", "watch zoo\nwatch foo --prefix\nprogress\n")];

/// Masks what differs between any two servers: ids (hex or decimal), the servers' ports and
/// paths, sizes, timings, raft indexes and terms.
pub(crate) fn mask(text: &str, endpoint: &str, peer_url: &str, dir: &str) -> String {
    let port = endpoint.rsplit(':').next().unwrap();
    let text = text.replace(dir, "DIR").replace(peer_url, "PEER").replace(endpoint, "ENDPOINT");
    let text = text.replace(&format!(":{port}"), ":PORT");
    let mut out = String::new();
    for line in text.lines() {
        // Timings and the download's speed and size.
        let line = match line.find(" took = ") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut masked = String::new();
        let mut token = String::new();
        for c in line.chars().chain(std::iter::once('\n')) {
            if c.is_ascii_alphanumeric() || c == '.' {
                token.push(c);
                continue;
            }
            let hex = token.len() >= 8 && token.bytes().all(|b| b.is_ascii_hexdigit());
            let decimal = token.len() >= 8 && token.bytes().all(|b| b.is_ascii_digit());
            masked.push_str(if hex || decimal { "ID" } else { &token });
            token.clear();
            if c != '\n' {
                masked.push(c);
            }
        }
        // etcdctl lists the cluster in the order of member ids, which differ.
        if let Some(list) = masked.strip_prefix("ETCD_INITIAL_CLUSTER=\"").and_then(|l| l.strip_suffix('"')) {
            let mut members: Vec<&str> = list.split(',').collect();
            members.sort_unstable();
            masked = format!("ETCD_INITIAL_CLUSTER=\"{}\"", members.join(","));
        }
        // `%16x` pads an id with a leading zero digit with a space.
        let masked = masked.replace("  ID", " ID");
        out.push_str(&mask_fields(&masked));
        out.push('\n');
    }
    out
}

/// Values that follow the server's own history of raft entries and storage.
fn mask_fields(line: &str) -> String {
    let mut line = line.to_string();
    for field in [
        "\"raft_index\":",
        "\"raft_term\":",
        "\"dbSize\":",
        "\"raftIndex\":",
        "\"raftTerm\":",
        "\"raft_applied_index\":",
        "\"raftAppliedIndex\":",
        "\"dbSizeInUse\":",
    ] {
        while let Some(at) = line.find(field) {
            let start = at + field.len();
            let end = start + line[start..].find(|c: char| !c.is_ascii_digit()).unwrap_or(line.len() - start);
            line.replace_range(at..end, &field.replace(':', "=N"));
        }
    }
    // `endpoint status` table: version, db size, leader, learner, term, index, applied index.
    if line.starts_with("ENDPOINT, ID, ") {
        let cols: Vec<&str> = line.split(", ").collect();
        return format!("{}, {}, {}, {}, {}", cols[0], cols[1], cols[2], cols[4], cols[5]);
    }
    line
}

struct Run {
    answers: Vec<String>,
}

/// Which client runs the script.
#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Etcdctl,
    Raftkvctl,
}

/// The steps raftkvctl answers as etcdctl 3.4 does (it has no `watch -i`, and `--count-only`
/// is etcdctl 3.5's, which raftkvctl has).
fn raftkvctl_has(args: &str) -> bool {
    !args.contains("--count-only")
}

fn run(tool: Tool, endpoint: &str, peer_url: &str, dir: &std::path::Path) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let dir_text = dir.to_str().unwrap();
    let mut lease = String::new();
    let mut member = String::new();
    let mut answers = Vec::new();
    for (args, stdin) in SCRIPT.iter().filter(|(args, _)| tool == Tool::Etcdctl || raftkvctl_has(args)) {
        let args = args.replace("{lease}", &lease).replace("{member}", &member).replace("{dir}", dir_text);
        let argv: Vec<&str> = args.split(' ').collect();
        let (code, out, err) = match tool {
            Tool::Etcdctl => etcdctl(endpoint, &argv, stdin),
            Tool::Raftkvctl => {
                let out = crate::harness::process::ctl_stdin(endpoint, &argv, stdin);
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (out.status.code(), text(&out.stdout), text(&out.stderr))
            }
        };
        if args.starts_with("lease grant") {
            lease = out.split_whitespace().nth(1).unwrap_or_default().to_string();
        }
        if args.starts_with("member add") {
            member = out.split_whitespace().nth(1).unwrap_or_default().to_string();
        }
        // etcdctl's own log lines (snapshot save) carry times: only its answer counts.
        let err: String = err.lines().filter(|l| !l.starts_with('{')).map(|l| format!("{l}\n")).collect();
        // Members are listed in the order of their ids, which differ.
        let out = if args == "member list" {
            let mut lines: Vec<&str> = out.lines().collect();
            lines.sort_unstable_by_key(|l| l.split_once(", ").map(|(_, rest)| rest.to_string()));
            lines.iter().map(|l| format!("{l}\n")).collect()
        } else {
            out
        };
        answers.push(mask(&format!("$ etcdctl {args}\n{out}{err}exit {code:?}\n"), endpoint, peer_url, dir_text));
    }
    for (args, stdin) in WATCHES.iter().filter(|_| tool == Tool::Etcdctl) {
        let argv: Vec<&str> = args.split(' ').collect();
        let mut watch = Streaming::start(endpoint, &argv);
        for line in stdin.lines() {
            watch.send(line);
        }
        let seen = watch.until_quiet().join("\n");
        answers.push(mask(&format!("$ etcdctl {args}\n{seen}\n"), endpoint, peer_url, dir_text));
    }
    Run { answers }
}

/// A fresh raftkv member and a fresh etcd 3.4, healthy, in one temp dir; `None` (with a
/// note) when etcd is not installed.
fn fresh_pair() -> Option<(tempfile::TempDir, Member, Member)> {
    if !std::path::Path::new(ETCD_BIN).exists() {
        eprintln!("etcd is not installed (apt-get install etcd-server): skipping the side-by-side");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut raftkv = Member::new("compat", dir.path());
    raftkv.spawn(&dir.path().join("raftkv"), "", &[]);
    raftkv.wait_healthy(Duration::from_secs(20));
    let mut etcd = Member::new("compat", dir.path());
    etcd.spawn_binary(ETCD_BIN, &dir.path().join("etcd"));
    etcd.wait_healthy(Duration::from_secs(20));
    Some((dir, raftkv, etcd))
}

#[test]
fn etcdctl_answers_raftkv_as_it_answers_etcd() {
    let Some((dir, raftkv, etcd)) = fresh_pair() else { return };

    let theirs = run(Tool::Etcdctl, &etcd.endpoint(), &etcd.peer_url(), &dir.path().join("etcd-out"));
    let ours = run(Tool::Etcdctl, &raftkv.endpoint(), &raftkv.peer_url(), &dir.path().join("raftkv-out"));
    let verbose = std::env::var_os("RAFTKV_COMPAT_VERBOSE").is_some();
    let mut differ = Vec::new();
    for (want, got) in theirs.answers.iter().zip(&ours.answers) {
        if verbose {
            eprint!("{got}");
        }
        if want != got {
            differ.push(format!("--- etcd\n{want}+++ raftkv\n{got}"));
        }
    }
    assert!(differ.is_empty(), "{} of {} answers differ:\n{}", differ.len(), theirs.answers.len(), differ.join("\n"));
}

/// raftkvctl against raftkv prints what etcdctl prints against etcd, for every step of the
/// script raftkvctl has a verb for.
#[test]
fn raftkvctl_prints_what_etcdctl_prints() {
    let Some((dir, raftkv, etcd)) = fresh_pair() else { return };
    let shared = |args: &str| raftkvctl_has(args);
    let theirs = run(Tool::Etcdctl, &etcd.endpoint(), &etcd.peer_url(), &dir.path().join("etcd-out"));
    let theirs: Vec<&String> =
        theirs.answers.iter().filter(|a| shared(a.lines().next().unwrap().trim_start_matches("$ etcdctl "))).collect();
    let ours = run(Tool::Raftkvctl, &raftkv.endpoint(), &raftkv.peer_url(), &dir.path().join("raftkv-out"));
    let mut differ = Vec::new();
    for (want, got) in theirs.iter().zip(&ours.answers) {
        if *want != got {
            differ.push(format!("--- etcdctl against etcd\n{want}+++ raftkvctl against raftkv\n{got}"));
        }
    }
    assert!(differ.is_empty(), "{} of {} answers differ:\n{}", differ.len(), theirs.len(), differ.join("\n"));
}
