//! The one way raftkv starts a thread: with its `raftkv-<role>` name (so `top -H` and `perf`
//! say who is busy) and a failure to start reported as [`Error::Spawn`]. A thread the member
//! cannot run without ([`spawn_vital`]) reports its panic as a fatal error, so the member
//! stops instead of staying up without it (a dead apply thread answers nothing, forever).

use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;

use crossbeam::channel::Sender;

use crate::{Error, Result};

/// Starts `f` on a new thread called `name`.
pub fn spawn_named<T: Send + 'static>(
    name: impl Into<String>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    let name = name.into();
    std::thread::Builder::new().name(name.clone()).spawn(f).map_err(|source| Error::Spawn { name, source })
}

/// Starts `f` on a thread called `name`; if it panics, the panic is sent on `fatal_tx` as
/// [`Error::Panicked`] (the run loop's error channel: the member then stops, as after a failed
/// persist). The panic itself is printed by the standard hook as usual.
pub fn spawn_vital(
    name: impl Into<String>,
    fatal_tx: Sender<Error>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    let name = name.into();
    let thread = name.clone();
    spawn_named(name, move || {
        // Nothing of `f` is used after it unwound: the thread ends here.
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
            let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
                (Some(s), _) => s.to_string(),
                (_, Some(s)) => s.clone(),
                _ => "(no message)".to_string(),
            };
            let _ = fatal_tx.try_send(Error::Panicked { thread, message });
        }
    })
}
