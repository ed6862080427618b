//! Auto-compaction (etcd's `--auto-compaction-mode` / `--auto-compaction-retention`): the
//! `raftkv-compactor` thread proposes compactions so history does not grow without bound.
//!
//! Only the leader compacts: the run loop resumes the compactor when this member becomes leader
//! and pauses it when it stops being one (etcd's `compactor.Resume/Pause`). Proposals are fire
//! and forget; one that is lost is simply made again at the next check.
//!
//! - periodic: keep `retention` of history. The compactor samples the revision every
//!   `retention / 10` (at most every hour, as etcd) and compacts to the revision it saw
//!   `retention` ago.
//! - revision: keep the last `retention` revisions, checked every 5 minutes (etcd's period).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{select, tick, Receiver};

/// etcd's revision-mode check period.
const REVISION_MODE_PERIOD: Duration = Duration::from_secs(300);
const PERIODIC_CHECK_MAX: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

impl AutoCompaction {
    /// etcd's flags: mode `periodic` with a duration (`1h`, `30m`, or a bare number of hours)
    /// or mode `revision` with a count. Retention `0` disables auto-compaction.
    pub fn parse(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, String> {
        let bad = || format!("--auto-compaction-retention {retention:?} is not valid for mode {mode:?}");
        match mode {
            "periodic" => {
                let retention = retention.trim();
                let duration = if let Ok(hours) = retention.parse::<u64>() {
                    Duration::from_secs(hours * 3600)
                } else {
                    parse_duration(retention).ok_or_else(bad)?
                };
                Ok((!duration.is_zero()).then_some(AutoCompaction::Periodic(duration)))
            }
            "revision" => {
                let revisions: i64 = retention.trim().parse().map_err(|_| bad())?;
                if revisions < 0 {
                    return Err(bad());
                }
                Ok((revisions > 0).then_some(AutoCompaction::Revision(revisions)))
            }
            other => Err(format!("--auto-compaction-mode {other:?}: must be 'periodic' or 'revision'")),
        }
    }

    fn period(self) -> Duration {
        match self {
            AutoCompaction::Periodic(retention) => {
                (retention / 10).clamp(Duration::from_millis(10), PERIODIC_CHECK_MAX)
            }
            AutoCompaction::Revision(_) => REVISION_MODE_PERIOD,
        }
    }
}

/// Go-style durations as etcd's flag takes them: `90s`, `30m`, `1h`, `1h30m`, `500ms`, and a
/// bare `0` (Go's `ParseDuration` takes it without a unit, as `--experimental-corrupt-check-time=0`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        total += unit * n as u32;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Whether this member's compactor runs (it leads) or waits.
#[derive(Default)]
pub struct Gate {
    running: AtomicBool,
}

impl Gate {
    pub fn resume(&self) {
        self.running.store(true, Ordering::Release);
    }

    pub fn pause(&self) {
        self.running.store(false, Ordering::Release);
    }

    fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// The `raftkv-compactor` thread body: until `stop_rx` fires, proposes compactions through
/// `compact(revision)` while `gate` is open. `revision()` reads the current revision and
/// `compacted()` the last compaction.
pub fn run(
    mode: AutoCompaction,
    gate: &Gate,
    stop_rx: &Receiver<()>,
    revision: impl Fn() -> i64,
    compacted: impl Fn() -> i64,
    compact: impl Fn(i64),
) {
    let ticker = tick(mode.period());
    // (when, revision) samples; periodic mode compacts to the newest one older than retention.
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    loop {
        select! {
            recv(stop_rx) -> _ => return,
            recv(ticker) -> _ => {}
        }
        if !gate.is_running() {
            // A new leader starts its own history window (etcd resets on Resume).
            samples.clear();
            continue;
        }
        let now = Instant::now();
        let current = revision();
        let target = match mode {
            AutoCompaction::Revision(keep) => current - keep,
            AutoCompaction::Periodic(retention) => {
                samples.push_back((now, current));
                let mut target = 0;
                while let Some(&(at, rev)) = samples.front() {
                    if now.duration_since(at) < retention {
                        break;
                    }
                    target = rev;
                    samples.pop_front();
                }
                target
            }
        };
        if target > compacted() && target <= current {
            log::info!("compactor: compacting to revision {target} ({mode:?})");
            compact(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_flags_parse_like_etcds() {
        let p = |m: &str, r: &str| AutoCompaction::parse(m, r);
        assert_eq!(p("periodic", "1").unwrap(), Some(AutoCompaction::Periodic(Duration::from_secs(3600))));
        assert_eq!(p("periodic", "30m").unwrap(), Some(AutoCompaction::Periodic(Duration::from_secs(1800))));
        assert_eq!(p("periodic", "1h30m").unwrap(), Some(AutoCompaction::Periodic(Duration::from_secs(5400))));
        assert_eq!(p("periodic", "0").unwrap(), None);
        assert_eq!(p("revision", "1000").unwrap(), Some(AutoCompaction::Revision(1000)));
        assert!(p("revision", "1h").is_err());
        assert!(p("periodic", "soon").is_err());
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1s500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None, "only 0 goes without a unit");
        assert!(p("sometimes", "1").is_err());
    }
}
