//! The Debian package (`scripts/build-deb.sh`), built from this build's binaries and really
//! installed on this machine: `dpkg -i`, the member run as its unit runs it (user, environment,
//! data dir), a put and a get with the installed raftkvctl, SIGTERM, `dpkg --purge`.
//!
//! It changes the machine (a package, a user), so it needs root and leaves alone a machine
//! where raftkv is installed already or a `raftkv` user exists: it says so and does nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;
use crate::harness::process::Process;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Why this machine cannot take the test, if it cannot.
fn unsuitable() -> Option<&'static str> {
    if ok("id", &["-u"]).trim() != "0" {
        return Some("needs root");
    }
    if run("dpkg-deb", &["--version"]).status.code() != Some(0) {
        return Some("needs dpkg-deb");
    }
    if run("dpkg", &["-s", "raftkv"]).status.success() {
        return Some("raftkv is installed on this machine");
    }
    if run("getent", &["passwd", "raftkv"]).status.success() || Path::new("/var/lib/raftkv").exists() {
        return Some("a raftkv user or /var/lib/raftkv exists on this machine");
    }
    None
}

/// The unit's `Environment=` settings and `User=`, as systemd would give them to the process.
fn unit_environment(unit: &str) -> (Vec<(String, String)>, String) {
    let host = ok("hostname", &[]).trim().to_string();
    let mut env = Vec::new();
    let mut user = String::new();
    for line in unit.lines() {
        if let Some(setting) = line.strip_prefix("Environment=") {
            let (k, v) = setting.split_once('=').expect("Environment=K=V");
            env.push((k.to_string(), v.replace("%H", &host)));
        } else if let Some(u) = line.strip_prefix("User=") {
            user = u.to_string();
        }
    }
    (env, user)
}

/// Undoes what the test did to the machine, also when it fails halfway.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "raftkv"]);
        let _ = run("userdel", &["raftkv"]);
        let _ = run("groupdel", &["raftkv"]);
        let _ = std::fs::remove_dir_all("/var/lib/raftkv");
    }
}

#[test]
fn the_debian_package_installs_runs_as_its_user_and_purges() {
    if let Some(why) = unsuitable() {
        eprintln!("the package test does nothing here: it {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_raftkv")).parent().unwrap().to_str().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb.sh");
    let deb = ok(script, &[&bin_dir, dir.path().to_str().unwrap(), "none"]).trim().to_string();
    let _cleanup = Cleanup;
    ok("dpkg", &["-i", &deb]);

    for path in ["/usr/bin/raftkv", "/usr/bin/raftkvctl", "/lib/systemd/system/raftkv.service", "/etc/default/raftkv"] {
        assert!(Path::new(path).exists(), "{path} installed");
    }
    assert_eq!(ok("stat", &["-c", "%U %a", "/var/lib/raftkv"]).trim(), "raftkv 700");

    // The member as systemd would start it: the unit's user and environment, ExecStart's
    // binary, flags in DAEMON_ARGS (here only ports away from the defaults).
    let unit = std::fs::read_to_string("/lib/systemd/system/raftkv.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/raftkv $DAEMON_ARGS") && unit.contains("Type=notify"));
    let (env, user) = unit_environment(&unit);
    assert_eq!(user, "raftkv");
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let name = env.iter().find(|(k, _)| k == "RAFTKV_NAME").map(|(_, v)| v.clone()).unwrap();
    let log = dir.path().join("member.log");
    let mut member = Process::spawn(
        // setpriv execs the binary as the user (no process between, so SIGTERM reaches it).
        Command::new("setpriv")
            .args([&format!("--reuid={user}"), &format!("--regid={user}"), "--clear-groups", "/usr/bin/raftkv"])
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .envs(env.iter().filter(|(k, _)| k != "DAEMON_ARGS").map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let endpoint = format!("127.0.0.1:{client}");
    let ctl = |args: &[&str]| run("/usr/bin/raftkvctl", &[&["--endpoints", &endpoint], args].concat());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&["put", "packaged", "yes"]).status.success() {
        assert!(member.alive() && Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(String::from_utf8(ctl(&["get", "packaged"]).stdout).unwrap(), "packaged\nyes\n");
    assert!(member.terminate().success());
    // The unit's data dir, the unit's JSON log lines, the member's own user.
    assert_eq!(ok("stat", &["-c", "%U", "/var/lib/raftkv/default"]).trim(), "raftkv");
    let first = std::fs::read_to_string(&log).unwrap().lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("{\"level\":"), "{first}");

    ok("dpkg", &["--purge", "raftkv"]);
    for path in ["/usr/bin/raftkv", "/usr/bin/raftkvctl", "/lib/systemd/system/raftkv.service", "/etc/default/raftkv"] {
        assert!(!Path::new(path).exists(), "{path} purged");
    }
    assert!(!run("dpkg", &["-s", "raftkv"]).status.success());
    // As Debian's etcd-server, a purge keeps the member's data and its user.
    assert!(Path::new("/var/lib/raftkv/default").exists());
}
