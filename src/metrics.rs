//! The member's Prometheus registry, the constructors every module makes its metrics with,
//! and the series shared across layers (the gRPC server's, the request stages').
//!
//! Ownership: each module owns the handles of what it observes (the raft thread its fsync
//! histogram, the apply thread its commit histogram, the transport its per-peer counters, the
//! lessor its lease counters, the service its per-method gRPC children) and registers them in
//! the member's [`Registry`] when the member is wired (`server/start.rs`). A handle is an
//! `Arc` around atomics: a counter increment or a histogram observation is a few atomic
//! operations on the observing thread, with no lock and no allocation; labelled series are
//! resolved to their child once, when the observer is built, never per event.
//!
//! A scrape ([`Registry::text`]) runs on the thread serving `/metrics` (the HTTP server's
//! blocking pool): it reads the atomics, and the process collector reads `/proc/self`. It
//! never blocks the threads that observe.
//!
//! One registry per member, not the process-global one etcd uses: tests run several members in
//! one process, and each must report only its own events.

use std::time::Instant;

use prometheus::core::Collector;
pub use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// etcd's layout for disk latencies (`wal_fsync`, `backend_commit`): 1 ms .. 8.192 s.
pub fn disk_buckets() -> Vec<f64> {
    exponential(0.001, 2.0, 14)
}

/// Prometheus' `ExponentialBuckets(start, factor, count)`.
pub fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i as i32)).collect()
}

// The names, help texts and labels below are compile-time constants: an error from the
// crate's checks of them is a bug that the first start (and every test) hits at once.
const STATIC: &str = "a metric's name, help and labels are static and valid";

pub fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect(STATIC)
}

pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(prometheus::Opts::new(name, help), labels).expect(STATIC)
}

pub fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect(STATIC)
}

pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(prometheus::Opts::new(name, help), labels).expect(STATIC)
}

pub fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(prometheus::HistogramOpts::new(name, help).buckets(buckets)).expect(STATIC)
}

pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(prometheus::HistogramOpts::new(name, help).buckets(buckets), labels).expect(STATIC)
}

/// Observes the seconds since `start`.
pub fn observe_since(histogram: &Histogram, start: Instant) {
    histogram.observe(start.elapsed().as_secs_f64());
}

/// One member's metrics. Cheap to clone: clones share the registry.
#[derive(Clone, Default)]
pub struct Registry {
    inner: prometheus::Registry,
}

impl Registry {
    /// Registers `collector`'s series.
    ///
    /// # Panics
    /// When one of its names is registered already: two modules claiming one series is a bug
    /// the member's start hits every time.
    pub fn register(&self, collector: impl Collector + 'static) {
        self.inner.register(Box::new(collector)).expect("every series is registered once per member");
    }

    /// Prometheus' text exposition (format 0.0.4) of every registered series, then the process
    /// collector's.
    pub fn text(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.inner.gather(), &mut text) {
            // Not reachable with the series registered here (only a family without metrics
            // fails); a scrape then gets what was written, never a member in trouble.
            log::warn!("metrics: encoding failed: {e}");
        }
        text.push_str(&process_text());
        text
    }
}

/// gRPC's server series, as go-grpc-prometheus names them (etcd registers its interceptors'
/// with the handling-time histogram on `--metrics extensive`; raftkv always has it). Owned by
/// the member so every listener's adapters count into the same series; the service layer
/// resolves each method's children once (`service::metered`).
#[derive(Clone)]
pub struct GrpcServer {
    pub started: IntCounterVec,
    pub handled: IntCounterVec,
    pub msg_received: IntCounterVec,
    pub msg_sent: IntCounterVec,
    pub handling: HistogramVec,
    /// etcd's own byte counters of its gRPC stats handler (unary messages with their prefix).
    pub sent_bytes: IntCounter,
    pub received_bytes: IntCounter,
}

impl GrpcServer {
    pub fn new(registry: &Registry) -> GrpcServer {
        const METHOD: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];
        let grpc = GrpcServer {
            started: counter_vec("grpc_server_started_total", "Total number of RPCs started on the server.", METHOD),
            handled: counter_vec(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            msg_received: counter_vec(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                METHOD,
            ),
            msg_sent: counter_vec(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                METHOD,
            ),
            // go-grpc-prometheus' default: Prometheus' DefBuckets.
            handling: histogram_vec(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                METHOD,
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            sent_bytes: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            received_bytes: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
        };
        registry.register(grpc.started.clone());
        registry.register(grpc.handled.clone());
        registry.register(grpc.msg_received.clone());
        registry.register(grpc.msg_sent.clone());
        registry.register(grpc.handling.clone());
        registry.register(grpc.sent_bytes.clone());
        registry.register(grpc.received_bytes.clone());
        grpc
    }
}

/// Where a write spends its time (`raftkv_request_stage_duration_seconds{stage}`), each stage
/// observed by the thread that ends it; see docs/performance.md ("Request stages").
#[derive(Clone)]
pub struct Stages {
    /// From the proposer's send to the raft thread taking the request off its queue.
    pub queue: Histogram,
    /// From the first proposal of a Ready taken off the queue to the start of that Ready's
    /// persist (one observation per synced Ready).
    pub propose: Histogram,
    /// The synced raft log write of one Ready (one observation per Ready, for all its
    /// proposals).
    pub fsync: Histogram,
    /// From a Ready's entries being persisted to their commit being known here: the quorum's
    /// round trip on a leader (one observation per persisted Ready).
    pub commit: Histogram,
    /// From committed entries leaving the raft thread to their batch being written: the run
    /// loop, the apply queue and the apply itself (one observation per batch).
    pub apply: Histogram,
    /// From the apply thread's answer to the adapter encoding it on its own thread.
    pub reply: Histogram,
}

impl Stages {
    pub fn new(registry: &Registry) -> Stages {
        let stages = histogram_vec(
            "raftkv_request_stage_duration_seconds",
            "Time a write spends in each stage, queue → propose → fsync → commit → apply → reply.",
            &["stage"],
            exponential(0.0001, 2.0, 18),
        );
        registry.register(stages.clone());
        let stage = |name| stages.with_label_values(&[name]);
        Stages {
            queue: stage("queue"),
            propose: stage("propose"),
            fsync: stage("fsync"),
            commit: stage("commit"),
            apply: stage("apply"),
            reply: stage("reply"),
        }
    }
}

/// The process collector's series, as Prometheus' Go client writes them for etcd (etcdctl's
/// `check datascale` reads `process_resident_memory_bytes`), from `/proc/self`: a few reads of
/// files the crate's own collector would read through an extra dependency. A series whose
/// file cannot be read is left out rather than reported as 0.
fn process_text() -> String {
    // USER_HZ: fixed at 100 in the Linux ABI, whatever the kernel's tick.
    const TICKS: f64 = 100.0;
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let status_kib = |status: &str, field: &str| {
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse::<u64>().ok().map(|kib| kib * 1024)
    };
    let mut series: Vec<(&str, &str, &str, String)> = Vec::new();
    // /proc/self/stat: the fields after the command's closing parenthesis, from field 3 on.
    let stat = read("/proc/self/stat");
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let cpu = format!("{}", (utime + stime) / TICKS);
        series.push(("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu));
    }
    let limits = read("/proc/self/limits");
    let max_fds = limits.as_deref().and_then(|l| {
        let line = l.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..].split_whitespace().next()?.parse::<u64>().ok()
    });
    if let Some(max) = max_fds {
        series.push(("process_max_fds", "gauge", "Maximum number of open file descriptors.", max.to_string()));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // Less the one read_dir holds open.
        let open = fds.count().saturating_sub(1);
        series.push(("process_open_fds", "gauge", "Number of open file descriptors.", open.to_string()));
    }
    let status = read("/proc/self/status").unwrap_or_default();
    if let Some(rss) = status_kib(&status, "VmRSS:") {
        series.push(("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss.to_string()));
    }
    let boot =
        read("/proc/stat").and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()));
    if let (Some(boot), Some(started)) = (boot, field(22)) {
        let start = format!("{}", boot + started / TICKS);
        series.push((
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start,
        ));
    }
    if let Some(vsize) = status_kib(&status, "VmSize:") {
        series.push(("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize.to_string()));
    }
    series
        .iter()
        .map(|(name, kind, help, value)| format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_series_register_and_encode_with_etcds_layouts() {
        let registry = Registry::default();
        let grpc = GrpcServer::new(&registry);
        let stages = Stages::new(&registry);
        grpc.handling.with_label_values(&["unary", "etcdserverpb.KV", "Put"]).observe(0.2);
        stages.fsync.observe(0.003);
        let text = registry.text();
        assert!(text.contains(
            "grpc_server_handling_seconds_bucket{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\",le=\"0.25\"} 1"
        ));
        assert!(text.contains("raftkv_request_stage_duration_seconds_count{stage=\"fsync\"} 1"));
        assert!(text.contains("process_open_fds "));
        assert_eq!(disk_buckets().last(), Some(&8.192));
    }
}
