//! Range reads that may be large, kept off the event loops and bounded. A key-value call's
//! last step (the local read and its encoding) runs on the loop that holds its connection:
//! right for a point read or a page, but one unpaginated range of 100,000 keys held its loop,
//! and with it every other connection of that loop, for as long as it took; 1,000 clients
//! doing such ranges left the other clients' reads and writes waiting for seconds
//! (docs/reliability.md, "Resource bounds").
//!
//! So a range that may be large ([`may_be_large`]) is read and encoded on the blocking pool
//! instead, at most [`LARGE_READS_MAX`] at once: they never take more cores than that from
//! the loops, nor hold more answers being built. Up to [`LARGE_READ_QUEUE_MAX`] more wait
//! their turn in arrival order, each holding only its request; beyond that a range is refused
//! with `etcdserver: too many requests` (ResourceExhausted), etcd's answer when a member cannot
//! take more work, and so is one that, at the pace turns have lately gone, would not get its
//! turn within its request timeout: waiting would only end in `request timed out` after
//! holding a place that a read with time left could have used (1,000 clients ranging over
//! 100,000 keys got almost nothing but timeouts while the queue was first come, first served).
//! A waiting read whose request times out all the same is dropped from the queue unread: its
//! client was answered `request timed out` by its loop (a serializable one gets that now).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Responder, Response};
use crate::pb::RangeRequest;
use crate::{Error, Result};

/// Large reads running at once: each takes a core while it reads and encodes, and the loops
/// need the rest to go on serving everyone else.
pub const LARGE_READS_MAX: usize = 2;
/// Large reads waiting for a turn; more are refused with `too many requests`. As many as the
/// blocking pool's queue: each holds a request and its connection's answer slot only.
pub const LARGE_READ_QUEUE_MAX: usize = 1024;
/// A range limited to at most this many keys stays on the loop: a page, as clients that
/// paginate ask for (Kubernetes asks for 500).
pub const LARGE_READ_LIMIT: i64 = 1000;

/// Whether `req` may answer with many keys: a range (not one key) without a limit or with one
/// above [`LARGE_READ_LIMIT`], and not only a count.
pub fn may_be_large(req: &RangeRequest) -> bool {
    !req.range_end.is_empty() && !req.count_only && (req.limit <= 0 || req.limit > LARGE_READ_LIMIT)
}

/// A waiting large read: given a turn, starts it on its responder's pool; given none (its
/// request timed out while it waited), answers `request timed out` without reading.
type Start = Box<dyn FnOnce(Option<Turn>) + Send>;

/// The large reads of one [`super::Service`].
#[derive(Default)]
pub struct LargeReads {
    /// How many reads hold a turn, those waiting for one, and how long a turn lasts.
    turns: Mutex<Turns>,
}

#[derive(Default)]
struct Turns {
    running: usize,
    /// In arrival order, so in deadline order (every read has the same timeout).
    waiting: VecDeque<(Instant, Start)>,
    /// How long a turn has lasted lately (a moving average; zero before the first).
    turn_time: Duration,
}

impl Turns {
    /// Whether a read with `deadline` gets a turn or a place in the queue now, rather than a
    /// refusal: a turn is free, or the queue has room and the read's turn would come in time.
    fn admits(&self, deadline: Instant) -> bool {
        self.running < LARGE_READS_MAX || (self.waiting.len() < LARGE_READ_QUEUE_MAX && self.in_time(deadline))
    }

    /// Whether a read arriving now would get its turn before `deadline`, judged from how long
    /// turns last: one that would not is refused now rather than left to time out, taking the
    /// turn of one that could have been served.
    fn in_time(&self, deadline: Instant) -> bool {
        let ahead = (self.waiting.len() + 1) as u32;
        Instant::now() + self.turn_time * ahead / (LARGE_READS_MAX as u32) < deadline
    }

    /// Takes the waiting reads whose requests have timed out (all at the front).
    fn take_expired(&mut self, now: Instant) -> Vec<Start> {
        let mut expired = Vec::new();
        while self.waiting.front().is_some_and(|(deadline, _)| *deadline <= now) {
            expired.extend(self.waiting.pop_front().map(|(_, start)| start));
        }
        expired
    }
}

impl LargeReads {
    /// Answers `responder` with `read`'s outcome, run on the pool when a turn is free; refuses
    /// with `too many requests` when the queue is full or the read could not get its turn
    /// within its request timeout.
    pub fn run(
        self: &Arc<Self>,
        responder: Box<dyn Responder>,
        deadline: Instant,
        read: impl FnOnce() -> Result<Response> + Send + 'static,
    ) {
        let mut turns = self.turns.lock();
        let expired = turns.take_expired(Instant::now());
        if !turns.admits(deadline) {
            drop(turns);
            expire(expired);
            log::debug!("api: large reads are queued past their timeout; refusing one");
            return responder.later(Box::new(|| Err(Error::TooManyRequests)));
        }
        let start: Start = Box::new(move |turn| match turn {
            Some(turn) => responder.blocking(Box::new(move || {
                // Passed on to the next read once this one is read (or dropped unrun).
                let _turn = turn;
                if Instant::now() >= deadline {
                    return Err(Error::Timeout);
                }
                read()
            })),
            None => responder.later(Box::new(|| Err(Error::Timeout))),
        });
        if turns.running >= LARGE_READS_MAX {
            turns.waiting.push_back((deadline, start));
            drop(turns);
        } else {
            turns.running += 1;
            drop(turns);
            start(Some(Turn::new(self.clone())));
        }
        expire(expired);
    }

    /// Whether a read with `deadline` would be queued now rather than refused: asked before its
    /// read barrier, so that a refusal costs no raft round.
    pub fn admits(&self, deadline: Instant) -> bool {
        self.turns.lock().admits(deadline)
    }

    /// Reads holding a turn and reads waiting (for tests and metrics).
    pub fn load(&self) -> (usize, usize) {
        let turns = self.turns.lock();
        (turns.running, turns.waiting.len())
    }
}

fn expire(expired: Vec<Start>) {
    for start in expired {
        start(None);
    }
}

/// One large read's turn; dropping it hands the turn to the next waiting read, or frees it.
pub struct Turn {
    reads: Arc<LargeReads>,
    started: Instant,
}

impl Turn {
    fn new(reads: Arc<LargeReads>) -> Turn {
        Turn { reads, started: Instant::now() }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let now = Instant::now();
        let (next, expired) = {
            let mut turns = self.reads.turns.lock();
            let took = now - self.started;
            turns.turn_time = if turns.turn_time.is_zero() { took } else { (turns.turn_time * 7 + took) / 8 };
            let expired = turns.take_expired(now);
            let next = turns.waiting.pop_front().map(|(_, start)| start);
            if next.is_none() {
                turns.running -= 1;
            }
            (next, expired)
        };
        expire(expired);
        if let Some(next) = next {
            next(Some(Turn::new(self.reads.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Answer, Waiting};
    use crossbeam::channel::{self, Receiver, Sender};

    /// A responder whose blocking work waits for `go` and whose answers land in `answers`.
    struct Held {
        go: Receiver<()>,
        answers: Sender<Result<Response>>,
    }

    impl Responder for Held {
        fn later(self: Box<Self>, answer: Answer) {
            self.answers.send(answer()).unwrap();
        }

        fn blocking(self: Box<Self>, work: Answer) {
            crate::thread::spawn_named("raftkv-test-read", move || {
                let _ = self.go.recv();
                self.answers.send(work()).unwrap();
            })
            .unwrap();
        }

        fn waiting(self: Box<Self>, _work: Waiting) {
            unreachable!()
        }
    }

    fn empty() -> Result<Response> {
        Ok(Response::Range(Default::default()))
    }

    #[test]
    fn large_means_a_range_without_a_small_limit() {
        let range = RangeRequest::prefix("a");
        assert!(may_be_large(&range));
        assert!(may_be_large(&RangeRequest { limit: 5000, ..range.clone() }));
        assert!(!may_be_large(&RangeRequest { limit: 500, ..range.clone() }));
        assert!(!may_be_large(&RangeRequest { count_only: true, ..range }));
        assert!(!may_be_large(&RangeRequest::key("a")));
    }

    #[test]
    fn reads_past_the_turns_wait_and_past_the_queue_are_refused() {
        let reads = Arc::new(LargeReads::default());
        let (go_tx, go) = channel::unbounded();
        let (answers_tx, answers) = channel::unbounded();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        for _ in 0..LARGE_READS_MAX + LARGE_READ_QUEUE_MAX {
            let held = Box::new(Held { go: go.clone(), answers: answers_tx.clone() });
            reads.run(held, deadline, empty);
        }
        assert_eq!(reads.load(), (LARGE_READS_MAX, LARGE_READ_QUEUE_MAX));
        reads.run(Box::new(Held { go: go.clone(), answers: answers_tx.clone() }), deadline, empty);
        let refused = answers.recv().unwrap().unwrap_err();
        assert_eq!(refused.to_string(), "etcdserver: too many requests");
        // Released, every admitted read is answered, and the turns are all given back.
        for _ in 0..LARGE_READS_MAX + LARGE_READ_QUEUE_MAX {
            go_tx.send(()).unwrap();
        }
        for _ in 0..LARGE_READS_MAX + LARGE_READ_QUEUE_MAX {
            assert!(answers.recv().unwrap().is_ok());
        }
        // Each read gave its turn back before its answer was sent.
        assert_eq!(reads.load(), (0, 0));
    }

    #[test]
    fn a_read_whose_request_timed_out_while_waiting_is_not_run() {
        let reads = Arc::new(LargeReads::default());
        let (go_tx, go) = channel::unbounded();
        let (answers_tx, answers) = channel::unbounded();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        for _ in 0..LARGE_READS_MAX {
            reads.run(Box::new(Held { go: go.clone(), answers: answers_tx.clone() }), later, empty);
        }
        let soon = Instant::now() + std::time::Duration::from_millis(50);
        let unread = || -> Result<Response> { panic!("a timed-out read ran") };
        reads.run(Box::new(Held { go: go.clone(), answers: answers_tx.clone() }), soon, unread);
        assert_eq!(reads.load(), (LARGE_READS_MAX, 1));
        std::thread::sleep(std::time::Duration::from_millis(100));
        for _ in 0..LARGE_READS_MAX {
            go_tx.send(()).unwrap();
        }
        let mut outcomes: Vec<String> = (0..LARGE_READS_MAX + 1)
            .map(|_| answers.recv().unwrap().map_or_else(|e| e.to_string(), |_| "ok".into()))
            .collect();
        outcomes.sort();
        assert_eq!(outcomes.last().unwrap(), "ok");
        assert!(outcomes.contains(&"etcdserver: request timed out".to_string()), "{outcomes:?}");
        assert_eq!(reads.load(), (0, 0));
    }
}
