//! etcd's gateway answers, success and error, exactly as grpc-gateway frames them: a success
//! with `Grpc-Metadata-Content-Type`; a body the gateway could not read as 400 with
//! `Content-Length`; an error from the server chunked with the gRPC trailer, its HTTP status
//! from the one code table ([`Code::http_status`]).

use crate::api::http1::Response;
use crate::error::Code;
use crate::jsonpb::msg::{ErrorBody, StreamError, StreamErrorDetail};
use crate::jsonpb::{JsonError, ToJson};

/// The headers of every successful gateway answer.
pub fn grpc_headers() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/json".into()), ("Grpc-Metadata-Content-Type", "application/grpc".into())]
}

pub fn json_response(body: String) -> Response {
    Response::Full { status: 200, headers: grpc_headers(), body: body.into_bytes() }
}

fn error_body(msg: &str, code: Code) -> Vec<u8> {
    ErrorBody { message: msg.to_string(), code: code.as_u32() as i32 }.to_body()
}

/// A stream whose request body etcd's gateway could not read: 500 with gRPC code 2.
pub fn stream_error(msg: &str) -> Response {
    Response::Full {
        status: 500,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(msg, Code::Unknown),
    }
}

/// A server stream's failure after its answer began: one message of grpc-gateway's stream
/// error shape.
pub fn stream_message_error(e: &crate::Error) -> Vec<u8> {
    let code = e.code();
    let status = code.http_status();
    let mut out = StreamError(Some(StreamErrorDetail {
        grpc_code: code.as_u32(),
        http_code: u32::from(status),
        message: e.to_string(),
        http_status: crate::api::http1::write::reason(status).to_string(),
    }))
    .to_json()
    .into_bytes();
    out.push(b'\n');
    out
}

/// A request body etcd's gateway refused before calling the server: `Content-Length`, no trailer.
pub fn decode_error(e: JsonError) -> Response {
    Response::Full {
        status: 400,
        headers: vec![("Content-Type", "application/json".into())],
        body: error_body(&e.0, Code::InvalidArgument),
    }
}

/// An error from the server itself: chunked with the gRPC trailer, as etcd's gateway sends it.
pub fn server_error(msg: &str, code: Code) -> Response {
    if !code.is_client_fault() {
        log::debug!("api: request failed: {msg}");
    }
    Response::Chunked {
        status: code.http_status(),
        headers: vec![("Content-Type", "application/json".into()), ("Trailer", "Grpc-Trailer-Content-Type".into())],
        chunks: vec![error_body(msg, code)],
        trailers: vec![("Grpc-Trailer-Content-Type", "application/grpc")],
    }
}

/// A call's answer: its JSON, or its error.
pub fn outcome(result: crate::Result<String>) -> Response {
    match result {
        Ok(json) => json_response(json),
        Err(e) => server_error(&e.to_string(), e.code()),
    }
}
