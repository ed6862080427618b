//! The HTTP/1.1 request parser on arbitrary byte streams (pipelined requests, chunked bodies,
//! broken heads). Must never panic; every request it takes consumes bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = raftkv::api::http1::parse_stream(data);
});
