//! etcd's health endpoints: `/health` (3.4.29's query semantics), `/livez` and `/readyz`
//! (3.4.29+/3.5's, which kubeadm's probes use), each with its per-check sub-paths; and
//! `/metrics`. The client port's gateway serves them through [`serve`], and so does
//! `--listen-metrics-urls`' listener ([`MetricsPort`]), which serves nothing else: one
//! implementation for both ports.
//!
//! - `/health`: fails on an alarm not named in `exclude`, on having no leader (skipped with
//!   `serializable=true`), or on a failed read (linearizable unless `serializable=true`).
//!   `{"health":"true"}`, or 503 `{"health":"false"}`.
//! - `/livez` runs `serializable_read`; `/readyz` runs `data_corruption`, `serializable_read`
//!   and `linearizable_read`. `exclude=<check>` skips a check (an unknown name is logged and
//!   ignored), `verbose` lists the checks on success; a failure always lists them, with 503.
//!   etcd prints the lines in Go map order; raftkv in the order above.
//!
//! Runs on the blocking pool: the reads wait for a ReadIndex round, and a scrape reads
//! RocksDB's properties and `/proc`.

use crate::api::h2;
use crate::api::http1::{self, plain, Done, Expiry, Request, Response};
use crate::pb::{AlarmType, RangeRequest};
use crate::Node;

/// Starts answering `req` if it is `/metrics` or a probe; gives it back otherwise.
pub fn serve(node: &Node, req: Request, done: Done) -> Option<(Request, Done)> {
    if req.path == "/metrics" {
        let node = node.clone();
        done.spawn_blocking(move || metrics(&node));
    } else if is_probe(&req.path) {
        let node = node.clone();
        done.spawn_blocking(move || answer(&node, &req.method, &req.path, &req.query));
    } else {
        return Some((req, done));
    }
    None
}

/// The member's series in Prometheus' text format.
fn metrics(node: &Node) -> Response {
    Response::Full {
        status: 200,
        headers: vec![("Content-Type", "text/plain; version=0.0.4".into())],
        body: node.metrics().into_bytes(),
    }
}

/// The listener of `--listen-metrics-urls` (etcd's `HandleMetricsHealth` mux): `/metrics` and
/// the probes over HTTP/1.1, Go's 404 for anything else; HTTP/2 streams are reset, as etcd's
/// plain mux speaks no gRPC.
pub struct MetricsPort {
    pub node: Node,
}

impl http1::Handler for MetricsPort {
    fn handle(&self, req: Request, done: Done) -> Option<Expiry> {
        if let Some((_, done)) = serve(&self.node, req, done) {
            done.respond(plain(404, "404 page not found"));
        }
        None
    }
}

impl h2::Handler for MetricsPort {
    fn handle(&self, _req: h2::Request, done: h2::Done) -> Option<h2::Expiry> {
        done.respond(h2::Response::Reset(h2::Reason::RefusedStream));
        None
    }
}

/// The probe paths, for the router.
pub fn is_probe(path: &str) -> bool {
    path == "/health" || probe_checks(path).is_some()
}

/// A probe's checks by path: `/livez`, `/readyz`, or one check below either.
fn probe_checks(path: &str) -> Option<(&'static [Check], bool)> {
    const LIVEZ: &[Check] = &[Check::SerializableRead];
    const READYZ: &[Check] = &[Check::DataCorruption, Check::SerializableRead, Check::LinearizableRead];
    let (root, checks): (&str, &[Check]) = if let Some(rest) = path.strip_prefix("/livez") {
        (rest, LIVEZ)
    } else {
        (path.strip_prefix("/readyz")?, READYZ)
    };
    if root.is_empty() {
        return Some((checks, true));
    }
    let name = root.strip_prefix('/')?;
    let one = checks.iter().find(|c| c.name() == name)?;
    Some((std::slice::from_ref(one), false))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    /// `Err` with etcd's reason.
    fn run(self, node: &Node) -> Result<(), String> {
        match self {
            Check::DataCorruption => match node.alarms_raised().iter().find(|a| a.alarm == AlarmType::Corrupt as i32) {
                Some(a) => Err(format!("alarm activated: {}", crate::alarm::name(a.alarm))),
                None => Ok(()),
            },
            Check::SerializableRead => read(node, true),
            Check::LinearizableRead => read(node, false),
        }
    }
}

fn read(node: &Node, serializable: bool) -> Result<(), String> {
    let probe = RangeRequest { keys_only: true, limit: 1, serializable, ..RangeRequest::key("health") };
    node.range(probe).map(|_| ()).map_err(|e| e.to_string())
}

/// Answers a probe request (`/health`, `/livez`, `/readyz` and their sub-paths).
pub fn answer(node: &Node, method: &str, path: &str, query: &str) -> Response {
    if method != "GET" {
        let mut refused = plain(405, "Method Not Allowed");
        if let Response::Full { headers, .. } = &mut refused {
            headers.push(("Allow", "GET".into()));
        }
        return refused;
    }
    let query = parse_query(query);
    if path == "/health" {
        return health(node, &query);
    }
    let Some((checks, root)) = probe_checks(path) else { return plain(404, "404 page not found") };
    let excluded: Vec<&str> = if root { values(&query, "exclude").collect() } else { Vec::new() };
    for name in &excluded {
        if !checks.iter().any(|c| c.name() == *name) {
            log::warn!("api: {path}: some health checks cannot be excluded: {name:?}");
        }
    }
    let verbose = query.iter().any(|(k, _)| k == "verbose");
    let mut lines = String::new();
    let mut failed = false;
    for check in checks.iter().filter(|c| !excluded.contains(&c.name())) {
        match check.run(node) {
            Ok(()) => lines.push_str(&format!("[+]{} ok\n", check.name())),
            Err(reason) => {
                failed = true;
                lines.push_str(&format!("[-]{} failed: {reason}\n", check.name()));
            }
        }
    }
    if failed {
        // Go's `http.Error` adds the final newline.
        return plain(503, &lines);
    }
    if !verbose {
        lines.clear();
    }
    lines.push_str("ok\n");
    Response::Full {
        status: 200,
        headers: vec![
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: lines.into_bytes(),
    }
}

/// `/health` as etcd 3.4.29 answers it.
fn health(node: &Node, query: &[(String, String)]) -> Response {
    let serializable = values(query, "serializable").next() == Some("true");
    let excluded: Vec<&str> = values(query, "exclude").collect();
    let alarmed = node.alarms_raised().iter().any(|a| !excluded.contains(&crate::alarm::name(a.alarm)));
    let healthy = !alarmed && (serializable || node.leader_id() != 0) && read(node, serializable).is_ok();
    if healthy {
        // Go sniffs the type: text/plain.
        Response::Full { status: 200, headers: Vec::new(), body: br#"{"health":"true"}"#.to_vec() }
    } else {
        plain(503, r#"{"health":"false"}"#)
    }
}

fn values<'a>(query: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    query.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Go's `url.ParseQuery`: `&`-separated pairs, `+` as space, percent escapes decoded; a pair
/// that does not decode is dropped.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_as_go_does() {
        let q = parse_query("exclude=NOSPACE&exclude=CORRUPT&serializable=true&verbose&x=%41+b&bad=%zz");
        assert_eq!(values(&q, "exclude").collect::<Vec<_>>(), ["NOSPACE", "CORRUPT"]);
        assert_eq!(values(&q, "serializable").next(), Some("true"));
        assert_eq!(values(&q, "verbose").next(), Some(""));
        assert_eq!(values(&q, "x").next(), Some("A b"));
        assert_eq!(values(&q, "bad").next(), None);
    }

    #[test]
    fn probe_paths() {
        assert!(is_probe("/livez") && is_probe("/readyz") && is_probe("/health"));
        assert!(is_probe("/readyz/linearizable_read") && is_probe("/livez/serializable_read"));
        assert!(!is_probe("/livez/linearizable_read") && !is_probe("/readyz/") && !is_probe("/health/"));
        assert_eq!(probe_checks("/readyz").map(|(c, root)| (c.len(), root)), Some((3, true)));
        assert_eq!(probe_checks("/readyz/data_corruption").map(|(c, root)| (c.len(), root)), Some((1, false)));
    }
}
