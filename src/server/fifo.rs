//! The FIFO scheduler: one named thread (`raftkv-apply`) that runs jobs strictly in submit order.
//!
//! This is etcd's `schedule.FIFOScheduler`. The run loop submits one job per batch of committed
//! entries, so applying keeps raft-log order while the run loop itself never blocks on disk.
//! The job queue is unbounded on purpose: it is bounded upstream by admission control (new
//! proposals are refused with `etcdserver: too many requests` once committed − applied exceeds
//! [`crate::server::propose::MAX_APPLY_LAG`]), as in etcd.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::Sender;
use parking_lot::{Condvar, Mutex};

use crate::{Error, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The queue is a mutex-and-condvar pair rather than a crossbeam channel: the apply thread
/// waits here between batches, and a channel's receive first spins and `sched_yield`s, which was
/// 7% of the server's CPU with one client putting (a batch every half millisecond).
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Set by `stop`: jobs still queued are dropped rather than run, as etcd's scheduler does;
    /// their entries are in the durable raft log and are applied again after a restart.
    stopping: bool,
}

pub struct Fifo {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl Fifo {
    /// Starts the thread; a job's panic goes to `fatal_tx` (see [`crate::thread::spawn_vital`]).
    pub fn start(name: &str, fatal_tx: Sender<Error>) -> Result<Fifo> {
        let queue = Arc::new(Queue::default());
        let jobs = queue.clone();
        let thread = crate::thread::spawn_vital(name, fatal_tx, move || loop {
            let job = {
                let mut state = jobs.state.lock();
                loop {
                    if state.stopping {
                        return;
                    }
                    if let Some(job) = state.jobs.pop_front() {
                        break job;
                    }
                    jobs.ready.wait(&mut state);
                }
            };
            job();
        })?;
        Ok(Fifo { queue, thread: Some(thread) })
    }

    /// Queues `job` after every job submitted before it. After `stop`, jobs are dropped.
    pub fn schedule(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.queue.state.lock();
        if !state.stopping {
            state.jobs.push_back(Box::new(job));
            self.queue.ready.notify_one();
        }
    }

    /// Lets the running job finish, drops the queued ones and joins the thread. Idempotent.
    pub fn stop(&mut self) {
        let dropped = {
            let mut state = self.queue.state.lock();
            state.stopping = true;
            std::mem::take(&mut state.jobs)
        };
        self.queue.ready.notify_one();
        drop(dropped);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("apply thread panicked");
            }
        }
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel;

    #[test]
    fn jobs_run_in_submit_order_on_the_named_thread() {
        let mut fifo = Fifo::start("raftkv-test-fifo", channel::bounded(1).0).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..1000 {
            let seen = seen.clone();
            fifo.schedule(move || {
                assert_eq!(std::thread::current().name(), Some("raftkv-test-fifo"));
                seen.lock().push(i)
            });
        }
        let (done_tx, done_rx) = channel::bounded(1);
        fifo.schedule(move || done_tx.send(()).unwrap());
        done_rx.recv().unwrap();
        fifo.stop();
        fifo.stop();
        assert_eq!(*seen.lock(), (0..1000).collect::<Vec<_>>());
    }

    /// A job that panics ends the thread, and the member hears why (it then stops).
    #[test]
    fn a_panicking_job_is_reported_as_fatal() {
        let (fatal_tx, fatal_rx) = channel::bounded(1);
        let mut fifo = Fifo::start("raftkv-test-fifo", fatal_tx).unwrap();
        fifo.schedule(|| panic!("boom"));
        let reported = fatal_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("a fatal error");
        assert_eq!(reported.to_string(), "thread raftkv-test-fifo panicked: boom");
        assert!(reported.is_fatal());
        fifo.stop();
    }
}
