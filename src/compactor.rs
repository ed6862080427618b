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

use crate::logging::GoDuration;

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

/// Go's `time.ParseDuration`, as etcd's flags take durations: `90s`, `1h30m`, `500ms`, `1.5s`,
/// `250us`, and a bare `0` (Go takes it without a unit, as `--experimental-corrupt-check-time=0`).
/// The GoDuration text of the logs and the config file reads back through it.
pub fn parse_duration(s: &str) -> Option<Duration> {
    match s {
        "0" => return Some(Duration::ZERO),
        "" => return None,
        _ => {}
    }
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|&n| n > 0)?;
        let (whole, fraction) = rest[..number_len].split_once('.').unwrap_or((&rest[..number_len], ""));
        if (whole.is_empty() && fraction.is_empty()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let mut part = whole.checked_mul(unit_ns)?;
        let mut scale = unit_ns;
        for digit in fraction.bytes() {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total_ns = total_ns.checked_add(part)?;
    }
    u64::try_from(total_ns).ok().map(Duration::from_nanos)
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
            // etcd's words and fields (`v3compactor/periodic.go`, `revision.go`). etcd logs
            // "completed" once its compaction is applied; this one is proposed without waiting,
            // and mvcc says "finished scheduled compaction" when the removal is done.
            match mode {
                AutoCompaction::Periodic(period) => {
                    log::info!(revision = target, "compact-period":% = GoDuration(period); "starting auto periodic compaction")
                }
                AutoCompaction::Revision(keep) => {
                    log::info!(revision = target, "revision-compaction-retention" = keep; "starting auto revision compaction")
                }
            }
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
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m0.25s"), Some(Duration::from_millis(120_250)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::from_nanos(1_000_000_001)));
        assert_eq!(parse_duration("7µs"), Some(Duration::from_micros(7)));
        for bad in ["", "s", ".s", "1", "1x", "1.2.3s", "-1s", "99999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert!(p("sometimes", "1").is_err());
    }
}
