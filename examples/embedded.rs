//! Embedding raftkv in a Rust program: start a member, write, read, run a transaction, watch,
//! hold a lease, compact, and stop. Run with `cargo run --example embedded [DATA_DIR]`.
//!
//! Data survives restarts: run it twice on the same directory and the revision keeps growing.

use raftkv::pb::{compare, request_op, Compare, CompareResult, CompareTarget};
use raftkv::pb::{prefix_end, CompactionRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp};
use raftkv::pb::{TxnRequest, WatchCreateRequest};
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

    // Watch a prefix: `created` first, then every change in revision order.
    let watch = node.watch(WatchCreateRequest {
        key: b"config/".to_vec(),
        range_end: prefix_end(b"config/"),
        ..Default::default()
    })?;
    node.put(PutRequest::new("config/size", "large"))?;
    for resp in watch.responses.iter().take(2) {
        for event in resp.events {
            let kv = event.kv.unwrap_or_default();
            println!("watch: {} at revision {}", String::from_utf8_lossy(&kv.key), kv.mod_revision);
        }
    }
    drop(watch); // cancels it

    // A lease: its keys are deleted when it expires, unless something keeps it alive.
    let lease = node.lease_grant(LeaseGrantRequest { ttl: 10, id: 0 })?;
    node.put(PutRequest { lease: lease.id, ..PutRequest::new("config/owner", "me") })?;
    let keeper = node.keep_alive(lease.id)?; // renews every TTL/3 on its own thread
    println!("lease {:x} held with TTL {}s", lease.id, keeper.ttl());
    drop(keeper);

    // Drop history older than the current revision.
    let revision = node.revision();
    node.compact(CompactionRequest { revision, physical: true })?;
    println!("compacted at revision {revision}");

    node.stop()?;
    Ok(())
}
