//! Real processes: the `raftkv` binary as a member (alone or in a cluster), `raftkvctl`, and
//! this test binary run again as a child. Every child is killed when its handle drops, so a
//! failed test never leaves a member holding ports or the test runner's pipes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use raftkv::pb::StatusResponse;
use raftkv::Client;

/// A child process, SIGKILLed when dropped.
pub struct Process {
    pub child: Child,
}

impl Process {
    pub fn spawn(command: &mut Command) -> Process {
        Process { child: command.spawn().expect("spawn a child process") }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no chance to flush or clean up, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, SIGTERM...).
    pub fn signal(&mut self, signal: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's pid, which `child` has not reaped.
        assert_eq!(unsafe { kill(pid, signal) }, 0, "signal {signal} to {pid}");
    }

    /// SIGTERM, then the exit status once it exits (within 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id() as i32;
        self.signal(SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "process {pid} did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.alive() {
            self.kill();
        }
    }
}

const SIGTERM: i32 = 15;
/// Freezes a process (it cannot catch it), as a long GC pause or a descheduled VM would.
pub const SIGSTOP: i32 = 19;
pub const SIGCONT: i32 = 18;

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// The `raftkv` binary of this build, its peer listener on a free port (tests run side by
/// side, never on the default ports).
pub fn raftkv() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    command.args(["--listen-peer-urls", "http://127.0.0.1:0"]).stdin(Stdio::null());
    command
}

/// One `raftkv` member process on 127.0.0.1.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Its stderr, appended to across restarts.
    pub log: PathBuf,
    /// Environment set for every start (e.g. `RAFTKV_DEBUG_CONTROL`).
    pub env: Vec<(&'static str, String)>,
    /// The `raftkv` binary it runs: this build's, or a copy a long test made so that a
    /// concurrent build replacing the file never changes what a restart runs.
    pub binary: PathBuf,
    /// Its open-file limit (soft, hard), set in the child before it runs; `None`: this
    /// process's.
    pub open_files: Option<(u64, u64)>,
    process: Option<Process>,
}

impl Member {
    /// A member of a cluster named by `--initial-cluster` (ports chosen, not started yet).
    pub fn new(name: &str, dir: &Path) -> Member {
        Member {
            name: name.to_string(),
            client_port: super::free_port(),
            peer_port: super::free_port(),
            log: dir.join(format!("{name}.log")),
            env: Vec::new(),
            binary: PathBuf::from(env!("CARGO_BIN_EXE_raftkv")),
            open_files: None,
            process: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Starts it with its data in `data_dir`, as one of `initial_cluster` (empty: alone), with
    /// `extra` flags.
    pub fn spawn(&mut self, data_dir: &Path, initial_cluster: &str, extra: &[&str]) {
        assert!(self.process.is_none(), "{} already runs", self.name);
        let (peer, client) = (self.peer_url(), format!("http://127.0.0.1:{}", self.client_port));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(&self.binary);
        command
            .args(["--name", &self.name, "--listen-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RAFTKV_LOG_LEVEL", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if !initial_cluster.is_empty() {
            command.args(["--advertise-client-urls", &client, "--initial-cluster", initial_cluster]);
        }
        if let Some((soft, hard)) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, as a pre-exec hook must be; it touches
            // only the child.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.process = Some(Process::spawn(&mut command));
    }

    /// Starts another etcd-compatible server binary (real etcd, for side-by-side tests) alone,
    /// with the flags both understand.
    pub fn spawn_binary(&mut self, binary: &str, data_dir: &Path) {
        assert!(self.process.is_none(), "{} already runs", self.name);
        let (peer, client) = (self.peer_url(), format!("http://127.0.0.1:{}", self.client_port));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(binary);
        command
            .args(["--name", &self.name, "--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.process = Some(Process::spawn(&mut command));
    }

    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// The running member's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("member running").child.id()
    }

    /// Waits until `endpoint health` passes (the member has a leader and serves reads).
    pub fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while ctl(&self.endpoint(), &["endpoint", "health"]).status.code() != Some(0) {
            let process = self.process.as_mut().expect("member started");
            assert!(process.alive(), "{} exited; see {}", self.name, self.log.display());
            assert!(Instant::now() < deadline, "{} not healthy within {within:?}", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        self.process.take().expect("member running").kill();
    }

    /// Sends `signal` to the running member (SIGSTOP, SIGCONT).
    pub fn signal(&mut self, signal: i32) {
        self.process.as_mut().expect("member running").signal(signal);
    }

    /// Whether its process has exited on its own (a crash, an abort, a fatal error); reaps it.
    pub fn exited(&mut self) -> bool {
        let exited = self.process.as_mut().is_some_and(|p| !p.alive());
        if exited {
            self.process = None;
        }
        exited
    }

    /// A call to its test control endpoints (`RAFTKV_DEBUG_CONTROL=1`, `src/api/gateway/debug.rs`).
    pub fn control(&self, method: &str, target: &str, body: &str) -> std::io::Result<super::http::Reply> {
        let mut conn = super::http::Conn::open(self.endpoint(), Duration::from_secs(5))?;
        conn.request(method, target, &["Connection: close"], body.as_bytes())?;
        conn.read_reply()
    }

    pub fn terminate(&mut self) -> ExitStatus {
        self.process.take().expect("member running").terminate()
    }

    pub fn client(&self) -> Client {
        Client::new(&[self.endpoint()], Duration::from_secs(3)).unwrap()
    }

    pub fn status(&self) -> Option<StatusResponse> {
        self.client().status().ok()
    }
}

/// Member processes `{prefix}0..{prefix}(n-1)` started as one new cluster, data under `dir`.
pub fn spawn_cluster(prefix: &str, n: usize, dir: &Path) -> Vec<Member> {
    spawn_cluster_with_env(prefix, n, dir, &[])
}

/// [`spawn_cluster`] with `env` set for every member (e.g. `RAFTKV_DEBUG_CONTROL`).
pub fn spawn_cluster_with_env(prefix: &str, n: usize, dir: &Path, env: &[(&'static str, &str)]) -> Vec<Member> {
    let mut members: Vec<Member> = (0..n).map(|i| Member::new(&format!("{prefix}{i}"), dir)).collect();
    let initial = initial_cluster(&members);
    for m in &mut members {
        m.env.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        m.spawn(&dir.join(&m.name), &initial, &[]);
    }
    members
}

/// `--initial-cluster` for `members`.
pub fn initial_cluster(members: &[Member]) -> String {
    let urls: Vec<String> = members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect();
    urls.join(",")
}

/// The leader every running member agrees on, once they do, other than `except`.
pub fn agreed_leader(members: &[Member], except: u64, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let leaders: Vec<u64> =
            members.iter().filter(|m| m.running()).map(|m| m.status().map_or(0, |s| s.leader)).collect();
        if leaders[0] != 0 && leaders[0] != except && leaders.iter().all(|l| *l == leaders[0]) {
            return Some(leaders[0]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The index in `members` of the one whose member id is `id`.
pub fn position_of(members: &[Member], id: u64) -> usize {
    members
        .iter()
        .position(|m| m.status().is_some_and(|s| s.header.unwrap().member_id == id))
        .expect("a member with that id")
}

/// `raftkvctl --endpoints endpoint args...`.
pub fn ctl(endpoint: &str, args: &[&str]) -> Output {
    ctl_stdin(endpoint, args, "")
}

pub fn ctl_stdin(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = ctl_command(endpoint, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub fn ctl_command(endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raftkvctl"));
    command.args(["--endpoints", endpoint]).args(args);
    command
}

/// This test binary again, running only the ignored test `name` with `env` set: how a test
/// gets a child process it may SIGKILL without killing itself.
pub fn this_test(name: &str, env: &[(&str, String)]) -> Command {
    // /proc/self/exe still runs this binary even if a concurrent build replaced the file.
    let exe = if Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap()
    };
    let mut command = Command::new(exe);
    command.args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}
