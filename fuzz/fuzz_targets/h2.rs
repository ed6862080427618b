//! The client port's HTTP/2 and gRPC on arbitrary client bytes: frames, HPACK, the stream
//! state machine, flow control, and every request message decoded as the gRPC server
//! decodes it. Must never panic or allocate beyond what the limits allow.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| raftkv::api::grpc::fuzz_one(data));
