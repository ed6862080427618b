//! The blocking pool: workers spawned on demand for the handlers that block.

use super::*;

type Job = Box<dyn FnOnce() + Send>;

/// The blocking pool: workers spawned on demand, kept once spawned.
pub(super) struct Pool {
    jobs_tx: Sender<Job>,
    jobs_rx: Receiver<Job>,
    /// Disconnected when the server stops.
    stop_rx: Receiver<()>,
    /// Workers free and not yet claimed by a queued job.
    idle: Arc<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(super) fn new(stop_rx: Receiver<()>) -> Pool {
        let (jobs_tx, jobs_rx) = channel::bounded(POOL_QUEUE_MAX);
        Pool { jobs_tx, jobs_rx, stop_rx, idle: Arc::new(AtomicUsize::new(0)), workers: Mutex::new(Vec::new()) }
    }

    /// Queues `job` for a worker: claims an idle one or spawns one (claiming when queueing, not
    /// when a worker wakes, so a job never waits behind busy workers while the pool may grow).
    /// At [`POOL_MAX`] jobs wait for a free worker; a full queue gives the job back.
    pub(super) fn run(&self, job: Job) -> std::result::Result<(), Job> {
        let claimed = self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
        if !claimed {
            self.spawn_worker();
        }
        self.jobs_tx.try_send(job).map_err(|e| e.into_inner())
    }

    fn spawn_worker(&self) {
        let mut workers = self.workers.lock();
        if workers.len() >= POOL_MAX {
            return;
        }
        let n = workers.len();
        let (jobs, stop_rx, idle) = (self.jobs_rx.clone(), self.stop_rx.clone(), self.idle.clone());
        // The new worker is born claimed: it takes the job being queued now.
        let spawned = crate::thread::spawn_named(format!("raftkv-http-{n}"), move || loop {
            select! {
                recv(jobs) -> job => match job {
                    Ok(job) => {
                        job();
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(_) => return,
                },
                recv(stop_rx) -> _ => return,
            }
        });
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("http: cannot spawn a pool thread: {e}"),
        }
    }

    pub(super) fn join(&self) {
        let workers = std::mem::take(&mut *self.workers.lock());
        for worker in workers {
            let _ = worker.join();
        }
        // Jobs still queued answer nothing: their `Done`s close their connections.
        while self.jobs_rx.try_recv().is_ok() {}
    }
}
