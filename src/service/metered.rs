//! The gRPC server's series for every call, counted here once for both adapters, as
//! go-grpc-prometheus' interceptors count them for etcd: `grpc_server_started_total`,
//! `grpc_server_handled_total{grpc_code}`, `grpc_server_msg_{received,sent}_total` and
//! `grpc_server_handling_seconds`, labelled `grpc_type`, `grpc_service`, `grpc_method`, and
//! etcd's `etcd_network_client_grpc_{received,sent}_bytes_total` of unary messages. A gateway
//! call counts under the gRPC method it maps to, as etcd's gateway calls its own gRPC server.
//!
//! Every method's children (the 17 codes included) are resolved once, when the member's first
//! [`Service`](super::Service) is made, so they are exposed at 0 from the start as etcd's
//! pre-registration does, and a call costs an `Arc` clone, a clock read and a few atomic adds:
//! on the adapter's thread when it starts, where its answer is made when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rpc::{Kind, Method, RPCS};
use super::Response;
use crate::error::Code;
use crate::logging::GoDuration;
use crate::metrics::{GrpcServer, Histogram, IntCounter};
use crate::Result;

/// Every method's children, by [`Method`] discriminant, and etcd's byte counters of its
/// gRPC stats handler.
pub struct Meters {
    methods: Vec<MethodMeters>,
    sent_bytes: IntCounter,
    received_bytes: IntCounter,
    /// `--experimental-warning-apply-duration`, which slow reads are held to as well.
    slow_read: Duration,
}

/// gRPC's length prefix, which etcd's byte counters include.
const PREFIX: usize = 5;

struct MethodMeters {
    started: IntCounter,
    /// By [`Code`] number.
    handled: Vec<IntCounter>,
    msg_received: IntCounter,
    msg_sent: IntCounter,
    handling: Histogram,
}

impl Meters {
    pub fn new(grpc: &GrpcServer, slow_read: Duration) -> Meters {
        let mut methods: Vec<(Method, MethodMeters)> = RPCS
            .iter()
            .map(|rpc| {
                let path = rpc.grpc.trim_start_matches('/');
                let (service, method) = path.split_once('/').expect("gRPC paths are /<service>/<method>");
                let kind = match rpc.kind {
                    Kind::Unary => "unary",
                    Kind::Bidi => "bidi_stream",
                    Kind::ServerStream => "server_stream",
                };
                let labels = [kind, service, method];
                let handled = Code::ALL
                    .iter()
                    .map(|code| grpc.handled.with_label_values(&[kind, service, method, code.name()]))
                    .collect();
                let meters = MethodMeters {
                    started: grpc.started.with_label_values(&labels),
                    handled,
                    msg_received: grpc.msg_received.with_label_values(&labels),
                    msg_sent: grpc.msg_sent.with_label_values(&labels),
                    handling: grpc.handling.with_label_values(&labels),
                };
                (rpc.method, meters)
            })
            .collect();
        methods.sort_by_key(|(method, _)| *method as usize);
        // Indexed by discriminant below: a method missing from the table would shift the rest.
        assert!(methods.iter().enumerate().all(|(i, (m, _))| *m as usize == i), "RPCS lists every method once");
        Meters {
            methods: methods.into_iter().map(|(_, m)| m).collect(),
            sent_bytes: grpc.sent_bytes.clone(),
            received_bytes: grpc.received_bytes.clone(),
            slow_read,
        }
    }

    /// A call of `method` starts now; its request message is in.
    pub fn start(self: &Arc<Self>, method: Method) -> Call {
        let index = method as usize;
        let m = &self.methods[index];
        m.started.inc();
        let unary = method.rpc().kind == Kind::Unary;
        if unary {
            m.msg_received.inc();
        }
        let dropped_as = if unary { Code::Unavailable } else { Code::Canceled };
        Call { meters: self.clone(), index, started: Instant::now(), ended: false, dropped_as }
    }
}

/// A call in progress, counted as handled and timed when it ends. One dropped before it ended
/// was given up: a unary call the adapter answered from its expiry (the request timeout or the
/// client's deadline), whose own answer was forgotten, counts as `Unavailable`, etcd's code
/// for `request timed out`; a stream the client reset or left counts as `Canceled`, as
/// grpc-go reports a cancelled stream.
pub struct Call {
    meters: Arc<Meters>,
    index: usize,
    started: Instant,
    ended: bool,
    dropped_as: Code,
}

impl Call {
    /// A unary call ends with `outcome`, handed on unchanged.
    pub fn unary_done(mut self, outcome: Result<Response>) -> Result<Response> {
        let code = match &outcome {
            Ok(response) => {
                let size = response.encoded_len();
                self.meters.methods[self.index].msg_sent.inc();
                self.meters.sent_bytes.inc_by((size + PREFIX) as u64);
                if let Response::Range(range) = response {
                    self.warn_if_slow_read(range.kvs.len(), range.count, size);
                }
                Code::Ok
            }
            Err(e) => e.code(),
        };
        self.finish(code);
        outcome
    }

    /// etcd's `warnOfExpensiveReadOnlyRangeRequest`: a range that took longer than the apply
    /// warning duration, the read barrier included, is logged with etcd's words and fields.
    fn warn_if_slow_read(&self, kvs: usize, count: i64, size: usize) {
        let (took, expected) = (self.started.elapsed(), self.meters.slow_read);
        if took > expected {
            log::warn!(
                took:% = GoDuration(took), "expected-duration":% = GoDuration(expected), prefix = "read-only range ",
                response = format!("range_response_count:{kvs} count:{count} size:{size}");
                "apply request took too long"
            );
        }
    }

    /// A unary call's request message, of `len` protobuf bytes.
    pub fn received_bytes(&self, len: usize) {
        self.meters.received_bytes.inc_by((len + PREFIX) as u64);
    }

    /// A stream's message from the client.
    pub fn received(&self) {
        self.meters.methods[self.index].msg_received.inc();
    }

    /// A stream's messages to the client: a handle for the threads that send them (the apply
    /// and watch-sync threads for a watch).
    pub fn sent(&self) -> IntCounter {
        self.meters.methods[self.index].msg_sent.clone()
    }

    /// The call ends with `code`.
    pub fn end(mut self, code: Code) {
        self.finish(code);
    }

    fn finish(&mut self, code: Code) {
        self.ended = true;
        let m = &self.meters.methods[self.index];
        m.handled[code as usize].inc();
        crate::metrics::observe_since(&m.handling, self.started);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(self.dropped_as);
        }
    }
}
