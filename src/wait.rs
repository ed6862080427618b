//! [`Wait`]: the registry of callers waiting on a proposal, keyed by request id (etcd's `wait`),
//! and [`Reply`], the answer-once half every waiting caller hands to another thread; and
//! [`Cancel`], what a call that waits for other clients (a lock, an election) hears when its
//! own caller goes away.
//!
//! A caller registers a [`Reply`] before proposing; the apply thread triggers the id with the
//! result once the entry is applied (only the proposing member has a registration; other
//! members find none and drop the result). A caller that gives up cancels its registration; on
//! shutdown every registration is answered `etcdserver: server stopped`.
//!
//! A reply is a callback, so the two kinds of callers share one path: the HTTP event loops pass
//! one that queues the answer for their connection (no thread sleeps per request), and blocking
//! callers ([`crate::Node`]'s methods) pass the one [`oneshot`] makes, which fills a
//! mutex-and-condvar slot they sleep on. A crossbeam channel there would first spin and
//! `sched_yield` — with 64 callers waiting out each fsync, those yields were a visible share of
//! a put's CPU.
//!
//! Callbacks run on the answering thread (apply or raft): they must only hand the outcome on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::Error;

pub type Outcome<T> = std::result::Result<T, Error>;

type Callback<T> = Box<dyn FnOnce(Outcome<T>) + Send>;

/// The answering half of a call, handed to another thread: answers at most once, and dropping
/// it unanswered (that thread stopped) answers `etcdserver: server stopped`.
pub struct Reply<T> {
    callback: Option<Callback<T>>,
}

impl<T: 'static> Reply<T> {
    pub fn new(callback: impl FnOnce(Outcome<T>) + Send + 'static) -> Reply<T> {
        Reply { callback: Some(Box::new(callback)) }
    }

    pub fn send(mut self, outcome: Outcome<T>) {
        if let Some(callback) = self.callback.take() {
            callback(outcome);
        }
    }

    /// A reply for a call whose result converts into this one's.
    pub fn map<U: 'static>(self, f: impl FnOnce(U) -> Outcome<T> + Send + 'static) -> Reply<U> {
        Reply::new(move |outcome: Outcome<U>| self.send(outcome.and_then(f)))
    }

    /// Drops the reply without answering (its caller already gave up).
    fn forget(mut self) {
        self.callback = None;
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(callback) = self.callback.take() {
            callback(Err(Error::Stopped));
        }
    }
}

/// The blocking caller's half of a [`oneshot`].
pub struct Waiter<T> {
    slot: Mutex<Option<Outcome<T>>>,
    ready: Condvar,
}

impl<T> Waiter<T> {
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

/// A reply and the waiter it wakes.
pub fn oneshot<T: Send + 'static>() -> (Reply<T>, Arc<Waiter<T>>) {
    let waiter = Arc::new(Waiter { slot: Mutex::new(None), ready: Condvar::new() });
    let answer = waiter.clone();
    let reply = Reply::new(move |outcome| {
        *answer.slot.lock() = Some(outcome);
        answer.ready.notify_one();
    });
    (reply, waiter)
}

/// The caller of a waiting call has gone (its client hung up, reset its stream, or passed its
/// deadline) or the server is stopping: the call should give up and clean up after itself.
/// A channel, so that a waiter can `select!` on it beside what it waits for.
pub struct Cancel {
    rx: Receiver<()>,
}

/// The caller's side of a [`Cancel`]: dropping it cancels (the caller went away);
/// [`CancelTx::stop`] cancels because the server stops.
pub struct CancelTx {
    tx: Sender<()>,
}

impl Cancel {
    pub fn new() -> (CancelTx, Cancel) {
        let (tx, rx) = channel::bounded(1);
        (CancelTx { tx }, Cancel { rx })
    }

    /// A cancel that never fires, for a caller that waits as long as it takes.
    pub fn never() -> Cancel {
        Cancel { rx: channel::never() }
    }

    /// Ready once the call is canceled (for `select!`); then give [`Cancel::error`] what it
    /// received.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// Why the call was canceled, from what [`Cancel::receiver`] gave: the server stopping
    /// (a message) or the caller leaving (the sender dropped).
    pub fn error(&self, received: std::result::Result<(), channel::RecvError>) -> Error {
        match received {
            Ok(()) => Error::Stopped,
            Err(_) => Error::Canceled,
        }
    }

    /// The cancellation, if it has happened.
    pub fn check(&self) -> Outcome<()> {
        match self.rx.try_recv() {
            Ok(()) => Err(Error::Stopped),
            Err(channel::TryRecvError::Disconnected) => Err(Error::Canceled),
            Err(channel::TryRecvError::Empty) => Ok(()),
        }
    }
}

impl CancelTx {
    /// Cancels because the server stops: the call answers `etcdserver: server stopped`.
    pub fn stop(self) {
        let _ = self.tx.try_send(());
    }
}

pub struct Wait<T> {
    /// Replies by request id; `None` once closed, so late registrations fail fast.
    replies: Mutex<Option<HashMap<u64, Reply<T>>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait { replies: Mutex::new(Some(HashMap::new())) }
    }
}

impl<T: 'static> Wait<T> {
    /// Registers `id`: `reply` gets exactly one outcome.
    pub fn register(&self, id: u64, reply: Reply<T>) {
        let refused = match &mut *self.replies.lock() {
            Some(replies) => replies.insert(id, reply),
            None => Some(reply),
        };
        // Answered (`server stopped`) outside the lock: callbacks may come back here.
        drop(refused);
    }

    /// Delivers each outcome to the reply of its id, if this member has one.
    pub fn trigger(&self, outcomes: impl IntoIterator<Item = (u64, Outcome<T>)>) {
        let mut due = Vec::new();
        if let Some(replies) = self.replies.lock().as_mut() {
            // The caller may have given up and gone; then nobody reads it.
            due.extend(outcomes.into_iter().filter_map(|(id, outcome)| Some((replies.remove(&id)?, outcome))));
        }
        for (reply, outcome) in due {
            reply.send(outcome);
        }
    }

    /// Forgets `id` (its caller gave up waiting); returns whether it was still waiting.
    pub fn cancel(&self, id: u64) -> bool {
        let reply = self.take(id);
        let waiting = reply.is_some();
        if let Some(reply) = reply {
            reply.forget();
        }
        waiting
    }

    /// Registrations still waiting for their outcome.
    pub fn len(&self) -> usize {
        self.replies.lock().as_ref().map_or(0, HashMap::len)
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes back the reply of `id`, to answer it some other way.
    pub fn take(&self, id: u64) -> Option<Reply<T>> {
        self.replies.lock().as_mut().and_then(|replies| replies.remove(&id))
    }

    /// Whether the member stopped (see [`Wait::close`]).
    pub fn is_closed(&self) -> bool {
        self.replies.lock().is_none()
    }

    /// Answers every current and future registration `etcdserver: server stopped`.
    pub fn close(&self) {
        let replies = self.replies.lock().take();
        drop(replies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn registered(wait: &Wait<u32>, id: u64) -> Arc<Waiter<u32>> {
        let (reply, waiter) = oneshot();
        wait.register(id, reply);
        waiter
    }

    #[test]
    fn trigger_reaches_only_the_registered_waiter() {
        let wait = Wait::<u32>::default();
        let waiter = registered(&wait, 7);
        wait.trigger([(8, Ok(1)), (7, Ok(2))]);
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 2);
    }

    #[test]
    fn a_waiter_times_out_and_wakes_from_another_thread() {
        let wait = Arc::new(Wait::<u32>::default());
        let waiter = registered(&wait, 1);
        assert!(waiter.wait_until(Instant::now() + Duration::from_millis(20)).is_none());
        let w = wait.clone();
        let t = std::thread::Builder::new()
            .name("raftkv-test-trigger".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                w.trigger([(1, Ok(9))]);
            })
            .unwrap();
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 9);
        t.join().unwrap();
    }

    #[test]
    fn a_cancel_says_whether_its_caller_left_or_the_server_stops() {
        let (tx, cancel) = Cancel::new();
        assert!(cancel.check().is_ok());
        drop(tx);
        assert!(matches!(cancel.check(), Err(Error::Canceled)));
        assert!(matches!(cancel.error(cancel.receiver().recv()), Error::Canceled));
        let (tx, cancel) = Cancel::new();
        tx.stop();
        assert!(matches!(cancel.error(cancel.receiver().recv()), Error::Stopped));
        assert!(Cancel::never().check().is_ok());
    }

    #[test]
    fn a_dropped_reply_answers_stopped_and_a_canceled_one_nothing() {
        let (reply, waiter) = oneshot::<u32>();
        drop(reply);
        assert!(matches!(waiter.wait_until(soon()).unwrap(), Err(Error::Stopped)));
        let (reply, waiter) = oneshot::<u32>();
        reply.map(|s: &str| Ok(s.len() as u32)).send(Ok("abc"));
        assert_eq!(waiter.wait_until(soon()).unwrap().unwrap(), 3);
        let wait = Wait::<u32>::default();
        let waiter = registered(&wait, 5);
        wait.cancel(5);
        wait.trigger([(5, Ok(1))]);
        assert!(waiter.wait_until(Instant::now() + Duration::from_millis(20)).is_none());
    }

    #[test]
    fn close_fails_pending_and_later_waiters() {
        let wait = Wait::<u32>::default();
        let pending = registered(&wait, 1);
        wait.close();
        assert!(matches!(pending.wait_until(soon()).unwrap(), Err(Error::Stopped)));
        assert!(matches!(registered(&wait, 2).wait_until(soon()).unwrap(), Err(Error::Stopped)));
    }
}
