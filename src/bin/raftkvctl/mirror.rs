//! `make-mirror`, as etcdctl 3.4's: every key under `--prefix` copied at one revision (in
//! pages of 1000), then every later change replayed from a watch, one txn per source
//! revision, until interrupted; the count of keys and changes copied is printed every 30 s.
//! The migration path from a running etcd: mirror, switch clients, compare.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;

/// Keys per page of the initial copy (etcd's `batchLimit`).
const PAGE: i64 = 1000;

impl Ctl {
    pub(crate) fn make_mirror(
        &self,
        destination: &str,
        prefix: &str,
        dest_prefix: Option<&str>,
        no_dest_prefix: bool,
    ) -> Outcome {
        if no_dest_prefix && dest_prefix.is_some_and(|p| !p.is_empty()) {
            return Err(CtlError::Usage(
                "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one".into(),
            ));
        }
        let dest_prefix = match dest_prefix {
            Some(p) if !p.is_empty() => p.to_string(),
            _ if no_dest_prefix => String::new(),
            _ => prefix.to_string(),
        };
        let dest = dial(&[destination.to_string()], Duration::from_secs(30), self.dial_timeout, self.gateway)?;
        let rename = |key: &[u8]| -> Vec<u8> {
            // Go's strings.Replace(key, prefix, dest, 1): the first occurrence (an empty prefix
            // occurs at 0, so dest goes in front).
            let at = if prefix.is_empty() {
                Some(0)
            } else {
                key.windows(prefix.len()).position(|w| w == prefix.as_bytes())
            };
            match at {
                Some(at) => [&key[..at], dest_prefix.as_bytes(), &key[at + prefix.len()..]].concat(),
                None => key.to_vec(),
            }
        };
        let total = Arc::new(AtomicU64::new(0));
        let shown = total.clone();
        std::thread::Builder::new()
            .name("raftkvctl-mirror-progress".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(30));
                println!("{}", shown.load(Ordering::Relaxed));
            })
            .map_err(|e| CtlError::Usage(e.to_string()))?;

        let rev = self.client.range(&RangeRequest::key("foo"))?.header.map_or(0, |h| h.revision);
        let (start, range_end) = if prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            (prefix.as_bytes().to_vec(), raftkv::pb::prefix_end(prefix.as_bytes()))
        };
        let mut key = start.clone();
        loop {
            let page = RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                limit: PAGE,
                revision: rev,
                ..Default::default()
            };
            let resp = self.client.range(&page)?;
            for kv in &resp.kvs {
                dest.put(&PutRequest { key: rename(&kv.key), value: kv.value.clone(), ..Default::default() })?;
                total.fetch_add(1, Ordering::Relaxed);
            }
            match resp.kvs.last() {
                Some(last) if resp.more => key = [&last.key[..], &[0]].concat(),
                _ => break,
            }
        }

        let watch = WatchCreateRequest { key: start, range_end, start_revision: rev + 1, ..Default::default() };
        let mut failed = None;
        self.client.watch(&watch, |resp| {
            if resp.compact_revision != 0 {
                failed = Some(CtlError::from(raftkv::Error::Compacted));
                return false;
            }
            // One txn per source revision, as etcd's mirror applies them.
            let mut ops: Vec<RequestOp> = Vec::new();
            let mut last_rev = 0;
            let flush = |ops: &mut Vec<RequestOp>| -> Result<(), CtlError> {
                if !ops.is_empty() {
                    dest.txn(&TxnRequest { success: std::mem::take(ops), ..Default::default() })?;
                }
                Ok(())
            };
            for event in &resp.events {
                let Some(kv) = &event.kv else { continue };
                if last_rev != 0 && kv.mod_revision > last_rev {
                    if let Err(e) = flush(&mut ops) {
                        failed = Some(e);
                        return false;
                    }
                }
                last_rev = kv.mod_revision;
                let request = if event.r#type == EventType::Delete as i32 {
                    Request::RequestDeleteRange(DeleteRangeRequest { key: rename(&kv.key), ..Default::default() })
                } else {
                    Request::RequestPut(PutRequest {
                        key: rename(&kv.key),
                        value: kv.value.clone(),
                        ..Default::default()
                    })
                };
                ops.push(RequestOp { request: Some(request) });
                total.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = flush(&mut ops) {
                failed = Some(e);
                return false;
            }
            true
        })?;
        failed.map_or(Ok(()), Err)
    }
}
