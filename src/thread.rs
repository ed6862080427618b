//! The one way raftkv starts a thread: with its `raftkv-<role>` name (so `top -H` and `perf`
//! say who is busy) and a failure to start reported as [`Error::Spawn`].

use std::thread::JoinHandle;

use crate::{Error, Result};

/// Starts `f` on a new thread called `name`.
pub fn spawn<T: Send + 'static>(
    name: impl Into<String>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    let name = name.into();
    std::thread::Builder::new().name(name.clone()).spawn(f).map_err(|source| Error::Spawn { name, source })
}
