//! Named fault points at the persist boundaries, for tests that prove a failed write stops the
//! member cleanly (etcd's gofail, TiKV's `fail_point!`).
//!
//! A point is off unless a test arms it with [`arm`]; when armed, [`check`] returns an injected
//! storage error exactly where a real I/O error would surface. The unarmed cost is one relaxed
//! atomic load. Points (listed in ARCHITECTURE.md): `raft_before_save` (before the Ready's
//! WriteBatch), `apply_before_commit` (before an apply batch's WriteBatch),
//! `compaction_before_batch` / `compaction_after_batch` (around a removal batch's WriteBatch
//! of compacted revisions).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::storage;

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
/// Armed point names; process-wide, like the failures they stand for.
static ARMED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Makes `name` fail from now on (until [`disarm`]).
pub fn arm(name: &str) {
    ARMED.lock().get_or_insert_with(HashSet::new).insert(name.to_string());
    ANY_ARMED.store(true, Ordering::Release);
}

pub fn disarm(name: &str) {
    let mut armed = ARMED.lock();
    if let Some(set) = armed.as_mut() {
        set.remove(name);
        ANY_ARMED.store(!set.is_empty(), Ordering::Release);
    }
}

/// Fails if `name` is armed.
pub fn check(name: &str) -> storage::Result<()> {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    if ARMED.lock().as_ref().is_some_and(|set| set.contains(name)) {
        return Err(storage::Error::Injected(name.to_string()));
    }
    Ok(())
}
