//! The etcd mixin's alerts (`contrib/mixin/etcd-alerts.yaml`) evaluated by `promtool test
//! rules` on series scraped from a real 3-process cluster's `--listen-metrics-urls`, under
//! the conditions each alert watches for: a leader killed and moved, a stalled fsync and
//! apply write (failpoints over the debug control), failing ranges, a follower paused, two
//! members killed.
//!
//! Each condition is a window between two scrapes. Its promtool test replays the window's
//! increase of every counter and histogram bucket once per second (gauges keep their value
//! at the window's end) for as long as the alert's `for` needs (a 15-minute rate is over its
//! threshold only once the replay covers most of its window, so those are evaluated at 28
//! minutes), and writes `up` as a scrape's success, as Prometheus does. So the test shows that each alert reads series
//! raftkv exposes under those names, labels and bucket layouts, and that the condition moves
//! them past the alert's threshold; it does not claim the cluster kept the condition up for
//! the alert's 15 minutes. A quiet window, replayed the same way, fires nothing.
//! The rules are run with their annotations left out: promtool compares annotations
//! exactly, and their text (`$value`) is not what is under test.
//!
//! `etcdHighNumberOfFailedHTTPRequests` and `etcdHTTPRequestsSlow` read etcd's v2 HTTP API
//! series (`etcd_http_*`); raftkv has no v2 API, so they cannot fire (docs/compat.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use raftkv::pb::MoveLeaderRequest;

use crate::harness::process::{agreed_leader, initial_cluster, position_of, Member};
use crate::harness::{free_port, http};

/// One scrape: each sample line's series (`name{labels}`) and value, and each family's type.
#[derive(Clone, Default)]
struct Scrape {
    samples: Vec<(String, f64)>,
    types: HashMap<String, String>,
}

fn scrape(addr: SocketAddr) -> Option<Scrape> {
    let mut conn = http::Conn::open(addr, Duration::from_secs(5)).ok()?;
    conn.request("GET", "/metrics", &["Connection: close"], b"").ok()?;
    let text = conn.read_reply().ok()?.text();
    let mut scrape = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            scrape.types.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            scrape.samples.push((series.to_string(), value.parse().unwrap()));
        }
    }
    Some(scrape)
}

impl Scrape {
    fn value(&self, series: &str) -> f64 {
        self.samples.iter().find(|(s, _)| s == series).map_or(0.0, |(_, v)| *v)
    }

    /// Whether `series` keeps counting up (a counter, or a histogram's bucket, sum or count).
    fn cumulative(&self, series: &str) -> bool {
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        match self.types.get(name).or_else(|| self.types.get(family)).map(String::as_str) {
            Some("counter") => true,
            Some("histogram") => family != name,
            _ => false,
        }
    }
}

/// A member's window: its scrapes before and after (`None`: the scrape failed).
struct Window<'a> {
    instance: &'a str,
    before: &'a Scrape,
    after: Option<&'a Scrape>,
}

/// promtool's `input_series` for `windows`: the kept series of the families the rules read,
/// replayed for `steps` seconds. A series at 0 in both scrapes is left out: it adds nothing to
/// any rate or sum, and the thousands of them (every method × code) made promtool slow.
fn input_series(windows: &[Window], rules: &str, keep: impl Fn(&str) -> bool, steps: usize) -> String {
    let mut yaml = String::new();
    let mut series = |name: String, values: String| {
        yaml.push_str(&format!("      - series: '{name}'\n        values: '{values}'\n"));
    };
    for w in windows {
        let labels = format!("job=\"etcd\",instance=\"{}\"", w.instance);
        series(format!("up{{{labels}}}"), format!("{}x{steps}", u8::from(w.after.is_some())));
        let Some(after) = w.after else { continue };
        let read = |s: &str| rules.contains(s.split('{').next().unwrap().trim_end_matches("_bucket"));
        let moved = |s: &str, v: f64| v != 0.0 || w.before.value(s) != 0.0;
        for (s, v) in after.samples.iter().filter(|(s, v)| keep(s) && read(s) && moved(s, *v)) {
            let name = match s.split_once('{') {
                Some((name, rest)) => format!("{name}{{{labels},{rest}"),
                None => format!("{s}{{{labels}}}"),
            };
            let values = if after.cumulative(s) {
                let (start, delta) = (w.before.value(s), v - w.before.value(s));
                if delta >= 0.0 {
                    format!("{start}+{delta}x{steps}")
                } else {
                    format!("{start}-{}x{steps}", -delta)
                }
            } else {
                format!("{v}x{steps}")
            };
            series(name, values);
        }
    }
    yaml
}

/// An alert, when to evaluate it, and the alerts expected then, as their labels besides `job`.
type Check<'a> = (&'a str, &'a str, Vec<Vec<(&'a str, String)>>);

/// One promtool test: `input` replayed, and each check made.
fn test_case(input: &str, checks: &[Check]) -> String {
    let mut yaml = format!("  - interval: 1s\n    input_series:\n{input}    alert_rule_test:\n");
    for (alert, at, expected) in checks {
        yaml.push_str(&format!("      - eval_time: {at}\n        alertname: {alert}\n        exp_alerts:\n"));
        for labels in expected {
            yaml.push_str("          - exp_labels:\n              job: etcd\n");
            for (k, v) in labels {
                yaml.push_str(&format!("              {k}: '{v}'\n"));
            }
        }
    }
    yaml
}

/// The member's scrapes, in member order.
fn scrape_all(ports: &[u16]) -> Vec<Option<Scrape>> {
    ports.iter().map(|p| scrape(([127, 0, 0, 1], *p).into())).collect()
}

fn put_over_gateway(endpoint: SocketAddr, key: &str) -> http::Reply {
    let b64 = |s: &str| {
        let mut out = String::new();
        raftkv::jsonpb::base64::encode(&mut out, s.as_bytes());
        out
    };
    http::post(endpoint, "/v3/kv/put", &format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64("v")))
}

fn addr(m: &Member) -> SocketAddr {
    m.endpoint().parse().unwrap()
}

fn promtool_present() -> bool {
    Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_etcd_mixins_alerts_fire_on_raftkvs_series() {
    if !promtool_present() {
        // CI installs it (scripts/install-deps.sh); a machine without it skips, loudly.
        assert!(std::env::var_os("CI").is_none(), "promtool missing in CI: apt-get install prometheus");
        eprintln!("SKIPPED the_etcd_mixins_alerts_fire_on_raftkvs_series: no promtool (apt-get install prometheus)");
        return;
    }
    crate::harness::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut members: Vec<Member> = (0..3).map(|i| Member::new(&format!("mx{i}"), dir.path())).collect();
    let ports: Vec<u16> = members.iter().map(|_| free_port()).collect();
    let initial = initial_cluster(&members);
    let spawn = |m: &mut Member, port: u16, dir: &Path| {
        m.env.push(("RAFTKV_DEBUG_CONTROL", "1".into()));
        let metrics = format!("http://127.0.0.1:{port}");
        m.spawn(&dir.join(&m.name), &initial, &["--listen-metrics-urls", &metrics]);
    };
    for (m, port) in members.iter_mut().zip(&ports) {
        spawn(m, *port, dir.path());
    }
    for m in &mut members {
        m.wait_healthy(Duration::from_secs(20));
    }
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let ids: Vec<u64> = members.iter().map(|m| m.status().unwrap().header.unwrap().member_id).collect();
    let leader = |members: &[Member]| position_of(members, agreed_leader(members, 0, Duration::from_secs(10)).unwrap());
    let windows = |before: &[Option<Scrape>],
                   after: &[Option<Scrape>],
                   which: &[usize]|
     -> Vec<(usize, Scrape, Option<Scrape>)> {
        which.iter().map(|&i| (i, before[i].clone().expect("scraped before"), after[i].clone())).collect()
    };
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mixin/etcd-alerts.yaml")).unwrap();
    let mut tests = String::new();
    let mut add =
        |ws: Vec<(usize, Scrape, Option<Scrape>)>, keep: &dyn Fn(&str) -> bool, steps: usize, checks: &[Check]| {
            let ws: Vec<Window> =
                ws.iter().map(|(i, b, a)| Window { instance: &names[*i], before: b, after: a.as_ref() }).collect();
            tests.push_str(&test_case(&input_series(&ws, &rules, keep, steps), checks));
        };
    let all = |_: &str| true;
    let severity = |s: &str| ("severity", s.to_string());
    let instance = |i: usize| ("instance", names[i].clone());

    // A quiet cluster: nothing fires.
    let quiet_before = scrape_all(&ports);
    std::thread::sleep(Duration::from_secs(1));
    let quiet_after = scrape_all(&ports);
    let every_alert = [
        "etcdMembersDown",
        "etcdInsufficientMembers",
        "etcdNoLeader",
        "etcdHighNumberOfLeaderChanges",
        "etcdHighNumberOfFailedGRPCRequests",
        "etcdGRPCRequestsSlow",
        "etcdMemberCommunicationSlow",
        "etcdHighNumberOfFailedProposals",
        "etcdHighFsyncDurations",
        "etcdHighCommitDurations",
    ];
    let quiet: Vec<Check> = every_alert.iter().map(|a| (*a, "28m", vec![])).collect();
    add(windows(&quiet_before, &quiet_after, &[0, 1, 2]), &all, 1800, &quiet);

    // Leader changes: the leader killed and restarted, then leadership moved three times.
    let before = scrape_all(&ports);
    let first = leader(&members);
    members[first].kill();
    let survivor = (first + 1) % 3;
    let next = position_of(&members, agreed_leader(&members, ids[first], Duration::from_secs(10)).unwrap());
    spawn(&mut members[first], ports[first], dir.path());
    members[first].wait_healthy(Duration::from_secs(20));
    let mut at = next;
    for _ in 0..3 {
        let target = (at + 1) % 3;
        members[at].client().move_leader(&MoveLeaderRequest { target_id: ids[target] }).unwrap();
        at = position_of(&members, agreed_leader(&members, ids[at], Duration::from_secs(10)).unwrap());
    }
    let after = scrape_all(&ports);
    let changes = after[survivor].as_ref().unwrap().value("etcd_server_leader_changes_seen_total")
        - before[survivor].as_ref().unwrap().value("etcd_server_leader_changes_seen_total");
    assert!(changes >= 4.0, "{} saw {changes} leader changes", names[survivor]);
    add(
        windows(&before, &after, &[survivor]),
        &all,
        1800,
        &[("etcdHighNumberOfLeaderChanges", "28m", vec![vec![instance(survivor), severity("warning")]])],
    );

    // A stalled fsync on the leader: three puts, each behind a 600 ms raft log write.
    let l = leader(&members);
    let before = scrape_all(&ports);
    assert_eq!(members[l].control("PUT", "/debug/failpoints/raft_before_save", "3*sleep(600)").unwrap().status, 204);
    for k in 0..3 {
        assert_eq!(put_over_gateway(addr(&members[l]), &format!("slow-fsync-{k}")).status, 200);
    }
    let after = scrape_all(&ports);
    let put_only = |s: &str| !s.starts_with("grpc_") || s.contains(r#"grpc_method="Put""#);
    let put_labels = || vec![("grpc_method", "Put".to_string()), ("grpc_service", "etcdserverpb.KV".to_string())];
    let mut slow_put = put_labels();
    slow_put.extend([instance(l), severity("critical")]);
    add(
        windows(&before, &after, &[l]),
        &put_only,
        700,
        &[
            ("etcdHighFsyncDurations", "11m", vec![vec![instance(l), severity("warning")]]),
            ("etcdGRPCRequestsSlow", "11m", vec![slow_put]),
        ],
    );

    // A stalled apply write (backend commit) on the leader.
    let before = scrape_all(&ports);
    assert_eq!(members[l].control("PUT", "/debug/failpoints/apply_before_commit", "3*sleep(400)").unwrap().status, 204);
    for k in 0..3 {
        assert_eq!(put_over_gateway(addr(&members[l]), &format!("slow-commit-{k}")).status, 200);
    }
    let after = scrape_all(&ports);
    add(
        windows(&before, &after, &[l]),
        &all,
        700,
        &[("etcdHighCommitDurations", "11m", vec![vec![instance(l), severity("warning")]])],
    );

    // Failing ranges (a future revision: OutOfRange) next to a few good ones.
    let m0 = addr(&members[0]);
    let before = scrape_all(&ports);
    for _ in 0..10 {
        assert_eq!(http::post(m0, "/v3/kv/range", r#"{"key":"YQ==","revision":1000000}"#).status, 400);
    }
    for _ in 0..3 {
        assert_eq!(http::post(m0, "/v3/kv/range", r#"{"key":"YQ=="}"#).status, 200);
    }
    let after = scrape_all(&ports);
    let range_only = |s: &str| !s.starts_with("grpc_") || s.contains(r#"grpc_method="Range""#);
    let failing = |sev: &str| {
        vec![
            ("grpc_method", "Range".to_string()),
            ("grpc_service", "etcdserverpb.KV".to_string()),
            instance(0),
            severity(sev),
        ]
    };
    add(
        windows(&before, &after, &[0]),
        &range_only,
        700,
        &[("etcdHighNumberOfFailedGRPCRequests", "11m", vec![failing("warning"), failing("critical")])],
    );

    // A follower paused for 500 ms: the leader's heartbeat to it comes back that late.
    let l = leader(&members);
    let paused = (l + 1) % 3;
    let before = scrape_all(&ports);
    members[paused].signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(500));
    members[paused].signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(300));
    let after = scrape_all(&ports);
    add(
        windows(&before, &after, &[l]),
        &all,
        700,
        &[(
            "etcdMemberCommunicationSlow",
            "11m",
            vec![vec![("To", format!("{:x}", ids[paused])), instance(l), severity("warning")]],
        )],
    );

    // Two members killed: the survivor has no leader, its proposals fail, its sends fail.
    let survivor = 0;
    let before = scrape_all(&ports);
    members[1].kill();
    members[2].kill();
    let endpoint = addr(&members[survivor]);
    let proposals: Vec<_> =
        (0..8).map(|k| std::thread::spawn(move || put_over_gateway(endpoint, &format!("down-{k}")).status)).collect();
    for p in proposals {
        assert_ne!(p.join().unwrap(), 200, "a put without a leader fails");
    }
    let after = scrape_all(&ports);
    assert!(after[1].is_none() && after[2].is_none(), "killed members do not answer scrapes");
    assert_eq!(after[0].as_ref().unwrap().value("etcd_server_has_leader"), 0.0);
    let down = windows(&before, &after, &[0, 1, 2]);
    add(
        down,
        &all,
        1800,
        &[
            ("etcdMembersDown", "4m", vec![vec![severity("critical")]]),
            ("etcdInsufficientMembers", "4m", vec![vec![severity("critical")]]),
            ("etcdNoLeader", "2m", vec![vec![instance(survivor), severity("critical")]]),
            ("etcdHighNumberOfFailedProposals", "28m", vec![vec![instance(survivor), severity("warning")]]),
        ],
    );
    members[0].kill();

    // The rules without their annotations (see the module's comment).
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mixin/etcd-alerts.yaml")).unwrap();
    let mut stripped = String::new();
    let mut lines = rules.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "annotations:" {
            lines.next();
            continue;
        }
        stripped.push_str(line);
        stripped.push('\n');
    }
    std::fs::write(dir.path().join("rules.yaml"), stripped).unwrap();
    let test = format!("rule_files: [rules.yaml]\nevaluation_interval: 1s\ntests:\n{tests}");
    std::fs::write(dir.path().join("test.yaml"), &test).unwrap();
    let out =
        Command::new("promtool").arg("test").arg("rules").arg("test.yaml").current_dir(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}\n(test file kept in {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        dir.keep().display()
    );
}
