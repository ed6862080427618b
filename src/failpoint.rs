//! Named fault points at the persist boundaries, for tests that prove what a failed, crashed or
//! stalled write preserves (etcd's gofail, TiKV's `fail_point!`).
//!
//! A point is off unless armed: by a test in this process ([`arm`], [`set`]), or for a whole
//! `raftkv` process by `RAFTKV_FAILPOINTS="name=action;name=action"` at start ([`init_from_env`]),
//! as gofail's `GOFAIL_FAILPOINTS`. Actions: `error` (an injected storage error exactly where
//! a real I/O error would surface), `panic`, `abort` (the process dies at once, as in a power
//! cut between two writes), `sleep(ms)` (a stalled disk); `N*action` fires N times, then the
//! point is off again. The unarmed cost of [`check`] is one relaxed atomic load.
//!
//! The points, and what a crash at each must preserve, are listed in ARCHITECTURE.md
//! ("Fault points"); [`POINTS`] is the list [`set`] accepts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::storage;

/// Every fault point, in the order data flows through them.
pub const POINTS: &[&str] = &[
    "raft_before_save",
    "raft_after_save",
    "apply_before_commit",
    "apply_after_commit",
    "snapshot_before_install",
    "snapshot_after_install",
    "compaction_before_batch",
    "compaction_after_batch",
];

/// What an armed point does when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Error,
    Panic,
    Abort,
    Sleep(Duration),
}

#[derive(Clone, Copy, Debug)]
struct Armed {
    action: Action,
    /// Firings left; `None` = until disarmed.
    remaining: Option<u32>,
}

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
/// Armed points; process-wide, like the failures they stand for.
static ARMED: Mutex<Option<HashMap<String, Armed>>> = Mutex::new(None);

/// Makes `name` fail with an injected error from now on (until [`disarm`]).
pub fn arm(name: &str) {
    insert(name, Armed { action: Action::Error, remaining: None });
}

/// Arms `name` with `spec` (`error`, `panic`, `abort`, `sleep(ms)`, each optionally `N*`
/// before it; `off` disarms).
pub fn set(name: &str, spec: &str) -> Result<(), String> {
    if !POINTS.contains(&name) {
        return Err(format!("unknown fault point {name:?} (known: {})", POINTS.join(", ")));
    }
    if spec.trim() == "off" {
        disarm(name);
        return Ok(());
    }
    insert(name, parse(spec)?);
    Ok(())
}

fn parse(spec: &str) -> Result<Armed, String> {
    let spec = spec.trim();
    let (remaining, action) = match spec.split_once('*') {
        Some((n, action)) => {
            let n = n.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("bad count in {spec:?}"))?;
            (Some(n), action)
        }
        None => (None, spec),
    };
    let action = match action.trim() {
        "error" | "return" => Action::Error,
        "panic" => Action::Panic,
        "abort" => Action::Abort,
        other => {
            let ms = other
                .strip_prefix("sleep(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("bad fault action {spec:?}: want error, panic, abort or sleep(ms)"))?;
            Action::Sleep(Duration::from_millis(ms))
        }
    };
    Ok(Armed { action, remaining })
}

/// Arms the points `RAFTKV_FAILPOINTS` names (`name=action;...`); a malformed entry is an
/// error, so a test never runs believing a point armed that is not.
pub fn init_from_env() -> Result<(), String> {
    let Ok(spec) = std::env::var("RAFTKV_FAILPOINTS") else { return Ok(()) };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, action) =
            entry.split_once('=').ok_or_else(|| format!("RAFTKV_FAILPOINTS: {entry:?} is not name=action"))?;
        set(name.trim(), action).map_err(|e| format!("RAFTKV_FAILPOINTS: {e}"))?;
        log::warn!("failpoint: {} armed: {}", name.trim(), action.trim());
    }
    Ok(())
}

fn insert(name: &str, armed: Armed) {
    ARMED.lock().get_or_insert_with(HashMap::new).insert(name.to_string(), armed);
    ANY_ARMED.store(true, Ordering::Release);
}

/// The armed points, each with what it is armed with in [`set`]'s syntax (`2*sleep(2000)`),
/// by name.
pub fn armed() -> Vec<(String, String)> {
    let armed = ARMED.lock();
    let mut out: Vec<(String, String)> =
        armed.iter().flatten().map(|(name, point)| (name.clone(), point.to_string())).collect();
    out.sort();
    out
}

impl std::fmt::Display for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.remaining {
            write!(f, "{n}*")?;
        }
        match self.action {
            Action::Error => f.write_str("error"),
            Action::Panic => f.write_str("panic"),
            Action::Abort => f.write_str("abort"),
            Action::Sleep(d) => write!(f, "sleep({})", d.as_millis()),
        }
    }
}

pub fn disarm(name: &str) {
    let mut armed = ARMED.lock();
    if let Some(map) = armed.as_mut() {
        map.remove(name);
        ANY_ARMED.store(!map.is_empty(), Ordering::Release);
    }
}

/// Does what `name` is armed with, if it is: fails, panics, aborts the process, or sleeps
/// and goes on.
pub fn check(name: &str) -> storage::Result<()> {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let action = {
        let mut armed = ARMED.lock();
        let Some(map) = armed.as_mut() else { return Ok(()) };
        let Some(point) = map.get_mut(name) else { return Ok(()) };
        let action = point.action;
        if let Some(n) = point.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                map.remove(name);
                ANY_ARMED.store(!map.is_empty(), Ordering::Release);
            }
        }
        action
    };
    match action {
        Action::Error => Err(storage::Error::Injected(name.to_string())),
        Action::Panic => panic!("failpoint {name}: panic"),
        Action::Abort => {
            log::error!("failpoint {name}: aborting the process");
            std::process::abort()
        }
        Action::Sleep(d) => {
            log::warn!("failpoint {name}: sleeping {d:?}");
            std::thread::sleep(d);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsing only: arming a point here would fire in other tests' members in this process.
    #[test]
    fn specs_are_parsed_or_refused_with_the_reason() {
        let parsed = |spec| parse(spec).map(|a| (a.action, a.remaining));
        assert_eq!(parsed("error"), Ok((Action::Error, None)));
        assert_eq!(parsed(" 2*sleep(2000) "), Ok((Action::Sleep(Duration::from_secs(2)), Some(2))));
        assert_eq!(parsed("1*abort"), Ok((Action::Abort, Some(1))));
        assert_eq!(parsed("panic"), Ok((Action::Panic, None)));
        for spec in ["error", "2*sleep(2000)", "1*abort", "panic"] {
            assert_eq!(parse(spec).unwrap().to_string(), spec, "what GET /debug/failpoints shows");
        }
        for (spec, want) in [
            ("x*error", "bad count"),
            ("0*error", "bad count"),
            ("sleep(abc)", "bad fault action"),
            ("explode", "bad fault action"),
        ] {
            let err = parse(spec).unwrap_err();
            assert!(err.starts_with(want), "{spec}: {err}");
        }
        assert!(set("nope", "error").unwrap_err().starts_with("unknown fault point \"nope\""));
    }
}
