//! Helpers shared by the integration tests: real members on real RocksDB in temp dirs.
#![allow(dead_code)] // each test binary uses its own subset

use raftkv::pb::*;
use raftkv::{Config, Node};
use std::path::Path;

pub fn init_logs() {
    let _ =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).is_test(true).try_init();
}

/// A single-member config on `dir` with timings short enough for tests.
pub fn config(dir: &Path) -> Config {
    let mut cfg = Config::new("test", dir);
    cfg.request_timeout_ms = 5_000;
    cfg
}

pub fn start(dir: &Path) -> Node {
    init_logs();
    Node::start(config(dir)).expect("start node")
}

pub fn put(node: &Node, key: &str, value: &str) -> i64 {
    node.put(PutRequest::new(key, value)).expect("put").header.unwrap().revision
}

pub fn get(node: &Node, key: &str) -> Option<KeyValue> {
    node.range(RangeRequest::key(key)).expect("range").kvs.into_iter().next()
}

pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

pub fn rev(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().expect("header").revision
}
