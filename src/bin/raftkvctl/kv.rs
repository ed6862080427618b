//! The key-value verbs: put, get, del, txn, watch, compaction.

use super::*;

impl Ctl {
    pub(crate) fn put(&self, req: PutRequest) -> Outcome {
        let resp = self.client.put(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => {
                println!("OK");
                if let Some(prev) = &resp.prev_kv {
                    self.print_kvs(std::slice::from_ref(prev), false);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, req: RangeRequest, value_only: bool) -> Outcome {
        let resp = self.client.range(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ if req.count_only => println!("{}", resp.count),
            _ => self.print_kvs(&resp.kvs, value_only),
        }
        Ok(())
    }

    pub(crate) fn del(&self, req: DeleteRangeRequest) -> Outcome {
        let resp = self.client.delete_range(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => {
                println!("{}", resp.deleted);
                self.print_kvs(&resp.prev_kvs, false);
            }
        }
        Ok(())
    }

    pub(crate) fn txn(&self, interactive: bool) -> Outcome {
        let req = read_txn(interactive).map_err(CtlError::Usage)?;
        let resp = self.client.txn(&req)?;
        if self.format == Format::Json {
            self.print_json(&resp);
            return Ok(());
        }
        println!("{}", if resp.succeeded { "SUCCESS" } else { "FAILURE" });
        for op in &resp.responses {
            println!();
            match &op.response {
                Some(Response::ResponsePut(_)) => println!("OK"),
                Some(Response::ResponseRange(r)) => self.print_kvs(&r.kvs, false),
                Some(Response::ResponseDeleteRange(d)) => println!("{}", d.deleted),
                Some(Response::ResponseTxn(_)) | None => {}
            }
        }
        Ok(())
    }

    pub(crate) fn watch(&self, req: WatchCreateRequest) -> Outcome {
        let json = self.format == Format::Json;
        let mut canceled = None;
        self.client.watch(&req, |resp| {
            if json {
                println!("{}", resp.to_etcdctl_json());
            } else {
                // etcdctl's simple format: the event type, then key and value lines.
                for e in &resp.events {
                    println!("{}", if e.r#type == EventType::Delete as i32 { "DELETE" } else { "PUT" });
                    if let Some(prev) = &e.prev_kv {
                        self.print_kvs(std::slice::from_ref(prev), false);
                    }
                    if let Some(kv) = &e.kv {
                        self.print_kvs(std::slice::from_ref(kv), false);
                    }
                }
            }
            let _ = std::io::stdout().flush();
            if resp.canceled {
                canceled = Some(resp.compact_revision);
            }
            !resp.canceled
        })?;
        match canceled {
            Some(rev) if rev > 0 => Err(CtlError::from(raftkv::Error::Compacted)),
            _ => Ok(()),
        }
    }

    pub(crate) fn compaction(&self, revision: i64, physical: bool) -> Outcome {
        let resp = self.client.compact(&CompactionRequest { revision, physical })?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => println!("compacted revision {revision}"),
        }
        Ok(())
    }

    /// etcdctl's `printKV`: the key (unless `value_only`), then the value, always (a keys-only
    /// answer has empty values, so etcdctl prints an empty line for each); `--hex` as
    /// `\x66\x6f`.
    pub(crate) fn print_kvs(&self, kvs: &[KeyValue], value_only: bool) {
        let text = |bytes: &[u8]| {
            if self.hex {
                bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
            } else {
                String::from_utf8_lossy(bytes).into_owned()
            }
        };
        for kv in kvs {
            if !value_only {
                println!("{}", text(&kv.key));
            }
            println!("{}", text(&kv.value));
        }
    }
}
