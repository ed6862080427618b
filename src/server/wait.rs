//! [`Wait`]: the registry of callers blocked on a proposal, keyed by request id (etcd's `wait`).
//!
//! A client thread registers before proposing and blocks on the returned receiver; the apply
//! thread triggers the id with the result once the entry is applied (only the proposing member
//! has a waiter; other members find none and drop the result). On timeout the caller cancels
//! its registration; on shutdown every waiter gets `etcdserver: server stopped`.

use std::collections::HashMap;

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::Mutex;

use crate::Error;

pub type Outcome<T> = std::result::Result<T, Error>;

pub struct Wait<T> {
    /// Waiters by request id; `None` once closed, so late registrations fail fast.
    waiters: Mutex<Option<HashMap<u64, Sender<Outcome<T>>>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait { waiters: Mutex::new(Some(HashMap::new())) }
    }
}

impl<T> Wait<T> {
    /// Registers `id`; the receiver yields exactly one outcome.
    pub fn register(&self, id: u64) -> Receiver<Outcome<T>> {
        let (tx, rx) = channel::bounded(1);
        match &mut *self.waiters.lock() {
            Some(waiters) => {
                waiters.insert(id, tx);
            }
            None => {
                let _ = tx.send(Err(Error::Stopped));
            }
        }
        rx
    }

    /// Delivers `outcome` to the waiter of `id`, if this member has one.
    pub fn trigger(&self, id: u64, outcome: Outcome<T>) {
        let waiter = self.waiters.lock().as_mut().and_then(|w| w.remove(&id));
        if let Some(tx) = waiter {
            // The caller may have timed out and gone; nothing to do then.
            let _ = tx.send(outcome);
        }
    }

    /// Forgets `id` (the caller gave up waiting).
    pub fn cancel(&self, id: u64) {
        if let Some(waiters) = self.waiters.lock().as_mut() {
            waiters.remove(&id);
        }
    }

    /// Whether the member stopped (see [`Wait::close`]).
    pub fn is_closed(&self) -> bool {
        self.waiters.lock().is_none()
    }

    /// Fails every current and future waiter with `etcdserver: server stopped`.
    pub fn close(&self) {
        let waiters = self.waiters.lock().take();
        for (_, tx) in waiters.into_iter().flatten() {
            let _ = tx.send(Err(Error::Stopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_reaches_only_the_registered_waiter() {
        let wait = Wait::<u32>::default();
        let rx = wait.register(7);
        wait.trigger(8, Ok(1));
        wait.trigger(7, Ok(2));
        assert_eq!(rx.recv().unwrap().unwrap(), 2);
    }

    #[test]
    fn close_fails_pending_and_later_waiters() {
        let wait = Wait::<u32>::default();
        let pending = wait.register(1);
        wait.close();
        assert!(matches!(pending.recv().unwrap(), Err(Error::Stopped)));
        assert!(matches!(wait.register(2).recv().unwrap(), Err(Error::Stopped)));
    }
}
