//! [`Wait`]: the registry of callers blocked on a proposal, keyed by request id (etcd's `wait`).
//!
//! A client thread registers before proposing and blocks on the returned [`Waiter`]; the apply
//! thread triggers the id with the result once the entry is applied (only the proposing member
//! has a waiter; other members find none and drop the result). On timeout the caller cancels
//! its registration; on shutdown every waiter gets `etcdserver: server stopped`.
//!
//! A waiter is a mutex-and-condvar slot rather than a channel: the caller sleeps in the kernel
//! until its one answer arrives. A crossbeam channel would first spin and `sched_yield` — with
//! 64 callers waiting out each fsync, those yields were a visible share of a put's CPU.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::Error;

pub type Outcome<T> = std::result::Result<T, Error>;

/// One caller's answer, delivered at most once.
pub struct Waiter<T> {
    slot: Mutex<Option<Outcome<T>>>,
    ready: Condvar,
}

impl<T> Waiter<T> {
    fn new(outcome: Option<Outcome<T>>) -> Arc<Waiter<T>> {
        Arc::new(Waiter { slot: Mutex::new(outcome), ready: Condvar::new() })
    }

    fn deliver(&self, outcome: Outcome<T>) {
        *self.slot.lock() = Some(outcome);
        self.ready.notify_one();
    }

    /// The outcome, or `None` if `deadline` passed first.
    pub fn wait_until(&self, deadline: Instant) -> Option<Outcome<T>> {
        let mut slot = self.slot.lock();
        loop {
            if let Some(outcome) = slot.take() {
                return Some(outcome);
            }
            if self.ready.wait_until(&mut slot, deadline).timed_out() {
                return slot.take();
            }
        }
    }
}

/// The answering half of a one-shot [`Waiter`] handed to another thread: dropping it
/// unanswered (that thread stopped) answers `etcdserver: server stopped`.
pub struct Reply<T> {
    waiter: Option<Arc<Waiter<T>>>,
}

impl<T> Reply<T> {
    pub fn send(mut self, outcome: Outcome<T>) {
        if let Some(waiter) = self.waiter.take() {
            waiter.deliver(outcome);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.deliver(Err(Error::Stopped));
        }
    }
}

/// A waiter and the reply that answers it.
pub fn oneshot<T>() -> (Reply<T>, Arc<Waiter<T>>) {
    let waiter = Waiter::new(None);
    (Reply { waiter: Some(waiter.clone()) }, waiter)
}

pub struct Wait<T> {
    /// Waiters by request id; `None` once closed, so late registrations fail fast.
    waiters: Mutex<Option<HashMap<u64, Arc<Waiter<T>>>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait { waiters: Mutex::new(Some(HashMap::new())) }
    }
}

impl<T> Wait<T> {
    /// Registers `id`; the waiter yields exactly one outcome.
    pub fn register(&self, id: u64) -> Arc<Waiter<T>> {
        match &mut *self.waiters.lock() {
            Some(waiters) => {
                let waiter = Waiter::new(None);
                waiters.insert(id, waiter.clone());
                waiter
            }
            None => Waiter::new(Some(Err(Error::Stopped))),
        }
    }

    /// Delivers `outcome` to the waiter of `id`, if this member has one.
    pub fn trigger(&self, id: u64, outcome: Outcome<T>) {
        let waiter = self.waiters.lock().as_mut().and_then(|w| w.remove(&id));
        // The caller may have timed out and gone; then nobody reads it.
        if let Some(waiter) = waiter {
            waiter.deliver(outcome);
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
        for (_, waiter) in waiters.into_iter().flatten() {
            waiter.deliver(Err(Error::Stopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn trigger_reaches_only_the_registered_waiter() {
        let wait = Wait::<u32>::default();
        let waiter = wait.register(7);
        wait.trigger(8, Ok(1));
        wait.trigger(7, Ok(2));
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 2);
    }

    #[test]
    fn a_waiter_times_out_and_wakes_from_another_thread() {
        let wait = Arc::new(Wait::<u32>::default());
        let waiter = wait.register(1);
        assert!(waiter.wait_until(Instant::now() + Duration::from_millis(20)).is_none());
        let w = wait.clone();
        let t = std::thread::Builder::new()
            .name("raftkv-test-trigger".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                w.trigger(1, Ok(9));
            })
            .unwrap();
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 9);
        t.join().unwrap();
    }

    #[test]
    fn a_dropped_reply_answers_stopped() {
        let (reply, waiter) = oneshot::<u32>();
        drop(reply);
        assert!(matches!(waiter.wait_until(soon()).unwrap(), Err(Error::Stopped)));
        let (reply, waiter) = oneshot::<u32>();
        reply.send(Ok(3));
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 3);
    }

    #[test]
    fn close_fails_pending_and_later_waiters() {
        let wait = Wait::<u32>::default();
        let pending = wait.register(1);
        wait.close();
        assert!(matches!(pending.wait_until(soon()).unwrap(), Err(Error::Stopped)));
        assert!(matches!(wait.register(2).wait_until(soon()).unwrap(), Err(Error::Stopped)));
    }
}
