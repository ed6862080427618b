//! etcd's `Election.Observe`: a stream of an election's leaders, the current one first, then
//! every value the leader proclaims and each leader that follows when one resigns or its
//! lease ends (`concurrency.Election.Observe`).
//!
//! etcd's recipe reads the first candidate, watches its key until it is deleted, then reads
//! again. Here one watch on the whole prefix (from just after a first read of every
//! candidate) keeps the candidates in creation order, so the leader that follows a deleted
//! one is known from the events alone: after that first read no call blocks, and an observer
//! holds no thread. Its watcher's sink runs on the apply and watch-sync threads, as a watch
//! stream's does; it updates the candidates and hands on what etcd's observer would send.
//! Where etcd reads the next leader after a delete, the answer is that leader as of the
//! delete (etcd's read may be later, so it may skip values ours sends).

use std::collections::{BTreeMap, HashMap};

use super::recipes::{by_creation, prefix, relayed};
use super::Service;
use crate::node::Watch;
use crate::pb::*;
use crate::watch::SinkError;
use crate::{Error, Result};

/// What an observer hands on.
pub enum Observed {
    /// The leaders of one watch batch, in order: all of them queued or none (the batch then
    /// comes again from the watch's history).
    Leaders(Vec<LeaderResponse>),
    /// The watch under the observer was canceled (its history compacted away under it):
    /// the stream ends, as etcd's observer closes.
    Ended,
}

/// Where an observer's answers go.
pub type ObserveSink = Box<dyn FnMut(Observed) -> std::result::Result<(), SinkError> + Send>;

/// A running observer; dropping it stops it.
pub struct Observer {
    _watch: Watch,
}

impl Service {
    /// Starts observing election `req.name`: reads the candidates (a linearizable read, which
    /// blocks), sends the leader if there is one, and from then on sends what changes.
    pub fn observe(&self, req: LeaderRequest, mut sink: ObserveSink) -> Result<Observer> {
        self.node.refuse_learner()?;
        let prefix = prefix(&req.name);
        let resp = self.node.range(by_creation(&prefix, 0)).map_err(relayed)?;
        let header = resp.header.unwrap_or_default();
        let mut candidates = Candidates::default();
        for kv in resp.kvs {
            candidates.put(kv, &mut Vec::new());
        }
        if let Some(leader) = candidates.leader() {
            let first = LeaderResponse { header: Some(header), kv: Some(leader.clone()) };
            // Nothing is queued yet: a refusal means the client has gone.
            sink(Observed::Leaders(vec![first])).map_err(|_| Error::Canceled)?;
        }
        let create = WatchCreateRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            start_revision: header.revision + 1,
            ..Default::default()
        };
        let watch = self.node.watch_into(
            create,
            Box::new(move |resp| {
                if resp.canceled {
                    let _ = sink(Observed::Ended);
                    return Err(SinkError::Closed);
                }
                candidates.on_events(resp, &mut sink)
            }),
        );
        Ok(Observer { _watch: watch })
    }
}

/// An election's candidates, in creation order: the first is the leader.
#[derive(Default)]
struct Candidates {
    by_rev: BTreeMap<i64, KeyValue>,
    /// Each candidate key's create revision.
    revs: HashMap<Vec<u8>, i64>,
}

/// A key's state before a batch changed it, to put back if the batch is refused.
type Undo = Vec<(Vec<u8>, Option<KeyValue>)>;

impl Candidates {
    fn leader(&self) -> Option<&KeyValue> {
        self.by_rev.values().next()
    }

    fn leads(&self, key: &[u8]) -> bool {
        self.leader().is_some_and(|kv| kv.key == key)
    }

    fn put(&mut self, kv: KeyValue, undo: &mut Undo) {
        let old = self.remove(&kv.key);
        undo.push((kv.key.clone(), old));
        self.revs.insert(kv.key.clone(), kv.create_revision);
        self.by_rev.insert(kv.create_revision, kv);
    }

    fn remove(&mut self, key: &[u8]) -> Option<KeyValue> {
        let rev = self.revs.remove(key)?;
        self.by_rev.remove(&rev)
    }

    /// One watch response: what etcd's observer sends for it goes to `sink` as one batch. If
    /// the sink refuses it the candidates are put back as they were, since the watch sends
    /// the same history again.
    fn on_events(&mut self, resp: WatchResponse, sink: &mut ObserveSink) -> std::result::Result<(), SinkError> {
        let mut undo = Undo::new();
        let mut leaders = Vec::new();
        for event in resp.events {
            let Some(kv) = event.kv else { continue };
            if event.r#type == EventType::Delete as i32 {
                let was_leader = self.leads(&kv.key);
                undo.push((kv.key.clone(), self.remove(&kv.key)));
                if let Some(next) = self.leader().filter(|_| was_leader) {
                    leaders.push(LeaderResponse { header: resp.header, kv: Some(next.clone()) });
                }
                continue;
            }
            let had_leader = self.leader().is_some();
            let key = kv.key.clone();
            let mod_revision = kv.mod_revision;
            self.put(kv, &mut undo);
            if let Some(leader) = self.leader().filter(|leader| leader.key == key) {
                let mut header = resp.header;
                // The first leader of an empty election: etcd's observer gives it the header
                // of its own put, not of the whole watch batch.
                if !had_leader {
                    header = header.map(|h| ResponseHeader { revision: mod_revision, ..h });
                }
                leaders.push(LeaderResponse { header, kv: Some(leader.clone()) });
            }
        }
        if leaders.is_empty() {
            return Ok(());
        }
        sink(Observed::Leaders(leaders)).inspect_err(|_| {
            for (key, old) in undo.into_iter().rev() {
                self.remove(&key);
                if let Some(old) = old {
                    self.put(old, &mut Vec::new());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn kv(key: &str, create: i64, rev: i64, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            create_revision: create,
            mod_revision: rev,
            version: 1,
            value: value.into(),
            lease: 0,
        }
    }

    fn batch(rev: i64, events: Vec<(EventType, KeyValue)>) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader { revision: rev, ..Default::default() }),
            events: events.into_iter().map(|(t, kv)| Event { r#type: t as i32, kv: Some(kv), prev_kv: None }).collect(),
            ..Default::default()
        }
    }

    /// The (header revision, value) of each leader a sink was given.
    type Record = Arc<Mutex<Vec<(i64, String)>>>;

    /// A sink that records what it is given, refusing while `full` is set.
    fn recorder() -> (ObserveSink, Record, Arc<Mutex<bool>>) {
        let (seen, full) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(false)));
        let (record, refuse) = (seen.clone(), full.clone());
        let sink: ObserveSink = Box::new(move |observed| {
            let Observed::Leaders(leaders) = observed else { return Ok(()) };
            if *refuse.lock().unwrap() {
                return Err(SinkError::Full);
            }
            let mut record = record.lock().unwrap();
            for l in leaders {
                let kv = l.kv.unwrap();
                record.push((l.header.unwrap().revision, String::from_utf8(kv.value).unwrap()));
            }
            Ok(())
        });
        (sink, seen, full)
    }

    #[test]
    fn leaders_follow_as_etcds_observer_sends_them() {
        use EventType::{Delete, Put};
        let (mut sink, seen, full) = recorder();
        let mut c = Candidates::default();
        // An empty election: the first put leads, with the header of its own revision.
        c.on_events(batch(5, vec![(Put, kv("e/a", 4, 4, "a1")), (Put, kv("e/b", 5, 5, "b1"))]), &mut sink).ok();
        // A follower's change says nothing; the leader's proclaim does.
        c.on_events(batch(6, vec![(Put, kv("e/b", 5, 6, "b2"))]), &mut sink).ok();
        c.on_events(batch(7, vec![(Put, kv("e/a", 4, 7, "a2"))]), &mut sink).ok();
        // A refused batch changes nothing, and counts when it comes again.
        *full.lock().unwrap() = true;
        assert!(c.on_events(batch(8, vec![(Delete, kv("e/a", 0, 8, ""))]), &mut sink).is_err());
        assert_eq!(c.leader().map(|kv| kv.value.clone()), Some(b"a2".to_vec()));
        *full.lock().unwrap() = false;
        c.on_events(batch(8, vec![(Delete, kv("e/a", 0, 8, ""))]), &mut sink).ok();
        // A follower leaving says nothing; the last leader leaving leaves none.
        c.on_events(batch(9, vec![(Put, kv("e/c", 9, 9, "c1"))]), &mut sink).ok();
        c.on_events(batch(10, vec![(Delete, kv("e/c", 0, 10, ""))]), &mut sink).ok();
        c.on_events(batch(11, vec![(Delete, kv("e/b", 0, 11, ""))]), &mut sink).ok();
        assert!(c.leader().is_none());
        let want = [(4, "a1"), (7, "a2"), (8, "b2")];
        let want: Vec<(i64, String)> = want.iter().map(|(r, v)| (*r, v.to_string())).collect();
        assert_eq!(*seen.lock().unwrap(), want);
    }
}
