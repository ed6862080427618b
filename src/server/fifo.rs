//! The FIFO scheduler: one named thread (`raftkv-apply`) that runs jobs strictly in submit order.
//!
//! This is etcd's `schedule.FIFOScheduler`. The run loop submits one job per batch of committed
//! entries, so applying keeps raft-log order while the run loop itself never blocks on disk.
//! The job queue is unbounded on purpose: it is bounded upstream by admission control (new
//! proposals are refused with `etcdserver: too many requests` once committed − applied exceeds
//! [`crate::server::MAX_APPLY_LAG`]), as in etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};

use crate::{Error, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Fifo {
    job_tx: Option<Sender<Job>>,
    /// Set by `stop`: jobs still queued are dropped rather than run, as etcd's scheduler does;
    /// their entries are in the durable raft log and are applied again after a restart.
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fifo {
    pub fn start(name: &str) -> Result<Fifo> {
        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for job in job_rx {
                    if stop_flag.load(Ordering::Acquire) {
                        break;
                    }
                    job();
                }
            })
            .map_err(|source| Error::Spawn { name: name.to_string(), source })?;
        Ok(Fifo { job_tx: Some(job_tx), stopping, thread: Some(thread) })
    }

    /// Queues `job` after every job submitted before it. After `stop`, jobs are dropped.
    pub fn schedule(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &self.job_tx {
            // The receiver lives until `stop` joins the thread, so this cannot fail earlier.
            let _ = tx.send(Box::new(job));
        }
    }

    /// Lets the running job finish, drops the queued ones and joins the thread. Idempotent.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.job_tx = None;
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
    use parking_lot::Mutex;

    #[test]
    fn jobs_run_in_submit_order_on_the_named_thread() {
        let mut fifo = Fifo::start("raftkv-test-fifo").unwrap();
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
}
