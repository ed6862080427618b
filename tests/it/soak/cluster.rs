//! The soak's cluster: three `raftkv` processes with the test fault control on
//! (`RAFTKV_DEBUG_CONTROL=1`), the primitives the fault schedule is made of (kill, pause,
//! partition, arm a failpoint, restart), and the waits a cut needs (one leader, every member
//! at the same applied index). Every wait has a bound; running out of it is a finding (a
//! member that hangs or never catches up), reported with the members' logs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv::pb::StatusResponse;
use raftkv::Client;

use crate::harness::process::{initial_cluster, Member, SIGCONT, SIGSTOP};

/// How many members the cluster keeps (learners added by a membership change come and go).
pub const MEMBERS: usize = 3;

/// Flags for every member: snapshots often enough that a member down for a few seconds
/// catches up by snapshot (so the snapshot points and installs are exercised), and progress
/// notifications each second (the watches' bookmarks).
pub const FLAGS: &[&str] = &[
    "--snapshot-count",
    "1000",
    "--snapshot-catchup-entries",
    "300",
    "--experimental-watch-progress-notify-interval",
    "1s",
];

/// A status answer or a control call slower than this means the member is paused or gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct SoakCluster {
    pub dir: PathBuf,
    pub members: Vec<Member>,
    /// Member ids, by position in `members` (fixed: these members are never removed).
    pub ids: Vec<u64>,
    /// Which members are frozen by SIGSTOP (probing them would only wait).
    pub paused: Vec<bool>,
}

impl SoakCluster {
    pub fn start(dir: &Path) -> SoakCluster {
        // A copy of the binary: a build in another worktree sharing the target dir may replace
        // the file during a long run, and a restart must run what the run started with.
        let binary = dir.join("raftkv");
        std::fs::copy(env!("CARGO_BIN_EXE_raftkv"), &binary).expect("copy the raftkv binary");
        let mut members: Vec<Member> = (0..MEMBERS).map(|i| SoakCluster::member(dir, &format!("s{i}"))).collect();
        let initial = initial_cluster(&members);
        for m in &mut members {
            m.spawn(&dir.join(&m.name), &initial, FLAGS);
        }
        let mut cluster =
            SoakCluster { dir: dir.to_path_buf(), members, ids: vec![0; MEMBERS], paused: vec![false; MEMBERS] };
        for i in 0..MEMBERS {
            cluster.members[i].wait_healthy(Duration::from_secs(30));
            cluster.ids[i] = cluster.status(i).expect("a status").header.expect("a header").member_id;
        }
        cluster.converge(Duration::from_secs(30)).expect("the cluster starts");
        let control = cluster.armed(0);
        assert!(control.is_ok(), "no fault control ({control:?}): a stale binary? touch src/lib.rs and rebuild");
        cluster
    }

    /// A member (not started) that runs the run's copy of the binary with the fault control on.
    pub fn member(dir: &Path, name: &str) -> Member {
        let mut m = Member::new(name, dir);
        m.binary = dir.join("raftkv");
        m.env.push(("RAFTKV_DEBUG_CONTROL", "1".into()));
        m
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// `i`'s status, unless it is down, paused or too slow to answer.
    pub fn status(&self, i: usize) -> Option<StatusResponse> {
        if self.paused[i] || !self.members[i].running() {
            return None;
        }
        Client::new(&[self.members[i].endpoint()], PROBE_TIMEOUT).ok()?.status().ok()
    }

    /// The leader the reachable members agree on (a majority of them, all of them answering),
    /// by position.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<u64> = (0..MEMBERS).filter_map(|i| self.status(i)).map(|s| s.leader).collect();
        let agreed = leaders.len() >= 2 && leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]);
        agreed.then(|| self.ids.iter().position(|id| *id == leaders[0])).flatten()
    }

    pub fn wait_leader(&self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every member runs, agrees on one leader and has applied the same index:
    /// the point where a cut may read the store. `Err` says what never happened.
    pub fn converge(&mut self, within: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..MEMBERS {
                if self.members[i].exited() {
                    return Err(format!("{} exited on its own; see {}", self.members[i].name, self.log(i)));
                }
            }
            let statuses: Vec<Option<StatusResponse>> = (0..MEMBERS).map(|i| self.status(i)).collect();
            if let Some(all) = statuses.iter().cloned().collect::<Option<Vec<StatusResponse>>>() {
                let (leader, applied) = (all[0].leader, all[0].raft_applied_index);
                if leader != 0 && all.iter().all(|s| s.leader == leader && s.raft_applied_index == applied) {
                    if let Some(at) = self.ids.iter().position(|id| *id == leader) {
                        return Ok(at);
                    }
                }
            }
            let seen = statuses
                .iter()
                .zip(&self.members)
                .map(|(s, m)| match s {
                    Some(s) => format!("{}: leader {:x} applied {}", m.name, s.leader, s.raft_applied_index),
                    None => format!("{}: no answer", m.name),
                })
                .collect::<Vec<_>>()
                .join(", ");
            if Instant::now() > deadline {
                return Err(format!("no convergence within {within:?} ({seen})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self, i: usize) -> String {
        self.members[i].log.display().to_string()
    }

    pub fn kill(&mut self, i: usize) {
        if self.paused[i] {
            self.resume(i);
        }
        self.members[i].kill();
    }

    /// Starts member `i` again on its data dir, with `env` added for this start only (e.g.
    /// `RAFTKV_FAILPOINTS`).
    pub fn restart(&mut self, i: usize, env: &[(&'static str, String)]) {
        let initial = initial_cluster(&self.members[..MEMBERS]);
        let data_dir = self.dir.join(&self.members[i].name);
        let member = &mut self.members[i];
        let kept = member.env.len();
        member.env.extend_from_slice(env);
        member.spawn(&data_dir, &initial, FLAGS);
        member.env.truncate(kept);
    }

    pub fn pause(&mut self, i: usize) {
        self.members[i].signal(SIGSTOP);
        self.paused[i] = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.members[i].signal(SIGCONT);
        self.paused[i] = false;
    }

    /// Drops `i`'s peer traffic with every other member, in `direction` (`out`, `in`, `both`).
    pub fn partition(&self, i: usize, direction: &str) -> Result<(), String> {
        let others: Vec<String> = (0..MEMBERS).filter(|j| *j != i).map(|j| format!("{:x}", self.ids[j])).collect();
        self.control(i, "PUT", &format!("/debug/partition?direction={direction}"), &others.join(","))
    }

    /// Arms `point` with `action` on member `i`.
    pub fn arm(&self, i: usize, point: &str, action: &str) -> Result<(), String> {
        self.control(i, "PUT", &format!("/debug/failpoints/{point}"), action)
    }

    /// The failpoints armed on `i`, as `name=action` lines.
    pub fn armed(&self, i: usize) -> Result<String, String> {
        let reply = self.members[i].control("GET", "/debug/failpoints", "").map_err(|e| e.to_string())?;
        match reply.status {
            200 => Ok(reply.text()),
            status => Err(format!("GET /debug/failpoints: {status} {}", reply.text().trim())),
        }
    }

    /// Undoes every fault on every member: resumed, healed, running, nothing armed.
    pub fn heal_all(&mut self) {
        for i in 0..MEMBERS {
            if self.paused[i] {
                self.resume(i);
            }
            if self.members[i].exited() || !self.members[i].running() {
                self.restart(i, &[]);
                continue;
            }
            let _ = self.control(i, "DELETE", "/debug/partition", "");
            if let Ok(armed) = self.armed(i) {
                for line in armed.lines() {
                    let point = line.split('=').next().unwrap_or_default();
                    let _ = self.arm(i, point, "off");
                }
            }
        }
    }

    fn control(&self, i: usize, method: &str, target: &str, body: &str) -> Result<(), String> {
        let reply = self.members[i].control(method, target, body).map_err(|e| format!("{method} {target}: {e}"))?;
        match reply.status {
            204 => Ok(()),
            status => Err(format!("{method} {target}: {status} {}", reply.text().trim())),
        }
    }
}
