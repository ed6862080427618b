//! Fault control for tests of real `raftkv` processes: a test cannot call
//! [`crate::failpoint::set`] or [`Node::partition_from`] inside a member it runs as a child
//! process, so a member started with `RAFTKV_DEBUG_CONTROL=1` ([`crate::Config::debug_control`])
//! serves them on its client port's HTTP/1.1 gateway. The soak (`tests/it/soak/`) drives its
//! fsync stalls, failpoint crashes and partitions through them.
//!
//! - `PUT /debug/failpoints/<name>`, the body an action as `RAFTKV_FAILPOINTS` takes it
//!   (`error`, `panic`, `abort`, `sleep(ms)`, each optionally `N*`; `off` disarms):
//!   204, or 400 with the reason;
//! - `GET /debug/failpoints`: the armed points, one `name=action` a line;
//! - `PUT /debug/partition?direction=out|in|both` (both if omitted), the body comma-separated
//!   hex member ids: drops peer frames to them, from them or both, replacing any earlier
//!   partition: 204, or 400 with the reason;
//! - `DELETE /debug/partition`: heals.
//!
//! For tests only, and off by default: without the flag these paths answer 404 as every
//! unknown path does. Anyone who reaches a client port of a member with it on can stall,
//! cut off or crash that member.
//!
//! Runs on the HTTP event loop: every call is a lock and a map update.

use crate::api::http1::{plain, Request, Response};
use crate::failpoint;
use crate::transport::Direction;
use crate::Node;

const FAILPOINTS: &str = "/debug/failpoints";
const PARTITION: &str = "/debug/partition";

/// Whether `path` is one of the control paths (the router asks only when they are on).
pub fn is_control(path: &str) -> bool {
    path == FAILPOINTS || path.starts_with("/debug/failpoints/") || path == PARTITION
}

pub fn answer(node: &Node, req: &Request) -> Response {
    let body = String::from_utf8_lossy(&req.body);
    let outcome = match (req.method.as_str(), req.path.as_str()) {
        ("GET", FAILPOINTS) => return armed(),
        ("PUT", PARTITION) => partition(node, &req.query, &body),
        ("DELETE", PARTITION) => {
            node.heal_partition();
            Ok(())
        }
        ("PUT", path) if path.starts_with("/debug/failpoints/") => {
            let name = &path["/debug/failpoints/".len()..];
            failpoint::set(name, &body).inspect(|()| log::warn!("failpoint: {name} set to {}", body.trim()))
        }
        _ => return plain(405, "Method Not Allowed"),
    };
    match outcome {
        Ok(()) => Response::Full { status: 204, headers: Vec::new(), body: Vec::new() },
        Err(reason) => plain(400, &reason),
    }
}

fn armed() -> Response {
    let lines: String = failpoint::armed().into_iter().map(|(name, action)| format!("{name}={action}\n")).collect();
    Response::Full {
        status: 200,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
        body: lines.into_bytes(),
    }
}

fn partition(node: &Node, query: &str, body: &str) -> Result<(), String> {
    let direction = match query.split('&').find_map(|pair| pair.strip_prefix("direction=")) {
        None | Some("both") => Direction::Both,
        Some("out") => Direction::Out,
        Some("in") => Direction::In,
        Some(other) => return Err(format!("direction {other:?}: want out, in or both")),
    };
    let peers = body
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| u64::from_str_radix(id, 16).map_err(|_| format!("{id:?} is not a hex member id")))
        .collect::<Result<Vec<u64>, String>>()?;
    if peers.is_empty() {
        return Err("no member ids: the body lists them, comma-separated, in hex".into());
    }
    node.heal_partition();
    node.partition_from(&peers, direction);
    log::warn!("transport: test partition from {} ({direction:?})", body.trim());
    Ok(())
}
