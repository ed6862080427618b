//! What may differ between two correct answers, and nothing else. Each rule has a name, the
//! same as in docs/compat.md ("Differential fuzzing"):
//!
//! - `run-ids`: `cluster_id`, `member_id` and `raft_term` are per run.
//! - `lease-ids`: a lease id the server chose is replaced by its symbol (`L0`, `L1`, ...), the
//!   same for the lease on both servers.
//! - `status`: sizes, raft indexes and terms, and the leader id of `maintenance/status`.
//! - `members`: a member's id, name and URLs (per run), and so the order of the list (by id).
//! - `hash`: `maintenance/hash` hashes etcd's bolt file, raftkv's key-value history.
//! - `remaining-ttl`: a lease's remaining TTL counts down on each server's clock.
//! - `lease-order`: etcd lists leases in Go map order.
//! - `412`: Debian's etcd answers gRPC code 9 with HTTP 412 (grpc-gateway 1.6); upstream
//!   etcd 3.4.23, and raftkv, with 400.
//! - `watch-order`: etcd replays history to the watchers of one stream in Go map order, so a
//!   stream's messages are compared watcher by watcher (in order within each).
//! - `chunk-boundary`: Go sends a body over 2048 bytes chunked; with per-run ids of other
//!   lengths a body near that size may fall on either side, so framing is compared away from it.
//!
//! Normalizing works on the raw body text, so escaping and field order still count.

use crate::server::Reply;

/// An answer with what may differ taken out.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub framing: &'static str,
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
    pub body: String,
}

/// The headers compared (Date and Content-Length vary with the body's ids and the clock).
const HEADERS: &[&str] = &[
    "content-type",
    "grpc-metadata-content-type",
    "trailer",
    "allow",
    "x-content-type-options",
    "connection",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
];

/// `leases`: this server's chosen lease ids, by symbol index.
pub fn normalize(target: &str, reply: &Reply, leases: &[String]) -> Answer {
    let mut body = String::from_utf8_lossy(&reply.body).into_owned();
    for (i, id) in leases.iter().enumerate() {
        body = body.replace(&format!("\"{id}\""), &format!("\"L{i}\""));
    }
    let path = target.split('?').next().unwrap_or("");
    let mut fields: Vec<&str> = vec!["cluster_id", "member_id", "raft_term"];
    if path.ends_with("/maintenance/status") {
        fields.extend(["dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "raftTerm", "leader"]);
    }
    if path.contains("/cluster/member/") {
        fields.extend(["ID", "name", "peerURLs", "clientURLs"]);
    }
    if path.ends_with("/maintenance/hash") {
        fields.push("hash");
    }
    for field in fields {
        body = replace_values(&body, field, |_| true);
    }
    if path.ends_with("/lease/timetolive") {
        body = replace_values(&body, "TTL", |v| v != "\"-1\"");
    }
    if path.ends_with("/lease/leases") {
        body = sort_array(&body, "leases");
    }
    if path.contains("/cluster/member/") {
        body = sort_array(&body, "members");
    }
    if path.ends_with("/watch") {
        body = by_watcher(&body);
    }
    let mut status = reply.status;
    if status == 412 && body.contains("\"code\":9") {
        status = 400;
    }
    let framing = if reply.status == 0 {
        "dropped"
    } else if reply.body.len().abs_diff(2048) < 64 {
        "either"
    } else if reply.chunked {
        "chunked"
    } else {
        "length"
    };
    // Header names are compared as HTTP compares them, without case.
    let lower = |fields: &[(String, String)]| -> Vec<(String, String)> {
        fields.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()
    };
    let headers = lower(&reply.headers).into_iter().filter(|(k, _)| HEADERS.contains(&k.as_str())).collect();
    Answer { status, framing, headers, trailers: lower(&reply.trailers), body }
}

/// A watch stream's messages (`|` ends a chunk) grouped by watch id, each group in its order.
fn by_watcher(body: &str) -> String {
    // A message over 2 KiB comes as two chunks, its JSON and its newline.
    let body = body.replace("|\n|", "\n|");
    let mut messages: Vec<&str> = body.split_inclusive("\n|").collect();
    let id = |m: &str| m.find(r#""watch_id":""#).map(|at| m[at + 12..].split('"').next().unwrap_or("").to_string());
    messages.sort_by_key(|m| id(m).unwrap_or_else(|| "0".into()));
    messages.concat()
}

/// Replaces the value of every `"field":` in `body` for which `replace(value)` holds by `"*"`.
fn replace_values(body: &str, field: &str, replace: impl Fn(&str) -> bool) -> String {
    let pattern = format!("\"{field}\":");
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(&pattern) {
        let value_start = at + pattern.len();
        let value_end = value_start + value_len(&rest[value_start..]);
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..value_end];
        out.push_str(if replace(value) { "\"*\"" } else { value });
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// Sorts the elements of the array value of `"field":`.
fn sort_array(body: &str, field: &str) -> String {
    let pattern = format!("\"{field}\":[");
    let Some(at) = body.find(&pattern) else { return body.to_string() };
    let start = at + pattern.len() - 1;
    let end = start + value_len(&body[start..]);
    let inner = &body[start + 1..end - 1];
    let mut items = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        let len = value_len(&inner[i..]);
        items.push(&inner[i..i + len]);
        i += len + 1; // and the comma
    }
    items.sort();
    format!("{}[{}]{}", &body[..start], items.join(","), &body[end..])
}

/// The length of the JSON value at the start of `s` (well-formed, no whitespace).
fn value_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return i,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    bytes.len()
}

/// Checks the text walks above on a sample, so a broken normalizer fails the run instead of
/// hiding differences.
pub fn self_check() {
    let body =
        r#"{"header":{"cluster_id":"12","raft_term":"2"},"leases":[{"ID":"L1"},{"ID":"L0"}],"peerURLs":["a,b"]}"#;
    let got = replace_values(&replace_values(body, "cluster_id", |_| true), "peerURLs", |_| true);
    assert_eq!(
        got,
        r#"{"header":{"cluster_id":"*","raft_term":"2"},"leases":[{"ID":"L1"},{"ID":"L0"}],"peerURLs":"*"}"#
    );
    assert_eq!(sort_array(body, "leases"), body.replace(r#"{"ID":"L1"},{"ID":"L0"}"#, r#"{"ID":"L0"},{"ID":"L1"}"#));
}
