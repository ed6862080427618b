//! The soak's fault schedule: one fault per segment, drawn from a seeded generator (the
//! leader is the favoured target), injected while the traffic runs and undone before the
//! segment ends. Each [`Fault::inject`] returns what happened, for the report; an `Err` is
//! a finding (a member that does not exit at an abort point, a membership change that
//! cannot complete).

use std::time::{Duration, Instant};

use raftkv::pb::{MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest, MoveLeaderRequest};
use raftkv::Client;
use rand::rngs::StdRng;
use rand::Rng;

use super::cluster::{SoakCluster, FLAGS, MEMBERS};
use crate::harness::process::{initial_cluster, Member};

/// The persist points a failpoint fault arms: every one a write goes through.
const WRITE_POINTS: &[&str] = &["raft_before_save", "raft_after_save", "apply_before_commit", "apply_after_commit"];
const CRASH_ACTIONS: &[&str] = &["1*abort", "1*panic", "1*error"];
const SNAPSHOT_POINTS: &[&str] = &["snapshot_before_install", "snapshot_after_install"];
/// The election timeout the members run with (`harness::process::Member::spawn`).
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// A member that reached an armed crash point must be gone within this.
const EXIT_WITHIN: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, then a restart on the same data dir.
    Kill,
    /// SIGSTOP longer than the election timeout, then SIGCONT.
    Pause,
    /// The target's peer links cut, in a direction (`both`, `out`, `in`), then healed.
    Partition(&'static str),
    /// The leader's next synced raft write stalls 2 s (`raft_after_save=1*sleep(2000)`).
    FsyncStall,
    /// A persist point armed to abort, panic or fail on the target, which must die there;
    /// then a restart.
    CrashAt,
    /// A follower killed until the leader compacts its log past it, restarted with a snapshot
    /// point armed to abort, then restarted again.
    SnapshotCrash,
    /// A learner added, caught up, promoted, and removed again.
    Membership,
}

impl Fault {
    /// Every fault with its short name (what `RAFTKV_SOAK_FAULTS` lists).
    pub const ALL: [(&'static str, Fault); 9] = [
        ("kill", Fault::Kill),
        ("pause", Fault::Pause),
        ("partition", Fault::Partition("both")),
        ("partition-out", Fault::Partition("out")),
        ("partition-in", Fault::Partition("in")),
        ("stall", Fault::FsyncStall),
        ("crash", Fault::CrashAt),
        ("snapshot", Fault::SnapshotCrash),
        ("membership", Fault::Membership),
    ];

    /// The faults a comma-separated list of short names allows (all if it is empty).
    pub fn allowed(names: &str) -> Vec<Fault> {
        let names: Vec<&str> = names.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        for name in &names {
            assert!(Fault::ALL.iter().any(|(n, _)| n == name), "unknown fault {name:?}; known: {:?}", Fault::ALL);
        }
        Fault::ALL.iter().filter(|(n, _)| names.is_empty() || names.contains(n)).map(|(_, f)| *f).collect()
    }

    /// A random fault among `allowed`, by weight.
    pub fn draw(rng: &mut StdRng, allowed: &[Fault]) -> Fault {
        loop {
            let fault = Fault::weighted(rng);
            if allowed.contains(&fault) {
                return fault;
            }
        }
    }

    fn weighted(rng: &mut StdRng) -> Fault {
        match rng.gen_range(0..100) {
            0..=17 => Fault::Kill,
            18..=31 => Fault::Pause,
            32..=41 => Fault::Partition("both"),
            42..=48 => Fault::Partition("out"),
            49..=55 => Fault::Partition("in"),
            56..=69 => Fault::FsyncStall,
            70..=81 => Fault::CrashAt,
            82..=88 => Fault::SnapshotCrash,
            _ => Fault::Membership,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition("both") => "partition",
            Fault::Partition("out") => "one-way partition (out)",
            Fault::Partition(_) => "one-way partition (in)",
            Fault::FsyncStall => "fsync stall 2 s",
            Fault::CrashAt => "crash at a persist point",
            Fault::SnapshotCrash => "crash installing a snapshot",
            Fault::Membership => "membership change",
        }
    }

    /// Injects the fault and undoes it; what happened, in a line.
    pub fn inject(self, cluster: &mut SoakCluster, rng: &mut StdRng, learners: &mut usize) -> Result<String, String> {
        let leader = cluster.wait_leader(Duration::from_secs(10)).ok_or("no leader before the fault")?;
        // The leader two times in three.
        let target = if rng.gen_bool(2.0 / 3.0) { leader } else { (leader + rng.gen_range(1..MEMBERS)) % MEMBERS };
        let role = if target == leader { "leader" } else { "follower" };
        let name = cluster.members[target].name.clone();
        let hold = |rng: &mut StdRng, min_ms: u64, max_ms: u64| Duration::from_millis(rng.gen_range(min_ms..=max_ms));
        match self {
            Fault::Kill => {
                cluster.kill(target);
                std::thread::sleep(hold(rng, 1000, 4000));
                cluster.restart(target, &[]);
                Ok(format!("{name} ({role}) killed and restarted"))
            }
            Fault::Pause => {
                let pause = ELECTION_TIMEOUT + hold(rng, 500, 3000);
                cluster.pause(target);
                std::thread::sleep(pause);
                cluster.resume(target);
                Ok(format!("{name} ({role}) paused {pause:?}"))
            }
            Fault::Partition(direction) => {
                cluster.partition(target, direction)?;
                std::thread::sleep(hold(rng, 2000, 5000));
                cluster.heal_all();
                Ok(format!("{name} ({role}) cut off ({direction}) and healed"))
            }
            Fault::FsyncStall => fsync_stall(cluster, leader),
            Fault::CrashAt => {
                let point = WRITE_POINTS[rng.gen_range(0..WRITE_POINTS.len())];
                let action = CRASH_ACTIONS[rng.gen_range(0..CRASH_ACTIONS.len())];
                cluster.arm(target, point, action)?;
                wait_exit(cluster, target, &format!("{point}={action}"))?;
                cluster.restart(target, &[]);
                Ok(format!("{name} ({role}) died at {point}={action}, restarted"))
            }
            Fault::SnapshotCrash => snapshot_crash(cluster, rng, (leader + 1) % MEMBERS),
            Fault::Membership => membership(cluster, leader, learners),
        }
    }
}

/// A 2 s stall of the leader's next synced write; says whether the leadership survived it.
fn fsync_stall(cluster: &SoakCluster, leader: usize) -> Result<String, String> {
    let term_before = cluster.status(leader).map_or(0, |s| s.raft_term);
    cluster.arm(leader, "raft_after_save", "1*sleep(2000)")?;
    std::thread::sleep(Duration::from_millis(3000));
    let fired = cluster.armed(leader)?.is_empty();
    if !fired {
        cluster.arm(leader, "raft_after_save", "off")?;
    }
    let after = cluster.wait_leader(Duration::from_secs(10));
    let term_after = after.and_then(|l| cluster.status(l)).map_or(0, |s| s.raft_term);
    let name = &cluster.members[leader].name;
    let outcome = match after {
        _ if !fired => "never reached (no write)".to_string(),
        Some(l) if l == leader && term_after == term_before => "kept the leadership".to_string(),
        Some(l) => format!("lost the leadership to {} (term {term_before} → {term_after})", cluster.members[l].name),
        None => "no leader afterwards".to_string(),
    };
    Ok(format!("{name} (leader) stalled 2 s: {outcome}"))
}

fn wait_exit(cluster: &mut SoakCluster, target: usize, armed: &str) -> Result<(), String> {
    let deadline = Instant::now() + EXIT_WITHIN;
    while !cluster.members[target].exited() {
        if Instant::now() > deadline {
            return Err(format!(
                "{} still runs {EXIT_WITHIN:?} after {armed} was armed (hang?); see {}",
                cluster.members[target].name,
                cluster.log(target)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Kills follower `target` until the leader's log has moved past it (a snapshot is then the
/// only way back), restarts it with a snapshot point armed to abort, and again without.
fn snapshot_crash(cluster: &mut SoakCluster, rng: &mut StdRng, target: usize) -> Result<String, String> {
    let point = SNAPSHOT_POINTS[rng.gen_range(0..SNAPSHOT_POINTS.len())];
    cluster.kill(target);
    // The traffic writes a few hundred entries a second; the leader keeps 300 behind a
    // snapshot taken every 1000.
    std::thread::sleep(Duration::from_secs(6));
    cluster.restart(target, &[("RAFTKV_FAILPOINTS", format!("{point}=1*abort"))]);
    let name = cluster.members[target].name.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut crashed = false;
    while Instant::now() < deadline {
        if cluster.members[target].exited() {
            crashed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !crashed {
        // It caught up from the log, or is still receiving: kill it and start it plainly.
        cluster.kill(target);
    }
    cluster.restart(target, &[]);
    let what = if crashed { "aborted there" } else { "never reached it (caught up from the log)" };
    Ok(format!("{name} (follower) restarted with {point}=1*abort: {what}; restarted again"))
}

/// Adds a learner, waits until it has caught up, promotes it, then removes it (after moving
/// the leadership away if it took it).
fn membership(cluster: &mut SoakCluster, leader: usize, learners: &mut usize) -> Result<String, String> {
    *learners += 1;
    let dir = cluster.dir.clone();
    let mut learner = SoakCluster::member(&dir, &format!("l{learners}"));
    let voters = Client::new(&cluster.endpoints(), Duration::from_secs(5)).unwrap();
    let added = voters
        .member_add(&MemberAddRequest { peer_urls: vec![learner.peer_url()], is_learner: true })
        .map_err(|e| format!("member add: {e}"))?;
    let id = added.member.ok_or("member add: no member in the answer")?.id;
    let initial = format!("{},{}={}", initial_cluster(&cluster.members[..MEMBERS]), learner.name, learner.peer_url());
    let mut flags = FLAGS.to_vec();
    flags.extend(["--initial-cluster-state", "existing"]);
    learner.spawn(&dir.join(&learner.name), &initial, &flags);
    let name = learner.name.clone();
    // Promotion is refused until the learner is in sync with the leader: retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    let promoted = loop {
        match voters.member_promote(&MemberPromoteRequest { id }) {
            Ok(_) => break Ok(()),
            Err(e) if Instant::now() > deadline => break Err(format!("promote {name}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    let moved = remove_member(cluster, &voters, &learner, id)?;
    learner.kill();
    let _ = std::fs::remove_dir_all(dir.join(&name));
    promoted?;
    let leader_name = &cluster.members[leader].name;
    Ok(format!("learner {name} added (leader {leader_name}), caught up, promoted, removed{moved}"))
}

/// Removes member `id` (`learner`), first moving the leadership to a kept member if it has it.
fn remove_member(cluster: &SoakCluster, voters: &Client, learner: &Member, id: u64) -> Result<&'static str, String> {
    let mut moved = "";
    if learner.status().is_some_and(|s| s.leader == id) {
        let target_id = cluster.ids[0];
        let to_learner = Client::new(&[learner.endpoint()], Duration::from_secs(5)).unwrap();
        to_learner.move_leader(&MoveLeaderRequest { target_id }).map_err(|e| format!("move leader: {e}"))?;
        moved = " (the leadership moved off it first)";
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match voters.member_remove(&MemberRemoveRequest { id }) {
            Ok(_) => return Ok(moved),
            // An earlier attempt whose answer was lost took effect.
            Err(e) if e.to_string().ends_with("member not found") => return Ok(moved),
            Err(e) if Instant::now() > deadline => return Err(format!("remove {}: {e}", learner.name)),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}
