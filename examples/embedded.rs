//! Embedding raftkv in a Rust program: start a member, write, read, run a transaction,
//! compact, and stop. Run with `cargo run --example embedded [DATA_DIR]`.
//!
//! Data survives restarts: run it twice on the same directory and the revision keeps growing.

use raftkv::pb::{compare, request_op, Compare, CompareResult, CompareTarget};
use raftkv::pb::{CompactionRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use raftkv::{Config, Node};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let data_dir = std::env::args().nth(1).unwrap_or_else(|| "embedded.raftkv".into());
    let node = Node::start(Config::new("embedded", data_dir))?;

    // Writes block until the entry is durable in the raft log and applied.
    node.put(PutRequest::new("config/color", "blue"))?;
    let put = node.put(PutRequest { prev_kv: true, ..PutRequest::new("config/color", "green") })?;
    println!("overwrote {:?}", put.prev_kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()));

    // Reads are linearizable unless `serializable` is set.
    let resp = node.range(RangeRequest::prefix("config/"))?;
    for kv in &resp.kvs {
        println!(
            "{} = {} (version {}, mod revision {})",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.version,
            kv.mod_revision
        );
    }

    // Compare-and-swap: set the color only if it is still green.
    let txn = node.txn(TxnRequest {
        compare: vec![Compare {
            key: b"config/color".to_vec(),
            target: CompareTarget::Value as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(compare::TargetUnion::Value(b"green".to_vec())),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest::new("config/color", "red"))),
        }],
        ..Default::default()
    })?;
    println!("compare-and-swap succeeded: {}", txn.succeeded);

    // Drop history older than the current revision.
    let revision = txn.header.map(|h| h.revision).unwrap_or_default();
    node.compact(CompactionRequest { revision, physical: true })?;
    println!("compacted at revision {revision}");

    node.stop()?;
    Ok(())
}
