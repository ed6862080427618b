//! Watches (etcd's `watchableStore`): who watches which keys, and delivery of every change to
//! them, in revision order, without gaps or duplicates.
//!
//! A watcher is **synced** when the next revision it needs is the next one to be applied: the
//! apply thread hands each committed batch's changes to [`WatchHub::notify`], which sends the
//! matching events to synced watchers with a non-blocking `try_send` (one response per batch,
//! so one revision's events always travel together). A watcher whose sink is full, or that
//! starts in the past, is **unsynced**: the `raftkv-watch-sync` thread ([`WatchHub::run_sync`])
//! reads its missing history from RocksDB in bounded chunks and moves it back to synced once
//! it has caught up. So a slow watcher never blocks apply, and its backlog lives on disk, not in
//! memory. A watcher whose next revision was compacted away is canceled with the compact
//! revision, as etcd does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, select, Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::mvcc::{RangeOptions, ReadView, Store};
use crate::pb::{Event, EventType, FilterType, KeyValue, ResponseHeader, WatchResponse};
use crate::{Error, Result};

/// Changes read from disk per catch-up round per watcher: bounds the sync thread's memory.
const CATCH_UP_CHANGES_MAX: usize = 1000;

/// How often the sync thread looks at unsynced watchers when nothing wakes it.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How long a watcher whose sink refused a catch-up waits before the history is read again:
/// a client that stopped reading must not cost a disk read of up to
/// [`CATCH_UP_CHANGES_MAX`] changes every round.
const FULL_BACKOFF: Duration = Duration::from_millis(500);

/// Where a watcher's responses go. `Full` makes the watcher unsynced (it catches up from disk
/// later); `Closed` removes it.
pub enum SinkError {
    Full,
    Closed,
}

pub type Sink = Box<dyn FnMut(WatchResponse) -> std::result::Result<(), SinkError> + Send>;

/// What to watch: etcd's `WatchCreateRequest` after the stream layer resolved the id.
#[derive(Clone)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    /// `None`: the key alone; `Some(empty)`: every key ≥ `key`; else `[key, end)`.
    pub end: Option<Vec<u8>>,
    pub watch_id: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    /// Hear the current revision every progress interval in which nothing else came.
    pub progress_notify: bool,
}

impl WatchSpec {
    /// From etcd's request fields (`range_end` as in Range: empty = one key, `[0]` = to the end).
    pub fn new(req: &crate::pb::WatchCreateRequest, watch_id: i64) -> WatchSpec {
        let end = match req.range_end.as_slice() {
            [] => None,
            [0] => Some(Vec::new()),
            end => Some(end.to_vec()),
        };
        // etcd: an empty key is the smallest key, `\0`.
        let key = if req.key.is_empty() { vec![0] } else { req.key.clone() };
        WatchSpec {
            key,
            end,
            watch_id,
            prev_kv: req.prev_kv,
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            progress_notify: req.progress_notify,
        }
    }

    /// A range that holds no key (`key` at or after a given end): etcd refuses such a watch.
    pub fn is_empty_range(&self) -> bool {
        matches!(&self.end, Some(end) if !end.is_empty() && self.key >= *end)
    }

    fn matches(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.key,
            Some(end) if end.is_empty() => key >= self.key.as_slice(),
            Some(end) => key >= self.key.as_slice() && key < end.as_slice(),
        }
    }
}

struct Watcher {
    spec: WatchSpec,
    /// First revision not yet delivered.
    next_rev: i64,
    synced: bool,
    /// No events went out since the last progress round (etcd's `sws.progress[id]`).
    quiet: bool,
    /// Not read for again before this: its sink was full at the last catch-up.
    retry_at: Option<Instant>,
    sink: Sink,
}

#[derive(Default)]
struct HubState {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    /// Single-key watchers by key, so a change finds its watchers without a scan.
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    /// Range watchers: checked against every change.
    ranges: HashSet<u64>,
    /// The revision of the last batch handed to synced watchers: what a progress notification
    /// may claim (the store's own revision moves before the batch reaches the hub).
    notified: i64,
    /// Progress requests waiting for their stream's watchers to catch up.
    pending_progress: Vec<PendingProgress>,
}

/// A stream's progress request that came while some of its watchers (`ids`) were behind.
struct PendingProgress {
    ids: Vec<u64>,
    sink: Sink,
}

impl HubState {
    fn insert(&mut self, watcher: Watcher) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if watcher.spec.end.is_none() {
            self.by_key.entry(watcher.spec.key.clone()).or_default().insert(id);
        } else {
            self.ranges.insert(id);
        }
        self.watchers.insert(id, watcher);
        id
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(w) = self.watchers.remove(&id) else { return false };
        if w.spec.end.is_none() {
            if let Some(ids) = self.by_key.get_mut(&w.spec.key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_key.remove(&w.spec.key);
                }
            }
        } else {
            self.ranges.remove(&id);
        }
        true
    }

    /// Whether every one of `ids` still watching is synced.
    fn all_synced(&self, ids: &[u64]) -> bool {
        ids.iter().all(|id| self.watchers.get(id).is_none_or(|w| w.synced))
    }

    /// The changes each watcher may want, by watcher id (filters and start revisions are
    /// applied by the caller).
    fn route<'c>(&self, changes: &'c [KeyValue]) -> HashMap<u64, Vec<&'c KeyValue>> {
        let mut routed: HashMap<u64, Vec<&KeyValue>> = HashMap::new();
        for kv in changes {
            for id in self.by_key.get(&kv.key).into_iter().flatten() {
                routed.entry(*id).or_default().push(kv);
            }
        }
        for id in &self.ranges {
            let spec = &self.watchers[id].spec;
            let mine: Vec<&KeyValue> = changes.iter().filter(|kv| spec.matches(&kv.key)).collect();
            if !mine.is_empty() {
                routed.insert(*id, mine);
            }
        }
        routed
    }
}

pub struct WatchHub {
    /// Every watcher with its progress; taken by apply (notify), the sync thread and callers
    /// creating/canceling watches.
    state: Mutex<HubState>,
    /// Wakes the sync thread when a watcher falls behind (bounded 1: one pending wake is enough).
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// `--experimental-watch-progress-notify-interval`.
    progress_interval: Duration,
}

/// A response header at `revision`, completed by the caller's `fill`.
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

impl WatchHub {
    /// A hub for a store at `revision`, with progress notifications every `progress_interval`.
    pub fn new(revision: i64, progress_interval: Duration) -> WatchHub {
        let (wake_tx, wake_rx) = channel::bounded(1);
        let state = Mutex::new(HubState { notified: revision, ..HubState::default() });
        WatchHub { state, wake_tx, wake_rx, progress_interval }
    }

    /// A stream's progress request (etcd 3.4.24's `RequestProgressAll`): answered through
    /// `sink` at the revision every synced watcher has seen, once all of the stream's watchers
    /// (`ids`) are synced: at once if they are, else when the sync thread has caught the last
    /// of them up. Answering while one is behind would put the notification before events
    /// of its revision that watcher has still to deliver (etcd 3.4.23 does, etcd #15220; the
    /// soak's bookmark check found raftkv doing the same).
    pub fn request_progress(&self, ids: Vec<u64>, mut sink: Sink, fill: &dyn Fn(&mut Option<ResponseHeader>)) {
        let mut state = self.state.lock();
        if state.all_synced(&ids) {
            let _ = sink(progress_response(state.notified, fill));
        } else {
            state.pending_progress.push(PendingProgress { ids, sink });
        }
    }

    /// Registers a watcher starting at `start_rev` (0 = after the current revision) and sends
    /// its `created` response. Returns its hub id, or `None` if its history is compacted (it
    /// then got `created` and `canceled`, as etcd sends them).
    pub fn watch(
        &self,
        store: &Store,
        spec: WatchSpec,
        start_rev: i64,
        mut sink: Sink,
        fill: &dyn Fn(&mut Option<ResponseHeader>),
    ) -> Option<u64> {
        let mut state = self.state.lock();
        let current = store.current_revision();
        let mut created =
            WatchResponse { header: header(current), watch_id: spec.watch_id, created: true, ..Default::default() };
        fill(&mut created.header);
        if sink(created).is_err() {
            return None;
        }
        let compacted = store.compact_revision();
        if start_rev > 0 && start_rev < compacted {
            let mut canceled = WatchResponse {
                watch_id: spec.watch_id,
                canceled: true,
                compact_revision: compacted,
                ..Default::default()
            };
            fill(&mut canceled.header);
            let _ = sink(canceled);
            return None;
        }
        let next_rev = if start_rev <= 0 { current + 1 } else { start_rev };
        let synced = next_rev > current;
        let id = state.insert(Watcher { spec, next_rev, synced, quiet: true, retry_at: None, sink });
        if !synced {
            let _ = self.wake_tx.try_send(());
        }
        Some(id)
    }

    /// Removes a watcher; true if it existed.
    pub fn cancel(&self, id: u64) -> bool {
        self.state.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.state.lock().watchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Delivers a committed batch's changes (revision order, the store's revision now `rev`)
    /// to synced watchers. Runs on the apply thread; never blocks on a watcher. Cost follows
    /// the changes and the range watchers, not the number of single-key watchers.
    pub fn notify(&self, store: &Store, changes: &[KeyValue], rev: i64, fill: &dyn Fn(&mut Option<ResponseHeader>)) {
        let mut state = self.state.lock();
        state.notified = rev;
        if state.watchers.is_empty() {
            return;
        }
        let routed = state.route(changes);
        let mut closed = Vec::new();
        let mut fell_behind = false;
        for (id, mine) in routed {
            let Some(w) = state.watchers.get_mut(&id).filter(|w| w.synced) else { continue };
            // A watcher that has not seen a batch without its keys may have a stale `next_rev`;
            // that only makes a later catch-up re-read revisions holding none of its events.
            let events = events_for(store, &w.spec, mine.into_iter().filter(|kv| kv.mod_revision >= w.next_rev));
            if events.is_empty() {
                continue;
            }
            let mut resp =
                WatchResponse { header: header(rev), watch_id: w.spec.watch_id, events, ..Default::default() };
            fill(&mut resp.header);
            match (w.sink)(resp) {
                Ok(()) => {
                    w.next_rev = rev + 1;
                    w.quiet = false;
                }
                Err(SinkError::Full) => {
                    w.synced = false;
                    fell_behind = true;
                }
                Err(SinkError::Closed) => closed.push(id),
            }
        }
        for id in closed {
            state.remove(id);
        }
        if fell_behind {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// After a snapshot replaced the store: every watcher catches up from disk, and one whose
    /// next revision was compacted away in the snapshot is canceled (etcd's restore).
    pub fn resync_all(&self) {
        let mut state = self.state.lock();
        for w in state.watchers.values_mut() {
            w.synced = false;
        }
        drop(state);
        let _ = self.wake_tx.try_send(());
    }

    /// The `raftkv-watch-sync` thread body: catches unsynced watchers up from disk, and sends
    /// progress notifications each progress interval, until `stop_rx` fires.
    pub fn run_sync(
        self: &Arc<Self>,
        store: &Store,
        stop_rx: &Receiver<()>,
        fill: &dyn Fn(&mut Option<ResponseHeader>),
    ) {
        let mut next_progress = Instant::now() + self.progress_interval;
        loop {
            let wait = SYNC_INTERVAL.min(next_progress.saturating_duration_since(Instant::now()));
            select! {
                recv(stop_rx) -> _ => return,
                recv(self.wake_rx) -> _ => {}
                default(wait) => {}
            }
            if let Err(e) = self.sync_round(store, fill) {
                log::error!("watch: catch-up failed: {e}");
            }
            self.answer_pending_progress(fill);
            if Instant::now() >= next_progress {
                next_progress = Instant::now() + self.progress_interval;
                self.progress_round(fill);
            }
        }
    }

    /// Answers the progress requests whose watchers are all synced now.
    fn answer_pending_progress(&self, fill: &dyn Fn(&mut Option<ResponseHeader>)) {
        let mut state = self.state.lock();
        if state.pending_progress.is_empty() {
            return;
        }
        let (ready, waiting) =
            std::mem::take(&mut state.pending_progress).into_iter().partition(|p| state.all_synced(&p.ids));
        state.pending_progress = waiting;
        for mut pending in ready {
            let _ = (pending.sink)(progress_response(state.notified, fill));
        }
    }

    /// etcd's progress ticker: each synced watcher created with `progress_notify` that got no
    /// events since the last round hears the current revision (an empty response with its
    /// id). One that is behind gets nothing: its catch-up tells it more.
    fn progress_round(&self, fill: &dyn Fn(&mut Option<ResponseHeader>)) {
        let mut state = self.state.lock();
        let current = state.notified;
        let mut closed = Vec::new();
        for (id, w) in state.watchers.iter_mut().filter(|(_, w)| w.spec.progress_notify) {
            if std::mem::replace(&mut w.quiet, true) && w.synced {
                let mut resp =
                    WatchResponse { header: header(current), watch_id: w.spec.watch_id, ..Default::default() };
                fill(&mut resp.header);
                if let Err(SinkError::Closed) = (w.sink)(resp) {
                    closed.push(*id);
                }
            }
        }
        for id in closed {
            state.remove(id);
        }
    }

    /// One catch-up step for every unsynced watcher. History is read from disk *without* the
    /// hub lock (so apply never waits for it), then delivered under the lock if the watcher is
    /// still where it was. It becomes synced only if no batch was published after what was
    /// read: a later batch's `notify` runs after it takes the lock, finds it synced and
    /// delivers; an earlier one was read from disk. No gap, no duplicate.
    fn sync_round(&self, store: &Store, fill: &dyn Fn(&mut Option<ResponseHeader>)) -> Result<()> {
        let unsynced: Vec<(u64, WatchSpec, i64)> = {
            let state = self.state.lock();
            let now = Instant::now();
            state
                .watchers
                .iter()
                .filter(|(_, w)| !w.synced && w.retry_at.is_none_or(|at| at <= now))
                .map(|(id, w)| (*id, w.spec.clone(), w.next_rev))
                .collect()
        };
        for (id, spec, from) in unsynced {
            let current = store.current_revision();
            // history() checks the compact revision against the snapshot it reads, so a
            // compaction racing this read cancels the watcher instead of leaving a gap.
            let (read, compacted) =
                match store.history(&spec.key, spec.end.as_deref(), from, current, CATCH_UP_CHANGES_MAX) {
                    Err(Error::Compacted) => (None, store.compact_revision()),
                    Err(e) => return Err(e),
                    Ok(changes) => {
                        let reached = changes.last().map_or(current, |kv| kv.mod_revision);
                        let caught_up = changes.len() < CATCH_UP_CHANGES_MAX || reached >= current;
                        let upto = if caught_up { current } else { reached };
                        (Some((events_for(store, &spec, changes.iter()), upto, caught_up)), 0)
                    }
                };
            let mut state = self.state.lock();
            let Some(w) = state.watchers.get_mut(&id).filter(|w| !w.synced && w.next_rev == from) else { continue };
            let Some((events, upto, caught_up)) = read else {
                let mut canceled = WatchResponse {
                    watch_id: w.spec.watch_id,
                    canceled: true,
                    compact_revision: compacted,
                    ..Default::default()
                };
                fill(&mut canceled.header);
                let _ = (w.sink)(canceled);
                state.remove(id);
                continue;
            };
            if !events.is_empty() {
                let mut resp =
                    WatchResponse { header: header(current), watch_id: w.spec.watch_id, events, ..Default::default() };
                fill(&mut resp.header);
                match (w.sink)(resp) {
                    Ok(()) => {
                        w.quiet = false;
                        w.retry_at = None;
                    }
                    // Nothing delivered: the same history is read again, after a pause.
                    Err(SinkError::Full) => {
                        w.retry_at = Some(Instant::now() + FULL_BACKOFF);
                        continue;
                    }
                    Err(SinkError::Closed) => {
                        state.remove(id);
                        continue;
                    }
                }
            }
            w.next_rev = upto + 1;
            w.synced = caught_up && store.current_revision() == upto;
        }
        Ok(())
    }
}

/// The answer to a stream's progress request: not any one watcher's (id -1, as etcd's).
fn progress_response(revision: i64, fill: &dyn Fn(&mut Option<ResponseHeader>)) -> WatchResponse {
    let mut resp = WatchResponse { header: header(revision), watch_id: -1, ..Default::default() };
    fill(&mut resp.header);
    resp
}

/// The events a watcher gets from `changes`, with its filters and `prev_kv`.
fn events_for<'a>(store: &Store, spec: &WatchSpec, changes: impl Iterator<Item = &'a KeyValue>) -> Vec<Event> {
    let mut events = Vec::new();
    for kv in changes.filter(|kv| spec.matches(&kv.key)) {
        // A delete is recorded as the key and its revision only (version 0).
        let delete = kv.version == 0;
        if (delete && spec.no_delete) || (!delete && spec.no_put) {
            continue;
        }
        let prev_kv = if spec.prev_kv { previous(store, kv) } else { None };
        let r#type = if delete { EventType::Delete } else { EventType::Put } as i32;
        events.push(Event { r#type, kv: Some(kv.clone()), prev_kv });
    }
    events
}

/// The key's version just before this change, if still in history.
fn previous(store: &Store, kv: &KeyValue) -> Option<KeyValue> {
    let opts = RangeOptions { rev: kv.mod_revision - 1, ..Default::default() };
    store.range(&kv.key, None, opts).ok()?.kvs.into_iter().next()
}

/// A sink into a bounded channel of responses (the library's `Watch` receiver).
pub fn channel_sink(tx: Sender<WatchResponse>) -> Sink {
    Box::new(move |resp| match tx.try_send(resp) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => Err(SinkError::Full),
        Err(TrySendError::Disconnected(_)) => Err(SinkError::Closed),
    })
}
