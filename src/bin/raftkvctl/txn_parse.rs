//! etcdctl's interactive txn language: compares, then success ops, then failure ops, each
//! section ended by an empty line.

use super::*;

/// Reads a txn in etcdctl's syntax: compares, a blank line, success ops, a blank line, failure
/// ops. With `interactive`, prompts as etcdctl does.
pub(crate) fn read_txn(interactive: bool) -> Result<TxnRequest, String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut section = |prompt: &str| -> Result<Vec<String>, String> {
        if interactive {
            print!("{prompt}");
            let _ = std::io::stdout().flush();
        }
        let mut out = Vec::new();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if line.trim().is_empty() {
                break;
            }
            out.push(line);
        }
        Ok(out)
    };
    let compares = section("compares:\n")?;
    let success = section("\nsuccess requests (get, put, del):\n")?;
    let failure = section("\nfailure requests (get, put, del):\n")?;
    if interactive {
        println!();
    }
    Ok(TxnRequest {
        compare: compares.iter().map(|l| parse_compare(l)).collect::<Result<_, _>>()?,
        success: success.iter().map(|l| parse_op(l)).collect::<Result<_, _>>()?,
        failure: failure.iter().map(|l| parse_op(l)).collect::<Result<_, _>>()?,
    })
}

/// Splits a line into words, honouring double quotes with backslash escapes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut started) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                started = false;
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `mod("key") > "5"`, `value("k") = "v"`, `ver("k") < "2"`, `create("k") != "0"`, `lease("k") = "0"`.
fn parse_compare(line: &str) -> Result<Compare, String> {
    let bad = || format!("malformed comparison: {line}");
    let open = line.find('(').ok_or_else(bad)?;
    let close = line.find(')').ok_or_else(bad)?;
    let target = line[..open].trim();
    let key = words(&line[open + 1..close]).pop().ok_or_else(bad)?;
    let rest = words(&line[close + 1..]);
    let [op, value] = rest.as_slice() else { return Err(bad()) };
    let result = match op.as_str() {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(bad()),
    };
    let int = || value.parse::<i64>().map_err(|_| bad());
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(int()?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(int()?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(int()?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.clone().into_bytes())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(parse_hex_or_dec(value)?)),
        _ => return Err(bad()),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        target_union: Some(union),
        range_end: Vec::new(),
    })
}

/// `put k v`, `get k [end] [--prefix]`, `del k [end] [--prefix]`.
fn parse_op(line: &str) -> Result<RequestOp, String> {
    let w = words(line);
    let prefix = w.iter().any(|a| a == "--prefix");
    let args: Vec<&String> = w.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
    let bad = || format!("malformed request: {line}");
    let key = args.first().ok_or_else(bad)?;
    let (key, range_end) = key_range(key, args.get(1).map(|s| s.to_string()), prefix, false);
    let request = match w.first().map(String::as_str) {
        Some("put") => Request::RequestPut(PutRequest {
            key,
            value: args.get(1).ok_or_else(bad)?.as_bytes().to_vec(),
            ..Default::default()
        }),
        Some("get") => Request::RequestRange(RangeRequest { key, range_end, ..Default::default() }),
        Some("del") | Some("delete") => {
            Request::RequestDeleteRange(DeleteRangeRequest { key, range_end, ..Default::default() })
        }
        _ => return Err(bad()),
    };
    Ok(RequestOp { request: Some(request) })
}
