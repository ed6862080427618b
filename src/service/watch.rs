//! A watch stream's session, for every protocol: the stream's watch ids (the client's, or the
//! lowest unused from 0, as etcd's), etcd's refusals of a create (an empty range, an id in
//! use), cancel and progress requests, and responses split into fragments as etcd splits
//! them. Runs on the thread that feeds it the stream's requests; its watchers are answered by
//! the apply and watch-sync threads through the sinks the session's adapter makes.

use std::collections::HashMap;

use prost::Message;

use crate::auth::Credentials;
use crate::node::Watch;
use crate::pb::watch_request::RequestUnion;
use crate::pb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::watch::{Sink, SinkError, WatchSpec};
use crate::{Error, Node};

/// Where a stream's responses go: the fragments of one response together, so that a full
/// stream refuses all of them or none (a watcher that falls behind resends the whole batch).
pub type BatchSink = Box<dyn FnMut(Vec<WatchResponse>) -> Result<(), SinkError> + Send>;

pub struct WatchSession {
    node: Node,
    /// What the stream came with: each create is checked with them, as etcd resolves the
    /// stream's metadata again for every create (an expired token refuses later creates).
    credentials: Credentials,
    /// Makes a sink into the stream: one per watcher, and one per control answer.
    sink: Box<dyn Fn() -> BatchSink + Send>,
    watches: HashMap<i64, Watch>,
    next_auto: i64,
}

impl WatchSession {
    pub fn new(node: Node, credentials: Credentials, sink: impl Fn() -> BatchSink + Send + 'static) -> WatchSession {
        WatchSession { node, credentials, sink: Box::new(sink), watches: HashMap::new(), next_auto: 0 }
    }

    /// etcd's `isWatchPermitted`, answered as etcd's cancel reason: the gRPC status text of
    /// the refusal. A watch that was permitted keeps running if the permission is revoked
    /// later, as in etcd 3.4.
    fn permitted(&self, create: &WatchCreateRequest) -> Result<(), String> {
        // A from-key watch (`range_end` "\0") is checked as the range it watches; etcd 3.4
        // empties its `range_end` first and checks the one key (docs/compat.md).
        let checked = self
            .node
            .with_credentials(&self.credentials)
            .and_then(|node| node.check_watch(&create.key, &create.range_end));
        checked.map_err(|e| {
            let e = match e {
                Error::InvalidAuthToken | Error::AuthOldRevision | Error::UserEmpty => e,
                _ => Error::PermissionDenied,
            };
            format!("rpc error: code = {:?} desc = {e}", e.code())
        })
    }

    /// A watcher's sink: its responses fragmented as etcd's `sendFragments` does.
    fn watcher_sink(&self) -> Sink {
        let mut sink = (self.sink)();
        let max = self.node.config().max_request_bytes;
        Box::new(move |resp| sink(fragments(resp, max)))
    }

    fn send(&self, resp: WatchResponse) {
        let _ = (self.sink)()(vec![resp]);
    }

    /// One request of the stream.
    pub fn request(&mut self, req: WatchRequest) {
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create),
            // An unknown id gets no answer at all, as in etcd.
            Some(RequestUnion::CancelRequest(cancel)) if self.watches.remove(&cancel.watch_id).is_some() => {
                self.send(WatchResponse {
                    header: self.node.header_now(),
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                });
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let mut sink = (self.sink)();
                self.node.request_watch_progress(self.watches.values(), Box::new(move |resp| sink(vec![resp])));
            }
            Some(RequestUnion::CancelRequest(_)) | None => {}
        }
    }

    fn create(&mut self, create: WatchCreateRequest) {
        // etcd refuses these in its answer to the create: with the invalid watch id -1,
        // created and canceled at once.
        let refusal = if let Err(reason) = self.permitted(&create) {
            Some(reason)
        } else if WatchSpec::new(&create, 0).is_empty_range() {
            Some("mvcc: watcher range is empty".into())
        } else if create.watch_id != 0 && self.watches.contains_key(&create.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream".into())
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.send(WatchResponse {
                header: self.node.header_now(),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..Default::default()
            });
            return;
        }
        let mut watch_id = create.watch_id;
        if watch_id == 0 {
            while self.watches.contains_key(&self.next_auto) {
                self.next_auto += 1;
            }
            watch_id = self.next_auto;
            self.next_auto += 1;
        }
        let create = WatchCreateRequest { watch_id, ..create };
        let watch = self.node.watch_into(create, self.watcher_sink());
        self.watches.insert(watch_id, watch);
    }
}

/// etcd 3.4's `sendFragments`, which its watch server applies to every watcher's responses
/// (whatever the create's `fragment` asked): a response of at least `max` bytes with two or
/// more events goes out in parts of fewer than `max` bytes (or one event), each but the last
/// marked `fragment`.
pub fn fragments(mut resp: WatchResponse, max: usize) -> Vec<WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < max {
        return vec![resp];
    }
    let events = std::mem::take(&mut resp.events);
    let empty = WatchResponse { fragment: true, ..resp };
    // A part's size kept as events are added, rather than encoded again for each one.
    let base = empty.encoded_len();
    let mut parts = Vec::new();
    let mut part = empty.clone();
    let mut size = base;
    for event in events {
        let len = prost::encoding::message::encoded_len(EVENTS_TAG, &event);
        if !part.events.is_empty() && size + len >= max {
            parts.push(std::mem::replace(&mut part, empty.clone()));
            size = base;
        }
        size += len;
        part.events.push(event);
    }
    part.fragment = false;
    parts.push(part);
    parts
}

/// `WatchResponse.events`' field number, for a part's size.
const EVENTS_TAG: u32 = 11;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Event, KeyValue};

    fn event(value_len: usize) -> Event {
        Event {
            kv: Some(KeyValue { key: b"k".to_vec(), value: vec![b'v'; value_len], ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn large_responses_are_cut_into_fragments_as_etcd_cuts_them() {
        let small = WatchResponse { watch_id: 3, events: vec![event(10), event(10)], ..Default::default() };
        assert_eq!(fragments(small.clone(), 1024), [small]);
        let one = WatchResponse { events: vec![event(4096)], ..Default::default() };
        assert_eq!(fragments(one.clone(), 1024), [one]);

        let big = WatchResponse { watch_id: 3, events: (0..10).map(|_| event(300)).collect(), ..Default::default() };
        let parts = fragments(big.clone(), 1024);
        assert!(parts.len() > 1);
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|p| p.fragment && p.encoded_len() < 1024 && p.watch_id == 3));
        assert!(!last.fragment);
        let events: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, big.events);
    }
}
