//! Streaming calls' answers: the [`Part`]s a handler sends from any thread, the per-stream
//! [`Outbox`] that bounds what waits for the client's credit, and the queue a connection
//! drains as its windows allow.
//!
//! A part is counted into its stream's outbox when posted and out of it when the connection
//! has framed it, so a client that stops reading (never returns credit) makes producers see
//! [`SendError::Full`], not a queue that grows without bound: a watch then catches up from
//! disk later, a snapshot's pool thread waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::frame::Reason;

/// Bytes of one stream's messages posted and not yet framed, at most (one message may pass it
/// when the queue is empty, so any message fits).
pub const STREAM_QUEUE_MAX: usize = 4 << 20;

pub type Fields = Vec<(&'static str, String)>;

/// One piece of a streaming call's answer, in the order sent.
pub enum Part {
    /// The response headers: written with the first message, or together with the trailers
    /// when no message comes (a trailers-only answer).
    Headers(Fields),
    /// Bytes of the body (a whole gRPC message), written as DATA as the windows allow.
    Message(Vec<u8>),
    /// Ends the stream once every message before them is written.
    Trailers(Fields),
    /// Resets the stream now, dropping what is queued.
    Reset(Reason),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The stream's queue is full: the client is not reading.
    Full,
    /// The stream is gone (reset, finished, or its connection closed).
    Closed,
}

/// What a stream's producers and its connection share.
#[derive(Default)]
pub struct Outbox {
    queued: AtomicUsize,
    closed: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Outbox {
    /// Counts `len` bytes in before they are posted.
    pub fn reserve(&self, len: usize) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > STREAM_QUEUE_MAX {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Full);
        }
        Ok(())
    }

    /// Waits up to `timeout` for room (or the stream's end); for producers that may block.
    pub fn wait(&self, timeout: Duration) {
        let mut guard = self.lock.lock();
        if !self.is_closed() && self.queued.load(Ordering::Acquire) > 0 {
            self.room.wait_for(&mut guard, timeout);
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn framed(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
        let _guard = self.lock.lock();
        self.room.notify_all();
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.lock.lock();
        self.room.notify_all();
    }
}

/// A streaming call's answer inside its connection: what is still to be written.
#[derive(Default)]
pub(super) struct Outgoing {
    pub outbox: std::sync::Arc<Outbox>,
    pub head: Fields,
    pub head_sent: bool,
    pub queue: VecDeque<Vec<u8>>,
    /// Bytes of the queue's front already framed.
    pub sent: usize,
    pub trailers: Option<Fields>,
}

impl Outgoing {
    /// Whether anything waits for credit (or for its turn after the headers).
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty() || self.trailers.is_some()
    }

    /// The front message was framed whole.
    pub fn pop_front(&mut self) {
        if let Some(message) = self.queue.pop_front() {
            self.sent = 0;
            self.outbox.framed(message.len());
        }
    }
}
