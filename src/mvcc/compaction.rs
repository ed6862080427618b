//! Removal of compacted revisions from disk, off the apply thread (etcd's
//! `scheduleCompaction`).
//!
//! Applying a compaction only records it ([`super::ApplyBatch::compact`]): the key index is
//! pruned, the compact revision is published to readers and written as the scheduled compact
//! revision in the apply batch, with the applied index. The dead rows — revisions at or below
//! it that the index no longer keeps — stay in the `kv` family until the `raftkv-kv-compact`
//! thread ([`Store::run_removal`]) deletes them in batches of at most
//! [`RemovalPace::batch_rows_max`] rows looked at, pausing [`RemovalPace::pause`] between
//! batches so that apply's writes never queue behind one long delete. The last batch also
//! writes the finished compact revision; a restart that finds the scheduled one above it
//! removes again from the start (deleting a row twice is harmless).
//!
//! No reader ever needs a dead row: ranges read the revisions the index keeps, history starts
//! at the compact revision and skips the dead tombstones there, HashKV counts only kept rows at
//! or below it. A write racing a batch is never touched: the batch deletes only revisions at
//! or below the compact revision that the keep set does not hold, and every new write is above.
//!
//! Threads and channels: the apply thread schedules (the newest compaction goes into a slot,
//! replacing an unfinished one — whose dead rows are dead for the newer one too — so nothing
//! queues) and wakes the thread (bounded 1: one pending wake-up is enough). The thread reads
//! the slot at every batch, writes WriteBatches to `kv`/`meta`, publishes the finished
//! revision (physical compactions wait on it, [`Store::wait_removed`]) and the pause and total
//! durations. A snapshot install on the apply thread fences it ([`Store::pause_removal`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{Revision, Store};
use crate::logging::GoDuration;
use crate::metrics::{self, Histogram, IntCounter};
use crate::storage::{meta, Cf};
use crate::{Error, Result};

/// How fast dead rows go ([`crate::config::Config`]'s `compaction_batch_limit` and
/// `compaction_sleep_interval`: etcd's 1000 rows and 10 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovalPace {
    /// Rows looked at (kept or deleted) per batch: bounds one batch's WriteBatch and time.
    pub batch_rows_max: usize,
    /// Time between two batches, when the apply thread has RocksDB to itself.
    pub pause: Duration,
}

/// A compaction whose dead rows may still be on disk.
struct Job {
    rev: i64,
    /// Revisions at or below `rev` that stay: the index's available set from the compaction.
    keep: HashSet<Revision>,
}

#[derive(Default)]
struct Slot {
    /// The newest compaction not yet removed, if any.
    job: Option<Arc<Job>>,
    /// Bumped whenever `job` is replaced or dropped, so the thread knows to start over.
    epoch: u64,
}

#[derive(Default)]
struct Finished {
    /// The finished compact revision (`NEVER_COMPACTED` before the first).
    rev: i64,
    /// The removal thread is gone (member stopping): nobody will finish anything.
    closed: bool,
}

/// The removal's shared state, owned by the [`Store`].
pub(super) struct Removal {
    /// The compaction to remove: set by the apply thread, read by the removal thread.
    slot: Mutex<Slot>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// Held by the removal thread through each batch, and by a snapshot install, which
    /// replaces the rows a batch works on.
    batch: Mutex<()>,
    /// For [`Store::wait_removed`]; written by the removal thread (and by open/reload).
    finished: Mutex<Finished>,
    finished_cv: Condvar,
    /// One batch (scan, delete, write), for every batch but a compaction's last, in whole
    /// milliseconds as etcd observes it.
    pub(super) pause_ms: Histogram,
    /// A compaction's removal from its first batch to its last, pauses included.
    pub(super) total_ms: Histogram,
    /// Rows deleted.
    pub(super) removed_total: IntCounter,
}

impl Removal {
    pub(super) fn new(finished: i64) -> Removal {
        let (wake_tx, wake_rx) = channel::bounded(1);
        Removal {
            slot: Mutex::new(Slot::default()),
            wake_tx,
            wake_rx,
            batch: Mutex::new(()),
            finished: Mutex::new(Finished { rev: finished, closed: false }),
            finished_cv: Condvar::new(),
            // etcd's mvcc/metrics.go names and layouts: 1 ms .. 4096 ms and 100 ms .. 819.2 s.
            pause_ms: metrics::histogram(
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration.",
                metrics::exponential(1.0, 2.0, 13),
            ),
            total_ms: metrics::histogram(
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration.",
                metrics::exponential(100.0, 2.0, 14),
            ),
            removed_total: metrics::counter(
                "etcd_debugging_mvcc_db_compaction_keys_total",
                "Total number of db keys compacted.",
            ),
        }
    }

    /// Makes `rev` with its keep set the removal to do, replacing any unfinished one.
    pub(super) fn schedule(&self, rev: i64, keep: HashSet<Revision>) {
        {
            let mut slot = self.slot.lock();
            slot.epoch += 1;
            slot.job = Some(Arc::new(Job { rev, keep }));
        }
        // Full means a wake-up is already pending.
        let _ = self.wake_tx.try_send(());
    }

    /// The store was reloaded from a snapshot: its finished revision is the snapshot's.
    pub(super) fn set_finished(&self, rev: i64) {
        self.finished.lock().rev = rev;
    }

    fn finish(&self, rev: i64) {
        let mut finished = self.finished.lock();
        finished.rev = finished.rev.max(rev);
        self.finished_cv.notify_all();
    }

    fn close(&self) {
        self.finished.lock().closed = true;
        self.finished_cv.notify_all();
    }
}

/// Where the removal thread is in the scheduled removal.
#[derive(Default)]
pub struct RemovalCursor {
    /// The slot's epoch this cursor belongs to.
    epoch: u64,
    job: Option<Arc<Job>>,
    /// The first `kv` key not looked at yet.
    next: Vec<u8>,
    started: Option<Instant>,
}

/// While held, no removal batch runs (see [`Store::pause_removal`]).
pub struct RemovalPaused<'a> {
    _batch: MutexGuard<'a, ()>,
}

impl Store {
    /// One batch of the scheduled removal: looks at up to `rows_max` rows from the cursor on,
    /// deletes the dead ones, and with the last batch records the finished compact revision,
    /// all in one (unsynced) WriteBatch. Returns whether more remains. A newer compaction
    /// scheduled meanwhile restarts the cursor from the first row.
    ///
    /// Unsynced is enough: the WAL is one, so these deletes are durable only after the apply
    /// batch that scheduled them, and a crash that loses them leaves the scheduled revision
    /// above the finished one, so the next start removes again.
    pub fn remove_batch(&self, cursor: &mut RemovalCursor, rows_max: usize) -> Result<bool> {
        let removal = &self.removal;
        let _batch = removal.batch.lock();
        {
            let slot = removal.slot.lock();
            if slot.epoch != cursor.epoch {
                *cursor = RemovalCursor { epoch: slot.epoch, job: slot.job.clone(), ..Default::default() };
            }
        }
        let Some(job) = cursor.job.clone() else { return Ok(false) };
        let began = Instant::now();
        let started = *cursor.started.get_or_insert(began);
        crate::failpoint::check("compaction_before_batch")?;
        let db = &self.db;
        let cf = db.cf(Cf::Kv);
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(job.rev + 1, 0).to_key(false));
        // A one-time pass over old history: keep it out of the block cache, which serves reads.
        opts.fill_cache(false);
        let mut batch = WriteBatch::default();
        let (mut looked_at, mut removed) = (0, 0u64);
        let mut resume_at = None;
        for item in db.raw().iterator_cf_opt(cf, opts, IteratorMode::From(&cursor.next, Direction::Forward)) {
            let (key, _) = item.map_err(|e| Error::Storage(e.into()))?;
            // A key that is no revision is not ours to delete (the old scan left it too).
            if Revision::from_key(&key).is_some_and(|(rev, _)| !job.keep.contains(&rev)) {
                batch.delete_cf(cf, &key);
                removed += 1;
            }
            looked_at += 1;
            if looked_at == rows_max.max(1) {
                resume_at = Some(key);
                break;
            }
        }
        let done = resume_at.is_none();
        if done {
            db.put_meta_u64(&mut batch, meta::COMPACT_REVISION, job.rev as u64);
        }
        db.write(batch, false)?;
        crate::failpoint::check("compaction_after_batch")?;
        removal.removed_total.inc_by(removed);
        match resume_at {
            Some(key) => {
                // The smallest key after `key`.
                cursor.next = [&key[..], &[0]].concat();
                removal.pause_ms.observe(whole_ms(began.elapsed()));
                Ok(true)
            }
            None => {
                cursor.job = None;
                let took = started.elapsed();
                removal.total_ms.observe(whole_ms(took));
                removal.finish(job.rev);
                log::info!(
                    "compact-revision" = job.rev, took:% = GoDuration(took);
                    "finished scheduled compaction"
                );
                Ok(false)
            }
        }
    }

    /// The `raftkv-kv-compact` thread body: removes scheduled compactions batch by batch,
    /// `pace.pause` apart, and waits for the next one when none is left, until `stop_rx`
    /// fires. A failed write goes to `fatal` (fatal for the member, as a failed apply is) and
    /// ends the loop. Either way physical compactions still waiting are then released with
    /// [`Error::Stopped`]: after `fatal`, so a caller who sees `Stopped` finds the member's error
    /// already reported.
    pub fn run_removal(&self, pace: RemovalPace, stop_rx: &Receiver<()>, fatal: impl FnOnce(Error)) {
        enum Event {
            Stop,
            Next,
        }
        let mut cursor = RemovalCursor::default();
        loop {
            let more = match self.remove_batch(&mut cursor, pace.batch_rows_max) {
                Ok(more) => more,
                Err(e) => {
                    fatal(e);
                    break;
                }
            };
            let wake_rx = &self.removal.wake_rx;
            let event = if more {
                select! {
                    recv(stop_rx) -> _ => Event::Stop,
                    recv(wake_rx) -> _ => Event::Next,
                    default(pace.pause) => Event::Next,
                }
            } else {
                select! {
                    recv(stop_rx) -> _ => Event::Stop,
                    recv(wake_rx) -> _ => Event::Next,
                }
            };
            if let Event::Stop = event {
                break;
            }
        }
        self.removal.close();
    }

    /// Blocks until every dead row of a compaction at `rev` is removed (etcd's physical
    /// compaction). [`Error::Stopped`] if the member stops first.
    pub fn wait_removed(&self, rev: i64) -> Result<()> {
        let removal = &self.removal;
        let mut finished = removal.finished.lock();
        while finished.rev < rev {
            if finished.closed {
                return Err(Error::Stopped);
            }
            removal.finished_cv.wait(&mut finished);
        }
        Ok(())
    }

    /// Stops removal for a snapshot install, which replaces the rows it works on: no batch runs
    /// while the guard lives, and the removal in progress is dropped ([`Store::reload`]
    /// schedules the snapshot's own, if it has one unfinished).
    pub fn pause_removal(&self) -> RemovalPaused<'_> {
        let batch = self.removal.batch.lock();
        let mut slot = self.removal.slot.lock();
        slot.epoch += 1;
        slot.job = None;
        RemovalPaused { _batch: batch }
    }

    /// The finished compact revision: every dead row at or below it is off the disk.
    pub fn removed_revision(&self) -> i64 {
        self.removal.finished.lock().rev
    }
}

/// Whole milliseconds, as etcd observes `time.Since(start) / time.Millisecond`.
fn whole_ms(took: Duration) -> f64 {
    took.as_millis() as f64
}
