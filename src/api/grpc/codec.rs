//! Protobuf in and out for every unary call of the service, the gRPC-only ones included: the
//! gRPC twin of the gateway's JSON codec, over the same prost types.

use prost::Message;

use crate::error::Code;
use crate::service::{self, Method};

fn decode<T: Message + Default>(message: &[u8]) -> Result<T, (Code, String)> {
    T::decode(message).map_err(|e| (Code::Internal, format!("grpc: error unmarshalling request: {e}")))
}

macro_rules! codec {
    (both: [$($both:ident),*], grpc: [$($grpc:ident),*]) => {
        codec!($($both,)* $($grpc),*);
    };
    ($($method:ident),*) => {
        pub fn decode_request(method: Method, message: &[u8]) -> Result<service::Request, (Code, String)> {
            Ok(match method {
                $(Method::$method => service::Request::$method(decode(message)?),)*
                Method::Watch | Method::LeaseKeepAlive | Method::Snapshot | Method::Observe => {
                    unreachable!("streams are not unary")
                }
            })
        }

        pub fn encode_response(response: &service::Response) -> Vec<u8> {
            match response {
                $(service::Response::$method(r) => r.encode_to_vec(),)*
            }
        }
    };
}

crate::for_each_unary!(codec);
