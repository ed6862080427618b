//! The protobuf messages raftkv reads and writes, one file per format, because each has its
//! own compatibility rule: [`etcd`]'s wire types (etcd's, never changed; its Auth service in
//! [`auth`], its lock and election services in [`concurrency`]), gRPC's [`health`] checks
//! (gRPC's, never changed), the raft log [`entry`] payload (applied by later versions),
//! on-disk [`records`] (opened by later versions), the [`peer`] protocol (spoken between
//! adjacent versions). All are re-exported here, with helpers for building requests.
//!
//! Enums are stored as `i32` as protobuf does; prost generates typed getters (`sort_order()`)
//! and setters (`set_sort_order()`) for them.
//!
//! Nothing here runs on a thread of its own; the types are plain data.

pub mod auth;
pub mod concurrency;
pub mod entry;
pub mod etcd;
pub mod health;
pub mod peer;
pub mod records;

pub use auth::*;
pub use concurrency::*;
pub use entry::*;
pub use etcd::*;
pub use health::*;
pub use peer::*;
pub use records::*;

impl RangeRequest {
    /// A request for one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        RangeRequest { key: key.into(), ..Default::default() }
    }

    /// A request for every key starting with `prefix` (etcdctl's `--prefix`).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        RangeRequest { key, range_end, ..Default::default() }
    }
}

impl PutRequest {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        PutRequest { key: key.into(), value: value.into(), ..Default::default() }
    }
}

impl DeleteRangeRequest {
    /// A request deleting one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        DeleteRangeRequest { key: key.into(), ..Default::default() }
    }

    /// A request deleting every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        DeleteRangeRequest { key, range_end, ..Default::default() }
    }
}

/// The smallest key greater than every key with this prefix, as etcd's `GetPrefixRangeEnd`:
/// the prefix with its last non-0xff byte incremented; `[0]` (to the end) if there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn key_value_encodes_like_etcd() {
        // Bytes of mvccpb.KeyValue{Key:"foo", CreateRevision:2, ModRevision:3, Version:2, Value:"bar"}
        // as golang/protobuf marshals it.
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"bar".to_vec(),
            lease: 0,
        };
        assert_eq!(kv.encode_to_vec(), b"\x0a\x03foo\x10\x02\x18\x03\x20\x02\x2a\x03bar".to_vec());
    }
}
