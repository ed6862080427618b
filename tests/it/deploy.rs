//! What lets an etcd deployment run raftkv unchanged: every flag read from `ETCD_<FLAG>`,
//! etcd's YAML `--config-file`, and zap's JSON log lines (`--logger zap`, `--log-format`,
//! `--log-outputs`), each through the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raftkv::pb::{CompactionRequest, PutRequest, RangeRequest};

use crate::harness::process::{agreed_leader, ctl, position_of, spawn_cluster_with_env, Member, Process};
use crate::harness::{eventually, free_port};

fn raftkv_bare() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// Waits until the member on `endpoint` answers `endpoint health`.
fn wait_healthy(process: &mut Process, endpoint: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl(endpoint, &["endpoint", "health"]).status.code() != Some(0) {
        assert!(process.alive(), "the member exited: {}", std::fs::read_to_string(log).unwrap_or_default());
        assert!(Instant::now() < deadline, "not healthy: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The member's name, as `member list` prints it.
fn member_name(endpoint: &str) -> String {
    let out = ctl(endpoint, &["member", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    line.split(", ").nth(2).expect("member list columns").to_string()
}

/// Every line of `log` as a JSON object with zap's four keys; the objects.
fn json_lines(log: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.is_empty());
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            for key in ["level", "ts", "caller", "msg"] {
                assert!(v[key].is_string(), "no {key}: {line}");
            }
            let ts = v["ts"].as_str().unwrap();
            // RFC 3339, UTC, microseconds: 2026-12-02T21:30:00.123456Z
            assert!(ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
            v
        })
        .collect()
}

fn has_line(lines: &[serde_json::Value], level: &str, msg_part: &str) -> bool {
    lines.iter().any(|l| l["level"] == level && l["msg"].as_str().unwrap().contains(msg_part))
}

#[test]
fn etcd_environment_variables_set_flags_and_zap_json_goes_to_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let (log, copy) = (dir.path().join("member.log"), dir.path().join("copy.log"));
    let mut process = Process::spawn(
        raftkv_bare()
            .env("ETCD_NAME", "from-etcd")
            .env("ETCD_DATA_DIR", dir.path().join("data"))
            .env("ETCD_LISTEN_CLIENT_URLS", format!("http://127.0.0.1:{client}"))
            .env("ETCD_LISTEN_PEER_URLS", &peer_url)
            .env("ETCD_INITIAL_ADVERTISE_PEER_URLS", &peer_url)
            .env("ETCD_INITIAL_CLUSTER", format!("from-etcd={peer_url}"))
            .env("ETCD_LOGGER", "zap")
            .env("ETCD_LOG_OUTPUTS", format!("{},{}", log.display(), copy.display()))
            .env("ETCD_NO_SUCH_FLAG", "1")
            // An empty variable is not a setting, as in etcd.
            .env("ETCD_QUOTA_BACKEND_BYTES", ""),
    );
    let endpoint = format!("127.0.0.1:{client}");
    wait_healthy(&mut process, &endpoint, &log);
    assert_eq!(member_name(&endpoint), "from-etcd");
    assert!(process.terminate().success());

    let lines = json_lines(&log);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), std::fs::read_to_string(&copy).unwrap());
    assert!(has_line(&lines, "info", "recognized and used environment variable ETCD_NAME"));
    assert!(has_line(&lines, "warn", "unrecognized environment variable ETCD_NO_SUCH_FLAG"));
    assert!(!lines.iter().any(|l| l["msg"].as_str().unwrap().contains("ETCD_QUOTA_BACKEND_BYTES")));
    assert!(has_line(&lines, "info", "stopped cleanly"));
    // Every line says where it was logged, as zap's caller does.
    assert!(lines.iter().all(|l| l["caller"].as_str().unwrap().contains(".rs:")));

    // RAFTKV_ is more specific than ETCD_, and a flag more than either. Each start fails at
    // once, naming the member it took itself for: the initial cluster has no such member.
    let start_as = |extra: &[&str], raftkv_name: Option<&str>| {
        let mut command = raftkv_bare();
        command
            .env("ETCD_NAME", "from-etcd")
            .env("ETCD_LISTEN_CLIENT_URLS", format!("http://127.0.0.1:{client}"))
            .env("ETCD_LISTEN_PEER_URLS", &peer_url)
            .env("ETCD_INITIAL_CLUSTER", "someone-else=http://127.0.0.1:1")
            .env("ETCD_DATA_DIR", dir.path().join("data2"))
            .stderr(Stdio::piped())
            .args(extra);
        if let Some(name) = raftkv_name {
            command.env("RAFTKV_NAME", name);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(start_as(&[], None).contains("(from-etcd)"));
    assert!(start_as(&[], Some("from-raftkv")).contains("(from-raftkv)"));
    assert!(start_as(&["--name", "flag"], Some("from-raftkv")).contains("(flag)"));
}

#[test]
fn a_config_file_in_etcds_yaml_replaces_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let log = dir.path().join("member.log");
    let file = dir.path().join("etcd.conf.yml");
    // The shape of etcd's etcd.conf.yml.sample, with the keys raftkv has no use for left in.
    let yaml = format!(
        "name: 'from-file'
data-dir: {data}
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://127.0.0.1:{peer}
listen-client-urls: http://127.0.0.1:{client}
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://127.0.0.1:{peer}
advertise-client-urls: http://127.0.0.1:{client}
discovery:
discovery-fallback: 'proxy'
initial-cluster: from-file=http://127.0.0.1:{peer}
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: false
proxy: 'off'
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  auto-tls: false
debug: false
logger: zap
log-outputs: [{log}]
grpc-keepalive-min-time: 5000000000
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: \"1\"
",
        data = dir.path().join("data").display(),
        log = log.display(),
    );
    std::fs::write(&file, yaml).unwrap();
    let mut process = Process::spawn(
        raftkv_bare()
            .env("ETCD_NAME", "from-env")
            .args(["--name", "from-flag", "--listen-client-urls", "http://127.0.0.1:1"])
            .arg("--config-file")
            .arg(&file),
    );
    let endpoint = format!("127.0.0.1:{client}");
    wait_healthy(&mut process, &endpoint, &log);
    assert_eq!(member_name(&endpoint), "from-file");
    assert!(process.terminate().success());
    let lines = json_lines(&log);
    assert!(has_line(&lines, "info", "loaded server configuration from"));
    assert!(has_line(&lines, "warn", "enable-v2: not a raftkv setting, ignored"));
    let warnings: Vec<_> =
        lines.iter().filter(|l| l["level"] == "warn" && l["msg"].as_str().unwrap().contains("config file")).collect();
    assert_eq!(warnings.len(), 1, "only enable-v2 is set and unknown: {warnings:?}");

    // A file that is not etcd's YAML, or a value no flag takes: one line, a failure exit.
    for bad in ["name: 'unterminated\n", "- a list\n", "heartbeat-interval: fast\n", "logger: syslog\n"] {
        std::fs::write(&file, bad).unwrap();
        let out = raftkv_bare().stderr(Stdio::piped()).arg("--config-file").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("etcd.conf.yml") || stderr.contains("--logger"), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The lines whose `msg` starts with `msg`.
fn saying<'a>(lines: &'a [serde_json::Value], msg: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["msg"].as_str().unwrap().starts_with(msg)).collect()
}

#[test]
fn the_events_operators_grep_for_are_logged_in_etcds_words() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::new("words", dir.path());
    m.env.push(("RAFTKV_LOGGER", "zap".into()));
    m.env.push(("RAFTKV_DEBUG_CONTROL", "1".into()));
    // Every apply takes longer than a nanosecond (etcd 3.6's name of the flag).
    m.spawn(&dir.path().join("data"), "", &["--warning-apply-duration", "1ns"]);
    m.wait_healthy(Duration::from_secs(20));
    let client = m.client();
    let id = format!("{:x}", m.status().unwrap().header.unwrap().member_id);
    client.put(&PutRequest::new("k", "v")).unwrap();
    // A stalled log write: the next put's fsync takes over etcd's one second.
    assert_eq!(m.control("PUT", "/debug/failpoints/raft_before_save", "1*sleep(1100)").unwrap().status, 204);
    client.put(&PutRequest::new("k", "v2")).unwrap();
    client.range(&RangeRequest::key("k")).unwrap();
    client.compact(&CompactionRequest { revision: 2, physical: true }).unwrap();
    assert!(m.terminate().success());

    let lines = json_lines(&m.log);
    assert_eq!(saying(&lines, &format!("raft.node: {id} elected leader {id} at term ")).len(), 1);
    let slow = saying(&lines, "apply request took too long");
    let put = slow.iter().find(|l| l["request"] == "put:<key:\"k\" value_size:1 lease:0 >").expect("the put's warning");
    assert_eq!((put["level"].as_str(), put["expected-duration"].as_str()), (Some("warn"), Some("1ns")));
    for field in ["took", "apply-wait"] {
        assert!(raftkv::compactor::parse_duration(put[field].as_str().unwrap()).is_some(), "{put}");
    }
    // Reads are held to the same budget, the read barrier included (the health probes' too).
    let reads: Vec<_> = slow.iter().filter(|l| l["prefix"] == "read-only range ").collect();
    assert!(reads.iter().any(|l| l["response"].as_str().unwrap().starts_with("range_response_count:1 ")), "{reads:?}");
    let fsync = saying(&lines, "slow fdatasync");
    assert_eq!(fsync.len(), 1, "{fsync:?}");
    assert_eq!(fsync[0]["expected-duration"], "1s");
    let took = raftkv::compactor::parse_duration(fsync[0]["took"].as_str().unwrap()).unwrap();
    assert!(took >= Duration::from_millis(1100), "{took:?}");
    let compacted = saying(&lines, "finished scheduled compaction");
    assert_eq!(compacted.len(), 1);
    assert_eq!(compacted[0]["compact-revision"], 2);
}

#[test]
fn a_leader_whose_heartbeats_are_late_says_so_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let members =
        spawn_cluster_with_env("hb", 3, dir.path(), &[("RAFTKV_LOGGER", "zap"), ("RAFTKV_DEBUG_CONTROL", "1")]);
    let leader_id = agreed_leader(&members, 0, Duration::from_secs(20)).expect("a leader");
    let leader = &members[position_of(&members, leader_id)];
    // A few heartbeats first: the detector measures from the last one sent.
    std::thread::sleep(Duration::from_millis(500));
    // 600 ms without a heartbeat: three times the 200 ms etcd allows, and short of the
    // election timeout (1 s), so the leader stays and sends again.
    assert_eq!(leader.control("PUT", "/debug/failpoints/raft_before_save", "1*sleep(600)").unwrap().status, 204);
    leader.client().put(&PutRequest::new("k", "v")).unwrap();
    let msg = "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk";
    assert!(
        eventually(Duration::from_secs(10), || !saying(&json_lines(&leader.log), msg).is_empty()),
        "{}",
        std::fs::read_to_string(&leader.log).unwrap()
    );
    let lines = json_lines(&leader.log);
    let late = saying(&lines, msg)[0];
    assert_eq!(
        (late["heartbeat-interval"].as_str(), late["expected-duration"].as_str()),
        (Some("100ms"), Some("200ms"))
    );
    let to = u64::from_str_radix(late["to"].as_str().unwrap(), 16).unwrap();
    assert!(to != leader_id && members.iter().any(|m| m.status().is_some_and(|s| s.header.unwrap().member_id == to)));
}
