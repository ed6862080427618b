//! The gateway's JSON reader on arbitrary bodies: every request type, streams, and a write/read
//! round trip of whatever decoded. Must never panic, recurse without bound or allocate beyond
//! the input's size.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| raftkv::jsonpb::fuzz_one(data));
