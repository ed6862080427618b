//! `/metrics` under etcd's names on the client port and on `--listen-metrics-urls`, which
//! also serves the probes and nothing else. What the series are worth under faults is
//! `mixin.rs`'s test.

use raftkv::embed;

use crate::harness::{config, http, init_logs};

const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn the_metrics_port_serves_etcds_series_and_the_probes_only() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.listen_client_urls = vec!["http://127.0.0.1:0".into()];
    cfg.listen_metrics_urls = vec!["http://127.0.0.1:0".into()];
    let member = embed::Member::start(cfg).expect("start member");
    let (client, metrics) = (member.client_addrs()[0], member.metrics_addrs()[0]);
    assert_eq!(http::post(client, "/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#).status, 200);
    assert_eq!(http::post(client, "/v3/kv/range", r#"{"key":"YQ==","revision":99}"#).status, 400);
    let grant = http::post(client, "/v3/lease/grant", r#"{"TTL":60}"#);
    let id = serde_json::from_str::<serde_json::Value>(&grant.text()).unwrap()["ID"].as_str().unwrap().to_string();
    // A gateway stream counts under its gRPC method too.
    assert_eq!(http::post(client, "/v3/lease/keepalive", &format!(r#"{{"ID":"{id}"}}"#)).status, 200);

    let text = http::send(metrics, GET_METRICS).text();
    for series in [
        "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"}",
        "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"}",
        "etcd_disk_backend_commit_duration_seconds_bucket{le=\"8.192\"}",
        "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1",
        "grpc_server_handled_total{grpc_code=\"OutOfRange\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1",
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 0",
        "grpc_server_msg_sent_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 0",
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 1",
        "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 1",
        "grpc_server_msg_sent_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 1",
        "etcd_debugging_lease_renewed_total 1",
        "grpc_server_handling_seconds_bucket{grpc_method=\"LeaseGrant\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"unary\",le=\"10\"} 1",
        "etcd_server_leader_changes_seen_total 1",
        "etcd_server_is_leader 1",
        "etcd_server_has_leader 1",
        "etcd_server_is_learner 0",
        "etcd_server_proposals_pending 0",
        "etcd_server_proposals_failed_total 0",
        "etcd_server_version{server_version=\"3.4.23\"} 1",
        "etcd_cluster_version{cluster_version=\"3.4\"} 1",
        "etcd_mvcc_put_total 1",
        "etcd_mvcc_range_total 1",
        "etcd_debugging_lease_granted_total 1",
        "etcd_server_slow_apply_total 0",
        "etcd_server_heartbeat_send_failures_total 0",
        "etcd_server_slow_read_indexes_total 0",
        "raftkv_request_stage_duration_seconds_count{stage=\"apply\"}",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(series)), "no {series} in\n{text}");
    }
    // The gateway's unary calls as etcd counts them (they reach its gRPC server): a put of
    // "a" = "b" is 6 protobuf bytes and gRPC's 5-byte prefix, as a real etcd reports it.
    let bytes = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap();
    assert_eq!(bytes("etcd_network_client_grpc_received_bytes_total "), 11 + 10 + 7, "put, range, grant");
    assert!(bytes("etcd_network_client_grpc_sent_bytes_total ") > 3 * 5);
    let id = format!("etcd_server_id{{server_id=\"{:x}\"}} 1", member.node().member_id());
    assert!(text.contains(&id), "{id}");
    assert!(text.contains("# TYPE etcd_server_quota_backend_bytes gauge"));
    assert!(text.contains("# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge"));
    // The client port serves the same registry.
    assert!(http::send(client, GET_METRICS).text().contains("etcd_mvcc_put_total 1"));

    let get = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        http::send(metrics, raw.as_bytes())
    };
    assert_eq!(get("/health").text(), r#"{"health":"true"}"#);
    assert_eq!((get("/livez").status, get("/readyz").status), (200, 200));
    assert_eq!(
        get("/readyz?verbose").text(),
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
    );
    let not_served = http::post(metrics, "/v3/kv/range", r#"{"key":"YQ=="}"#);
    assert_eq!((not_served.status, not_served.text().as_str()), (404, "404 page not found\n"));
    member.stop().unwrap();
}
