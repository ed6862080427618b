//! One unary gRPC call as a client, framed as grpc-go frames it (a length-prefixed message,
//! `grpc-timeout`, the status in the trailers, or in the headers of a trailers-only refusal),
//! over [`crate::api::h2::client`]: how `raftkvctl` makes the calls etcd serves over gRPC
//! only (HashKV; etcd 3.4's gateway gives its path to Hash), to raftkv and to etcd alike.
//! Blocking, on the caller's thread, one connection per call.

use std::time::Duration;

use prost::Message;

use super::{first_message, framed};
use crate::api::h2::client;
use crate::client::{Error, Result};
use crate::error::Code;
use crate::service::Method;

/// Calls `method` on `endpoint` (`host:port` or `http://host:port`) with `request`, within
/// `timeout`: the server's refusal is [`Error::Server`], anything else that fails
/// [`Error::Unreachable`].
pub fn call<Req: Message, Resp: Message + Default>(
    endpoint: &str,
    method: Method,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let unreachable = |reason: String| Error::Unreachable { endpoint: addr.to_string(), reason };
    // grpc-go's form: at most 8 digits, in the coarsest unit that holds the value exactly
    // enough; milliseconds cover every command timeout up to a day.
    let grpc_timeout = format!("{}m", timeout.as_millis().clamp(1, 99_999_999));
    let headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method.rpc().grpc),
        (":authority", addr),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", grpc_timeout.as_str()),
    ];
    let answer = client::request(addr, &headers, &framed(&request.encode_to_vec()), timeout)
        .map_err(|e| unreachable(e.to_string()))?;
    let field = |fields: &client::Fields, name: &str| {
        fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    if field(&answer.headers, ":status").as_deref() != Some("200") {
        return Err(unreachable(format!("HTTP status {:?}, not gRPC", field(&answer.headers, ":status"))));
    }
    let status = if answer.trailers.is_empty() { &answer.headers } else { &answer.trailers };
    let code = match field(status, "grpc-status") {
        Some(code) => code.parse().map(Code::from_u32).map_err(|_| unreachable(format!("grpc-status {code:?}")))?,
        None => return Err(unreachable("answer without grpc-status".into())),
    };
    if code != Code::Ok {
        let message = percent_decode(&field(status, "grpc-message").unwrap_or_default());
        return Err(Error::Server { code, message });
    }
    let message = match first_message(&answer.body, answer.body.len()) {
        Ok(Some((message, _))) => message,
        Ok(None) => return Err(unreachable("answer without its message".into())),
        Err((_, reason)) => return Err(unreachable(reason)),
    };
    Resp::decode(message).map_err(|e| unreachable(format!("undecodable answer: {e}")))
}

/// grpc-go's `decodeGrpcMessage`, the inverse of the server's `percent_encode`: `%XX` is the
/// byte XX; a `%` not followed by two hex digits stays as it is.
fn percent_decode(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_decode_as_grpc_go_encodes_them() {
        let message = "etcdserver: 100% ünïcode\n";
        assert_eq!(percent_decode(&super::super::percent_encode(message)), message);
        assert_eq!(percent_decode("a%2"), "a%2", "a cut escape stays");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
