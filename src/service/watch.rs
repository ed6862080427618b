//! A watch stream's session, for every protocol: the stream's watch ids (the client's, or the
//! lowest unused from 0, as etcd's), etcd's refusals of a create (an empty range, an id in
//! use), cancel and progress requests. Runs on the thread that feeds it the stream's
//! requests; its watchers are answered by the apply and watch-sync threads through the sinks
//! the session's adapter makes.

use std::collections::HashMap;

use crate::node::Watch;
use crate::pb::watch_request::RequestUnion;
use crate::pb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::watch::{Sink, WatchSpec};
use crate::Node;

pub struct WatchSession {
    node: Node,
    /// Makes a sink into the stream: one per watcher, and one per control answer.
    sink: Box<dyn Fn() -> Sink + Send>,
    watches: HashMap<i64, Watch>,
    next_auto: i64,
}

impl WatchSession {
    pub fn new(node: Node, sink: impl Fn() -> Sink + Send + 'static) -> WatchSession {
        WatchSession { node, sink: Box::new(sink), watches: HashMap::new(), next_auto: 0 }
    }

    fn send(&self, resp: WatchResponse) {
        let _ = (self.sink)()(resp);
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
                self.send(WatchResponse { header: self.node.header_now(), watch_id: -1, ..Default::default() });
            }
            Some(RequestUnion::CancelRequest(_)) | None => {}
        }
    }

    fn create(&mut self, create: WatchCreateRequest) {
        // etcd refuses these in its answer to the create: with the invalid watch id -1,
        // created and canceled at once.
        let refusal = if WatchSpec::new(&create, 0).is_empty_range() {
            Some("mvcc: watcher range is empty")
        } else if create.watch_id != 0 && self.watches.contains_key(&create.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.send(WatchResponse {
                header: self.node.header_now(),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: reason.into(),
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
        let watch = self.node.watch_into(create, (self.sink)());
        self.watches.insert(watch_id, watch);
    }
}
