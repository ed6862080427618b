//! A history as JSON lines, to save a failing run and replay it later: one object a line,
//! `{"start": …}` (only for a segment that does not start from an empty store) then
//! `{"op": …}` or `{"watch": …}`. Keys and values are strings when they are UTF-8 (what tests
//! write), else arrays of bytes. Hand-written over `serde_json::Value`: the record types stay
//! free of serde.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{json, Value};

use super::record::*;

pub fn save(history: &History, path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    if history.start != Start::default() {
        let start = &history.start;
        let kvs: Vec<Value> = start.kvs.iter().map(kv_to_json).collect();
        writeln!(out, "{}", json!({ "start": { "revision": start.revision, "kvs": kvs, "leases": start.leases } }))?;
    }
    for op in &history.ops {
        writeln!(out, "{}", json!({ "op": op_to_json(op) }))?;
    }
    for watch in &history.watches {
        writeln!(out, "{}", json!({ "watch": watch_to_json(watch) }))?;
    }
    out.flush()
}

pub fn load(path: &Path) -> Result<History, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut history = History::default();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: String| format!("{}:{}: {e}", path.display(), n + 1);
        let v: Value = serde_json::from_str(&line).map_err(|e| at(e.to_string()))?;
        if let Some(start) = v.get("start") {
            history.start = start_from_json(start).map_err(at)?;
        } else if let Some(op) = v.get("op") {
            history.ops.push(op_from_json(op).map_err(at)?);
        } else if let Some(watch) = v.get("watch") {
            history.watches.push(watch_from_json(watch).map_err(at)?);
        } else {
            return Err(at("neither a start, an op nor a watch".into()));
        }
    }
    Ok(history)
}

type Parsed<T> = Result<T, String>;

fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from(b.to_vec()),
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Parsed<&'a Value> {
    v.get(name).ok_or_else(|| format!("missing {name:?} in {v}"))
}

fn int(v: &Value, name: &str) -> Parsed<i64> {
    field(v, name)?.as_i64().ok_or_else(|| format!("{name:?} is not an integer in {v}"))
}

fn flag(v: &Value, name: &str) -> Parsed<bool> {
    field(v, name)?.as_bool().ok_or_else(|| format!("{name:?} is not a boolean in {v}"))
}

fn text<'a>(v: &'a Value, name: &str) -> Parsed<&'a str> {
    field(v, name)?.as_str().ok_or_else(|| format!("{name:?} is not a string in {v}"))
}

fn list<'a>(v: &'a Value, name: &str) -> Parsed<&'a Vec<Value>> {
    field(v, name)?.as_array().ok_or_else(|| format!("{name:?} is not an array in {v}"))
}

fn bytes_of(v: &Value, name: &str) -> Parsed<Bytes> {
    match field(v, name)? {
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Array(a) => {
            a.iter().map(|b| b.as_u64().map(|b| b as u8).ok_or_else(|| format!("bad byte in {v}"))).collect()
        }
        _ => Err(format!("{name:?} is not bytes in {v}")),
    }
}

fn time(ns: u64) -> Value {
    if ns == NEVER {
        Value::Null
    } else {
        Value::from(ns)
    }
}

fn time_of(v: &Value, name: &str) -> Parsed<u64> {
    match field(v, name)? {
        Value::Null => Ok(NEVER),
        t => t.as_u64().ok_or_else(|| format!("{name:?} is not a time in {v}")),
    }
}

fn kv_to_json(kv: &Kv) -> Value {
    json!({ "key": bytes(&kv.key), "value": bytes(&kv.value), "create": kv.create_revision,
            "mod": kv.mod_revision, "version": kv.version, "lease": kv.lease })
}

fn kv_from_json(v: &Value) -> Parsed<Kv> {
    Ok(Kv {
        key: bytes_of(v, "key")?,
        value: bytes_of(v, "value")?,
        create_revision: int(v, "create")?,
        mod_revision: int(v, "mod")?,
        version: int(v, "version")?,
        lease: int(v, "lease")?,
    })
}

fn start_from_json(v: &Value) -> Parsed<Start> {
    let leases = list(v, "leases")?.iter().map(|l| l.as_i64().ok_or_else(|| format!("bad lease id in {v}")));
    Ok(Start {
        revision: int(v, "revision")?,
        kvs: list(v, "kvs")?.iter().map(kv_from_json).collect::<Parsed<_>>()?,
        leases: leases.collect::<Parsed<_>>()?,
    })
}

fn kv_op_to_json(op: &KvOp) -> Value {
    match op {
        KvOp::Put { key, value, lease } => {
            json!({ "put": { "key": bytes(key), "value": bytes(value), "lease": lease } })
        }
        KvOp::Range { key, end, limit } => json!({ "range": { "key": bytes(key), "end": bytes(end), "limit": limit } }),
        KvOp::Delete { key, end } => json!({ "delete": { "key": bytes(key), "end": bytes(end) } }),
    }
}

fn kv_op_from_json(v: &Value) -> Parsed<KvOp> {
    if let Some(p) = v.get("put") {
        Ok(KvOp::Put { key: bytes_of(p, "key")?, value: bytes_of(p, "value")?, lease: int(p, "lease")? })
    } else if let Some(r) = v.get("range") {
        Ok(KvOp::Range { key: bytes_of(r, "key")?, end: bytes_of(r, "end")?, limit: int(r, "limit")? })
    } else {
        let d = field(v, "delete")?;
        Ok(KvOp::Delete { key: bytes_of(d, "key")?, end: bytes_of(d, "end")? })
    }
}

fn compare_to_json(c: &Compare) -> Value {
    let (target, operand) = match &c.target {
        Target::Value(v) => ("value", bytes(v)),
        Target::Version(n) => ("version", Value::from(*n)),
        Target::Create(n) => ("create", Value::from(*n)),
        Target::Mod(n) => ("mod", Value::from(*n)),
        Target::Lease(n) => ("lease", Value::from(*n)),
    };
    json!({ "key": bytes(&c.key), "cmp": format!("{:?}", c.cmp), "target": target, "operand": operand })
}

fn compare_from_json(v: &Value) -> Parsed<Compare> {
    let cmp = match text(v, "cmp")? {
        "Equal" => Cmp::Equal,
        "Greater" => Cmp::Greater,
        "Less" => Cmp::Less,
        "NotEqual" => Cmp::NotEqual,
        other => return Err(format!("unknown cmp {other:?}")),
    };
    let target = match text(v, "target")? {
        "value" => Target::Value(bytes_of(v, "operand")?),
        "version" => Target::Version(int(v, "operand")?),
        "create" => Target::Create(int(v, "operand")?),
        "mod" => Target::Mod(int(v, "operand")?),
        "lease" => Target::Lease(int(v, "operand")?),
        other => return Err(format!("unknown target {other:?}")),
    };
    Ok(Compare { key: bytes_of(v, "key")?, cmp, target })
}

fn request_to_json(r: &Request) -> Value {
    let ops = |ops: &[KvOp]| Value::from(ops.iter().map(kv_op_to_json).collect::<Vec<_>>());
    match r {
        Request::Kv(op) => kv_op_to_json(op),
        Request::Txn { compares, success, failure } => json!({ "txn": {
            "compares": compares.iter().map(compare_to_json).collect::<Vec<_>>(),
            "success": ops(success), "failure": ops(failure) } }),
        Request::LeaseGrant { id, ttl } => json!({ "lease_grant": { "id": id, "ttl": ttl } }),
        Request::LeaseRevoke { id } => json!({ "lease_revoke": { "id": id } }),
        Request::LeaseKeepAlive { id } => json!({ "lease_keep_alive": { "id": id } }),
    }
}

fn request_from_json(v: &Value) -> Parsed<Request> {
    let ops = |v: &Value, name: &str| list(v, name)?.iter().map(kv_op_from_json).collect::<Parsed<Vec<_>>>();
    if let Some(t) = v.get("txn") {
        let compares = list(t, "compares")?.iter().map(compare_from_json).collect::<Parsed<_>>()?;
        Ok(Request::Txn { compares, success: ops(t, "success")?, failure: ops(t, "failure")? })
    } else if let Some(g) = v.get("lease_grant") {
        Ok(Request::LeaseGrant { id: int(g, "id")?, ttl: int(g, "ttl")? })
    } else if let Some(r) = v.get("lease_revoke") {
        Ok(Request::LeaseRevoke { id: int(r, "id")? })
    } else if let Some(k) = v.get("lease_keep_alive") {
        Ok(Request::LeaseKeepAlive { id: int(k, "id")? })
    } else {
        Ok(Request::Kv(kv_op_from_json(v)?))
    }
}

fn result_to_json(r: &KvResult) -> Value {
    match r {
        KvResult::Put => json!("put"),
        KvResult::Range { kvs, count, more } => {
            json!({ "range": { "kvs": kvs.iter().map(kv_to_json).collect::<Vec<_>>(), "count": count, "more": more } })
        }
        KvResult::Delete { deleted } => json!({ "delete": { "deleted": deleted } }),
    }
}

fn result_from_json(v: &Value) -> Parsed<KvResult> {
    if v.as_str() == Some("put") {
        Ok(KvResult::Put)
    } else if let Some(r) = v.get("range") {
        let kvs = list(r, "kvs")?.iter().map(kv_from_json).collect::<Parsed<_>>()?;
        Ok(KvResult::Range { kvs, count: int(r, "count")?, more: flag(r, "more")? })
    } else {
        Ok(KvResult::Delete { deleted: int(field(v, "delete")?, "deleted")? })
    }
}

fn response_to_json(r: &Response) -> Value {
    match r {
        Response::Kv(result) => result_to_json(result),
        Response::Txn { succeeded, results } => json!({ "txn": {
            "succeeded": succeeded, "results": results.iter().map(result_to_json).collect::<Vec<_>>() } }),
        Response::LeaseGrant => json!("lease_grant"),
        Response::LeaseRevoke => json!("lease_revoke"),
        Response::LeaseKeepAlive { ttl } => json!({ "lease_keep_alive": { "ttl": ttl } }),
        Response::Refused(Refusal::LeaseNotFound) => json!("lease_not_found"),
        Response::Refused(Refusal::LeaseExists) => json!("lease_exists"),
    }
}

fn response_from_json(v: &Value) -> Parsed<Response> {
    match v.as_str() {
        Some("lease_grant") => return Ok(Response::LeaseGrant),
        Some("lease_revoke") => return Ok(Response::LeaseRevoke),
        Some("lease_not_found") => return Ok(Response::Refused(Refusal::LeaseNotFound)),
        Some("lease_exists") => return Ok(Response::Refused(Refusal::LeaseExists)),
        _ => {}
    }
    if let Some(t) = v.get("txn") {
        let results = list(t, "results")?.iter().map(result_from_json).collect::<Parsed<_>>()?;
        Ok(Response::Txn { succeeded: flag(t, "succeeded")?, results })
    } else if let Some(k) = v.get("lease_keep_alive") {
        Ok(Response::LeaseKeepAlive { ttl: int(k, "ttl")? })
    } else {
        Ok(Response::Kv(result_from_json(v)?))
    }
}

fn op_to_json(op: &Operation) -> Value {
    let outcome = match &op.outcome {
        Outcome::Ok { revision, response } => json!({ "revision": revision, "response": response_to_json(response) }),
        Outcome::Unknown => json!("unknown"),
    };
    json!({ "client": op.client, "invoke": time(op.invoke_ns), "complete": time(op.complete_ns),
            "request": request_to_json(&op.request), "outcome": outcome })
}

fn op_from_json(v: &Value) -> Parsed<Operation> {
    let outcome = field(v, "outcome")?;
    let outcome = if outcome.as_str() == Some("unknown") {
        Outcome::Unknown
    } else {
        let revision = field(outcome, "revision")?.as_i64();
        Outcome::Ok { revision, response: response_from_json(field(outcome, "response")?)? }
    };
    Ok(Operation {
        client: int(v, "client")? as usize,
        invoke_ns: time_of(v, "invoke")?,
        complete_ns: time_of(v, "complete")?,
        request: request_from_json(field(v, "request")?)?,
        outcome,
    })
}

fn event_to_json(e: &WatchEvent) -> Value {
    let kind = if e.kind == EventKind::Put { "put" } else { "delete" };
    json!({ "kind": kind, "kv": kv_to_json(&e.kv), "prev_kv": e.prev_kv.as_ref().map(kv_to_json) })
}

fn event_from_json(v: &Value) -> Parsed<WatchEvent> {
    let kind = if text(v, "kind")? == "put" { EventKind::Put } else { EventKind::Delete };
    let prev_kv = match field(v, "prev_kv")? {
        Value::Null => None,
        prev => Some(kv_from_json(prev)?),
    };
    Ok(WatchEvent { kind, kv: kv_from_json(field(v, "kv")?)?, prev_kv })
}

fn watch_to_json(w: &WatchRecord) -> Value {
    let responses: Vec<Value> = w
        .responses
        .iter()
        .map(|r| {
            json!({ "at": r.at_ns, "revision": r.revision, "created": r.created, "canceled": r.canceled,
                    "events": r.events.iter().map(event_to_json).collect::<Vec<_>>() })
        })
        .collect();
    json!({ "client": w.client, "key": bytes(&w.key), "end": bytes(&w.end), "start_revision": w.start_revision,
            "prev_kv": w.prev_kv, "responses": responses })
}

fn watch_from_json(v: &Value) -> Parsed<WatchRecord> {
    let response = |r: &Value| -> Parsed<WatchResponse> {
        Ok(WatchResponse {
            at_ns: time_of(r, "at")?,
            revision: int(r, "revision")?,
            created: flag(r, "created")?,
            canceled: flag(r, "canceled")?,
            events: list(r, "events")?.iter().map(event_from_json).collect::<Parsed<_>>()?,
        })
    };
    Ok(WatchRecord {
        client: int(v, "client")? as usize,
        key: bytes_of(v, "key")?,
        end: bytes_of(v, "end")?,
        start_revision: int(v, "start_revision")?,
        prev_kv: flag(v, "prev_kv")?,
        responses: list(v, "responses")?.iter().map(response).collect::<Parsed<_>>()?,
    })
}
