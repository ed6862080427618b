//! The watch call: a [`Watch`] with its responses on a crossbeam receiver (the library), or
//! a watch whose responses go to a sink of the caller's (the gateway's streams).

use std::sync::Arc;

use crossbeam::channel;

use super::Node;
use crate::pb::*;
use crate::watch::{channel_sink, Sink, WatchHub, WatchSpec};
use crate::Result;

/// Responses buffered per library watch before it falls back to catching up from disk.
const WATCH_QUEUE_MAX: usize = 1024;

impl Node {
    /// Starts a watch (etcd `Watch`, one create request). Responses — `created` first, then
    /// events in revision order, or a cancellation if the start revision was compacted —
    /// arrive on the returned [`Watch`]; dropping it cancels the watch. A receiver that stops
    /// reading does not slow writes: its watch falls behind and catches up from disk later.
    pub fn watch(&self, req: WatchCreateRequest) -> Result<Watch> {
        let (tx, responses) = channel::bounded(WATCH_QUEUE_MAX);
        let mut watch = self.watch_into(req, channel_sink(tx));
        watch.responses = responses;
        Ok(watch)
    }

    /// Answers a stream's progress request through `sink`: a notification at the revision
    /// every synced watcher has had all events of, sent once all of `watches` (the stream's)
    /// are synced, so no event of an earlier revision can follow it on the stream.
    pub fn request_watch_progress<'a>(&self, watches: impl Iterator<Item = &'a Watch>, sink: Sink) {
        let inner = &self.inner;
        let ids = watches.filter_map(|w| w.id).collect();
        inner.watches.request_progress(ids, sink, &|h| inner.identity.fill_header(h));
    }

    /// Starts a watch whose responses go to `sink` (the gateway's and gRPC's streams); the
    /// returned handle's `responses` is unused.
    pub fn watch_into(&self, req: WatchCreateRequest, sink: Sink) -> Watch {
        let inner = &self.inner;
        let spec = WatchSpec::new(&req, req.watch_id);
        let id = inner.watches.watch(&inner.store, spec, req.start_revision, sink, &|h| inner.identity.fill_header(h));
        Watch { id, hub: inner.watches.clone(), responses: channel::never() }
    }

    /// Watchers registered on this member (library and gateway).
    pub fn watcher_count(&self) -> usize {
        self.inner.watches.len()
    }
}

/// A running watch from [`Node::watch`]. Dropping it cancels the watch.
pub struct Watch {
    id: Option<u64>,
    hub: Arc<WatchHub>,
    /// The watch's responses, in order.
    pub responses: channel::Receiver<WatchResponse>,
}

impl Watch {
    /// Stops the watch (as dropping it does).
    pub fn cancel(self) {}
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.hub.cancel(id);
        }
    }
}
