//! The JSON gateway over real sockets: every endpoint, etcd's wire format, and every class of
//! malformed input, with the answers etcd 3.4 gives (../shared/etcd/transcript.md).

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::http::Conn;
use crate::harness::{eventually, Gateway};
use raftkv::api::net::{Handlers, HttpServer};

fn error(msg: &str, code: u32) -> String {
    format!(r#"{{"error":"{msg}","message":"{msg}","code":{code}}}"#)
}

/// The response body with run-specific header fields removed.
/// `body` with its response header (first object field) replaced by `H`.
fn without_header(body: &str) -> String {
    match (body.find(r#""header":{"#), body.find('}')) {
        (Some(start), Some(end)) if start < end => format!("{}H{}", &body[..start], &body[end + 1..]),
        _ => body.to_string(),
    }
}

fn strip_ids(body: &str) -> String {
    let mut s = body.to_string();
    for field in ["cluster_id", "member_id", "raft_term"] {
        let pattern = format!("\"{field}\":\"");
        while let Some(start) = s.find(&pattern) {
            let value_end = start + pattern.len() + s[start + pattern.len()..].find('"').unwrap() + 1;
            s.replace_range(start..value_end, "");
        }
    }
    while s.contains(",,") {
        s = s.replace(",,", ",");
    }
    s.replace("{,", "{").replace(",}", "}")
}

#[test]
fn kv_endpoints_speak_etcds_json() {
    let gw = Gateway::start();
    let r = gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Grpc-Metadata-Content-Type"), Some("application/grpc"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(strip_ids(&r.text()), r#"{"header":{"revision":"2"}}"#);
    assert!(r.text().contains(&format!("\"member_id\":\"{}\"", gw.node.member_id())));

    let r = gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFyMg==","prev_kv":true}"#);
    assert_eq!(
        strip_ids(&r.text()),
        r#"{"header":{"revision":"3"},"prev_kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}"#
    );
    let r = gw.post("/v3/kv/range", r#"{"key":"Zm9v"}"#);
    assert_eq!(
        strip_ids(&r.text()),
        r#"{"header":{"revision":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFyMg=="}],"count":"1"}"#
    );
    // Missing key: kvs and count omitted.
    assert_eq!(
        strip_ids(&gw.post("/v3/kv/range", r#"{"key":"bWlzc2luZw=="}"#).text()),
        r#"{"header":{"revision":"3"}}"#
    );
    // Numbers and enums either way; /v3beta is an alias.
    gw.post("/v3/kv/put", r#"{"key":"YQ==","value":"YmFy"}"#);
    let r = gw.post(
        "/v3beta/kv/range",
        r#"{"key":"AA==","range_end":"AA==","limit":1,"sort_order":"DESCEND","sort_target":0}"#,
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains(r#""kvs":[{"key":"Zm9v""#) && r.text().contains(r#""more":true"#), "{}", r.text());
    let r = gw.post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFyMg=="}],"success":[{"request_put":{"key":"Zm9v","value":"dHhu"}},{"request_range":{"key":"Zm9v","keys_only":true}}]}"#,
    );
    assert_eq!(
        strip_ids(&r.text()),
        r#"{"header":{"revision":"5"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"5"}}},{"response_range":{"header":{"revision":"5"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"5","version":"3"}],"count":"1"}}]}"#
    );
    let r = gw.post("/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#);
    assert!(
        strip_ids(&r.text()).starts_with(r#"{"header":{"revision":"6"},"deleted":"1","prev_kvs":[{"key":"Zm9v""#),
        "{}",
        r.text()
    );
    let r = gw.post("/v3/kv/compaction", r#"{"revision":"5"}"#);
    assert_eq!(strip_ids(&r.text()), r#"{"header":{"revision":"6"}}"#);
}

#[test]
fn etcd_errors_have_etcds_status_body_and_trailer() {
    let gw = Gateway::start();
    let r = gw.post("/v3/kv/range", "");
    assert_eq!((r.status, r.text().as_str()), (400, error("etcdserver: key is not provided", 3).as_str()));
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.header("Trailer"), Some("Grpc-Trailer-Content-Type"));
    assert_eq!(r.trailers, vec![("Grpc-Trailer-Content-Type".to_string(), "application/grpc".to_string())]);
    let r = gw.post("/v3/kv/put", r#"{"key":"Zm9v","lease":123456789}"#);
    assert_eq!((r.status, r.text()), (404, error("etcdserver: requested lease not found", 5)));
    let r = gw.post("/v3/kv/range", r#"{"key":"Zm9v","revision":"9223372036854775807"}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: mvcc: required revision is a future revision", 11)));
    let r = gw.post("/v3/kv/put", r#"{"key":"bm9rZXk=","ignore_value":true}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: key not found", 3)));
    let many: Vec<String> = (0..129)
        .map(|i| format!(r#"{{"request_put":{{"key":"{}","value":"eA=="}}}}"#, b64(&format!("t{i}"))))
        .collect();
    let r = gw.post("/v3/kv/txn", &format!(r#"{{"success":[{}]}}"#, many.join(",")));
    assert_eq!((r.status, r.text()), (400, error("etcdserver: too many operations in txn request", 3)));
}

fn b64(s: &str) -> String {
    let mut w = raftkv::jsonpb::Writer::default();
    w.begin_object();
    w.bytes("k", s.as_bytes());
    w.end_object();
    let out = w.finish();
    out[6..out.len() - 2].to_string()
}

#[test]
fn malformed_bodies_get_gos_messages() {
    let gw = Gateway::start();
    let cases = [
        ("/v3/kv/put", r#"{"key":"#, "unexpected EOF"),
        ("/v3/kv/put", "not json", "invalid character 'o' in literal null (expecting 'u')"),
        ("/v3/kv/put", "[]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        ("/v3/kv/put", r#"{"key":"!!!","value":"YmFy"}"#, "illegal base64 data at input byte 0"),
        ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy="}"#, "illegal base64 data at input byte 4"),
        ("/v3/kv/put", r#"{"key":"Zm8","value":"YmFy"}"#, "illegal base64 data at input byte 0"),
        ("/v3/kv/put", r#"{"key":"-_-_","value":"YmFy"}"#, "illegal base64 data at input byte 0"),
        (
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"dQ==","prev_kv":"true"}"#,
            "json: cannot unmarshal string into Go value of type bool",
        ),
        ("/v3/kv/range", r#"{"key":"Zm9v","limit":"abc"}"#, "invalid character 'a' looking for beginning of value"),
        (
            "/v3/kv/range",
            r#"{"key":"Zm9v","limit":1.5}"#,
            "json: cannot unmarshal number 1.5 into Go value of type int64",
        ),
        (
            "/v3/kv/range",
            r#"{"key":"Zm9v","revision":"9223372036854775808"}"#,
            "json: cannot unmarshal number 9223372036854775808 into Go value of type int64",
        ),
        (
            "/v3/kv/range",
            r#"{"key":"YS8=","sort_order":"SIDEWAYS"}"#,
            r#"unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder"#,
        ),
    ];
    for (path, body, msg) in cases {
        let r = gw.post(path, body);
        assert_eq!((r.status, r.text().as_str()), (400, error(msg, 3).as_str()), "body {body}");
        assert!(r.header("Content-Length").is_some(), "decode errors are not chunked");
    }
    // Lenient parts: unknown fields, duplicate keys (last wins), newline in base64, query string.
    assert_eq!(gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"dQ==","valu":"x","nosuchfield":1}"#).status, 200);
    let r = gw.post("/v3/kv/range?x=1", r#"{"key":"eA==","key":"Zm9v\n"}"#);
    assert!(r.text().contains(r#""value":"dQ==""#), "{}", r.text());
}

#[test]
fn http_level_behaviour_matches_go() {
    let gw = Gateway::start();
    let r = gw.send(b"GET /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (405, "Method Not Allowed\n"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(
        (gw.post("/v3/kv/nosuch", "{}").status, gw.post("/v3/kv/nosuch", "{}").text()),
        (404, "Not Found\n".into())
    );
    assert_eq!(gw.post("/v3/kv/range/", "{}").status, 404);
    assert_eq!(gw.post("/v3alpha/kv/range", "{}").text(), "404 page not found\n");
    let r = gw.send(b"OPTIONS /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("0")));
    assert_eq!(r.header("Access-Control-Allow-Methods"), Some("POST, GET, OPTIONS, PUT, DELETE"));
    let r = gw.send(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.text(), r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#);
    // Healthy once it has a leader (its first election may outlast the gateway's start).
    let health = || gw.send(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while health().status != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = health();
    assert_eq!(
        (r.text().as_str(), r.header("Content-Type")),
        (r#"{"health":"true"}"#, Some("text/plain; charset=utf-8"))
    );
    // HTTP/1.0 answers in kind and closes.
    let r = gw.send(b"POST /v3/kv/range HTTP/1.0\r\nContent-Length: 14\r\n\r\n{\"key\":\"Zm9v\"}");
    assert_eq!((r.status, r.header("Connection")), (200, None));
    // Chunked request bodies and Expect: 100-continue.
    let mut conn = Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
    conn.write(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(conn.line().unwrap(), "HTTP/1.1 100 Continue");
    assert_eq!(conn.line().unwrap(), "");
    let (first, second) = (r#"{"key":"#, r#""Y2g=","value":"eA=="}"#);
    let chunks = format!("{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n", first.len(), second.len());
    conn.write(chunks.as_bytes()).unwrap();
    assert_eq!(conn.read_reply().unwrap().status, 200);
}

#[test]
fn keep_alive_pipelining_and_hangups() {
    let gw = Gateway::start();
    let mut conn = Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
    let body = r#"{"key":"YQ==","value":"MQ=="}"#;
    let one = format!("POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    // Two requests in one write: both are answered, in order, on the same connection.
    conn.write(format!("{one}{one}").as_bytes()).unwrap();
    let (a, b) = (conn.read_reply().unwrap(), conn.read_reply().unwrap());
    assert!(a.text().contains(r#""revision":"2""#) && b.text().contains(r#""revision":"3""#), "{a:?} {b:?}");
    assert_eq!(a.header("Connection"), None, "keep-alive is the default");
    // A client that hangs up mid-body or mid-head does not disturb the server.
    for partial in
        ["POST /v3/kv/put HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"key\"", "POST /v3/kv/put HTTP/1.1\r\nHost"]
    {
        let mut c = Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
        c.write(partial.as_bytes()).unwrap();
        drop(c);
    }
    conn.write(one.as_bytes()).unwrap();
    assert!(conn.read_reply().unwrap().text().contains(r#""revision":"4""#));
}

#[test]
fn lease_endpoints_and_the_keepalive_stream() {
    let gw = Gateway::start();
    let r = gw.post("/v3/lease/grant", r#"{"TTL":60,"ID":"7587869061213437000"}"#);
    assert_eq!(strip_ids(&r.text()), r#"{"header":{"revision":"1"},"ID":"7587869061213437000","TTL":"60"}"#);
    let r = gw.post("/v3/lease/grant", r#"{"TTL":"60","ID":"7587869061213437000"}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: lease already exists", 9)));
    let r = gw.post("/v3/kv/put", r#"{"key":"bGVhc2Vk","value":"dg==","lease":"7587869061213437000"}"#);
    assert_eq!(r.status, 200);
    let r = gw.post("/v3/kv/lease/timetolive", r#"{"ID":"7587869061213437000","keys":true}"#);
    assert!(r.text().contains(r#""grantedTTL":"60","keys":["bGVhc2Vk"]"#), "{}", r.text());
    let r = gw.post("/v3/lease/timetolive", r#"{"ID":"999"}"#);
    assert!(strip_ids(&r.text()).ends_with(r#""ID":"999","TTL":"-1"}"#), "{}", r.text());
    // Two request objects in one body: two result messages, one chunk each, then the end.
    let r = gw.post("/v3/lease/keepalive", "{\"ID\":\"7587869061213437000\"}\n{\"ID\": \"999\"}");
    assert_eq!((r.status, r.header("Transfer-Encoding")), (200, Some("chunked")));
    let lines: Vec<String> = r.text().lines().map(strip_ids).collect();
    assert_eq!(
        lines,
        vec![
            r#"{"result":{"header":{"revision":"2"},"ID":"7587869061213437000","TTL":"60"}}"#.to_string(),
            r#"{"result":{"header":{"revision":"2"},"ID":"999"}}"#.to_string(),
        ]
    );
    let r = gw.post("/v3/lease/keepalive", r#"{"ID":"#);
    assert_eq!((r.status, r.text()), (500, error("unexpected EOF", 2)));
    let r = gw.post("/v3/lease/leases", "{}");
    assert!(r.text().contains(r#""leases":[{"ID":"7587869061213437000"}]"#), "{}", r.text());
    let r = gw.post("/v3/kv/lease/revoke", r#"{"ID":"7587869061213437000"}"#);
    assert_eq!(strip_ids(&r.text()), r#"{"header":{"revision":"3"}}"#);
    let r = gw.post("/v3/lease/revoke", "{}");
    assert_eq!((r.status, r.text()), (404, error("etcdserver: requested lease not found", 5)));
}

#[test]
fn oversize_requests() {
    let gw = Gateway::start();
    // 1.6 MB value: over --max-request-bytes, under the 2 MiB gRPC limit.
    let value = b64(&"x".repeat(1_600_000));
    let r = gw.post("/v3/kv/put", &format!(r#"{{"key":"Zm9v","value":"{value}"}}"#));
    assert_eq!((r.status, r.text()), (400, error("etcdserver: request is too large", 3)));
    let value = b64(&"x".repeat(2 * 1024 * 1024));
    let r = gw.post("/v3/kv/put", &format!(r#"{{"key":"Zm9v","value":"{value}"}}"#));
    assert_eq!((r.status, r.text()), (429, error("grpc: received message larger than max (2097162 vs. 2097152)", 8)));
    // Beyond any sane request the body is not even read.
    let r = gw.send(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n");
    assert_eq!(r.status, 413);
}

#[test]
fn status_member_list_hash_alarm_defragment() {
    let gw = Gateway::start();
    gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    let r = gw.post("/v3/maintenance/status", "{}");
    assert_eq!(r.status, 200);
    for field in
        [r#""version":"3.4.23""#, r#""dbSize":""#, r#""leader":""#, r#""raftIndex":""#, r#""raftAppliedIndex":""#]
    {
        assert!(r.text().contains(field), "{field} missing in {}", r.text());
    }
    let r = gw.post("/v3/cluster/member/list", "{}");
    assert!(!r.text().contains("revision"), "member list headers carry no revision: {}", r.text());
    assert!(r.text().contains(r#""peerURLs":["http://localhost:2380"]"#), "{}", r.text());
    let h1 = gw.post("/v3/maintenance/hash", "{}").text();
    let h2 = gw.post("/v3/maintenance/hash", r#"{"revision":"0"}"#).text();
    assert!(h1.contains(r#""hash":"#) && h1 == h2, "{h1} {h2}");
    gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmF6"}"#);
    assert_ne!(gw.post("/v3/maintenance/hash", "{}").text(), h1, "the hash follows the data");
    assert_eq!(gw.post("/v3/maintenance/alarm", r#"{"action":"GET"}"#).text(), "{}");
    assert_eq!(gw.post("/v3/maintenance/defragment", "{}").text(), "{}");
    // Auth is disabled: authenticate fails like etcd (400 as upstream etcd), lists are empty.
    let r = gw.post("/v3/auth/authenticate", r#"{"name":"root","password":"x"}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: authentication is not enabled", 9)));
    assert!(strip_ids(&gw.post("/v3/auth/user/list", "{}").text()).starts_with(r#"{"header":{"revision":""#));
}

#[test]
fn auth_calls_answer_as_etcd_does_with_auth_disabled() {
    let gw = Gateway::start();
    // etcd 3.4.23's answers on a fresh member (statuses as upstream etcd: 400 for code 9).
    let user_missing = error("etcdserver: user name not found", 9);
    let role_missing = error("etcdserver: role name not found", 9);
    let cases = [
        ("auth/enable", "{}", 400, error("etcdserver: root user does not exist", 9)),
        ("auth/disable", "{}", 200, r#"{"header":{"revision":"1"}}"#.to_string()),
        ("auth/user/add", r#"{"password":"x"}"#, 400, error("etcdserver: user name is empty", 3)),
        ("auth/user/get", r#"{"name":"nobody"}"#, 400, user_missing.clone()),
        ("auth/user/list", "{}", 200, r#"{"header":{"revision":"1"}}"#.to_string()),
        ("auth/user/delete", r#"{"name":"x"}"#, 400, user_missing.clone()),
        ("auth/user/changepw", r#"{"name":"x","password":"y"}"#, 400, user_missing.clone()),
        ("auth/user/grant", r#"{"user":"x","role":"root"}"#, 400, user_missing.clone()),
        ("auth/user/revoke", r#"{"name":"x","role":"r"}"#, 400, user_missing),
        ("auth/role/add", "{}", 400, error("etcdserver: role name is empty", 3)),
        ("auth/role/get", r#"{"role":"root"}"#, 400, role_missing.clone()),
        ("auth/role/list", "{}", 200, r#"{"header":{"revision":"1"}}"#.to_string()),
        ("auth/role/delete", r#"{"role":"x"}"#, 400, role_missing.clone()),
        ("auth/role/grant", r#"{"name":"x","perm":{"permType":"READWRITE","key":"YQ=="}}"#, 400, role_missing.clone()),
        ("auth/role/revoke", r#"{"role":"x","key":"YQ==","range_end":"Yg=="}"#, 400, role_missing),
    ];
    for (path, body, status, want) in cases {
        let r = gw.post(&format!("/v3/{path}"), body);
        assert_eq!((r.status, strip_ids(&r.text())), (status, want), "{path} {body}");
    }
    // Users and roles are stored: etcd 3.4.23's answers to the same steps.
    let steps = [
        ("auth/user/add", r#"{"name":"a","password":"b"}"#, 200, "{H}".to_string()),
        ("auth/user/add", r#"{"name":"a","password":"b"}"#, 400, error("etcdserver: user name already exists", 9)),
        ("auth/role/add", r#"{"name":"r"}"#, 200, "{H}".to_string()),
        (
            "auth/role/grant",
            r#"{"name":"r","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}"#,
            200,
            "{H}".into(),
        ),
        ("auth/role/grant", r#"{"name":"r","perm":{"key":"eA=="}}"#, 200, "{H}".to_string()),
        (
            "auth/role/get",
            r#"{"role":"r"}"#,
            200,
            r#"{H,"perm":[{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="},{"key":"eA=="}]}"#.to_string(),
        ),
        ("auth/user/grant", r#"{"user":"a","role":"r"}"#, 200, "{H}".to_string()),
        ("auth/user/get", r#"{"name":"a"}"#, 200, r#"{H,"roles":["r"]}"#.to_string()),
        ("auth/user/list", "{}", 200, r#"{H,"users":["a"]}"#.to_string()),
        ("auth/role/list", "{}", 200, r#"{H,"roles":["r"]}"#.to_string()),
        (
            "auth/user/revoke",
            r#"{"name":"a","role":"x"}"#,
            400,
            error("etcdserver: role is not granted to the user", 9),
        ),
        (
            "auth/role/revoke",
            r#"{"role":"r","key":"eQ=="}"#,
            400,
            error("etcdserver: permission is not granted to the role", 9),
        ),
        ("auth/role/add", r#"{"name":"r"}"#, 400, error("etcdserver: role name already exists", 9)),
        ("auth/user/add", r#"{"name":"root","password":"b"}"#, 200, "{H}".to_string()),
        ("auth/enable", "{}", 400, error("etcdserver: root user does not have root role", 9)),
        ("auth/user/changepw", r#"{"name":"a","password":"c"}"#, 200, "{H}".to_string()),
        ("auth/role/delete", r#"{"role":"r"}"#, 200, "{H}".to_string()),
        ("auth/user/get", r#"{"name":"a"}"#, 200, "{H}".to_string()),
        ("auth/role/grant", r#"{"name":"a"}"#, 400, error("etcdserver: role name not found", 9)),
        ("auth/role/add", r#"{"name":"p"}"#, 200, "{H}".to_string()),
        // etcd 3.4.23 crashes here, and again on every restart while the entry is in its log;
        // this is etcd 3.5's answer.
        ("auth/role/grant", r#"{"name":"p"}"#, 400, error("etcdserver: permission not given", 3)),
    ];
    for (path, body, status, want) in steps {
        let r = gw.post(&format!("/v3/{path}"), body);
        assert_eq!((r.status, without_header(&r.text())), (status, want), "{path} {body}");
    }
    // With root holding the root role, auth is enabled (tests/it/auth.rs goes on from there).
    gw.post("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#);
    let r = gw.post("/v3/auth/enable", "{}");
    assert_eq!((r.status, without_header(&r.text())), (200, "{H}".to_string()));
    // jsonpb's enum rule on the permission.
    let r = gw.post("/v3/auth/role/grant", r#"{"name":"x","perm":{"permType":"ALL"}}"#);
    assert_eq!((r.status, r.text()), (400, error(r#"unknown value \"ALL\" for enum authpb.Permission_Type"#, 3)));
}

#[test]
fn grpc_only_calls_have_no_gateway_path() {
    let gw = Gateway::start();
    // etcd 3.4.23: HashKV's path is Hash's, where Hash wins, and `hashkv` is 3.5.10's.
    for path in ["/v3/maintenance/hashkv", "/v3/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Check"] {
        assert_eq!(gw.post(path, "{}").status, 404, "{path}");
    }
    assert!(!gw.post("/v3/maintenance/hash", r#"{"revision":"1"}"#).text().contains("compact_revision"));
}

/// No HTTP/2 in these tests: every stream is refused.
struct NoH2;

impl raftkv::api::h2::Handler for NoH2 {
    fn handle(&self, _: raftkv::api::h2::Request, done: raftkv::api::h2::Done) -> Option<raftkv::api::h2::Expiry> {
        done.respond(raftkv::api::h2::Response::Reset(raftkv::api::h2::Reason::RefusedStream));
        None
    }
}

/// An HTTP server on a free port with `handler` for HTTP/1.1.
fn serve(handler: std::sync::Arc<dyn raftkv::api::http1::Handler>) -> HttpServer {
    let handlers = Handlers { http1: handler, h2: std::sync::Arc::new(NoH2) };
    HttpServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), handlers, None).unwrap()
}

/// A handler that streams whatever the test feeds it.
struct Streamer {
    feed: parking_lot::Mutex<Option<crossbeam::channel::Receiver<Vec<u8>>>>,
}

impl raftkv::api::http1::Handler for Streamer {
    fn handle(
        &self,
        _: raftkv::api::http1::Request,
        done: raftkv::api::http1::Done,
    ) -> Option<raftkv::api::http1::Expiry> {
        let messages = self.feed.lock().take().expect("one stream per test");
        done.respond(raftkv::api::http1::Response::Stream {
            status: 200,
            headers: vec![("Content-Type", "application/json".into())],
            messages,
            on_close: None,
        });
        None
    }
}

#[test]
fn streams_flush_one_chunk_per_message_and_notice_hangups() {
    let (tx, rx) = crossbeam::channel::unbounded::<Vec<u8>>();
    let handler = std::sync::Arc::new(Streamer { feed: parking_lot::Mutex::new(Some(rx)) });
    let mut server = serve(handler);
    let mut conn = Conn::open(server.local_addr(), Duration::from_secs(10)).unwrap();
    conn.request("POST", "/v3/watch", &[], b"{}").unwrap();
    tx.send(b"{\"result\":1}\n".to_vec()).unwrap();
    // The first message brings the head with it, and arrives while the stream is still open.
    let mut reply = conn.read_head().unwrap();
    assert_eq!((reply.status, reply.chunked), (200, true));
    assert_eq!(conn.read_chunk(&mut reply).unwrap().unwrap(), b"{\"result\":1}\n");
    tx.send(b"{\"result\":2}\n".to_vec()).unwrap();
    assert_eq!(conn.read_chunk(&mut reply).unwrap().unwrap(), b"{\"result\":2}\n");
    // The client hangs up: the server drops the stream, so the producer learns it at once.
    drop(conn);
    assert!(eventually(Duration::from_secs(5), || tx.send(b"x".to_vec()).is_err()), "the hang-up was not noticed");
    server.stop();
}

#[test]
fn every_open_keep_alive_connection_is_served() {
    let gw = Gateway::start();
    // Many clients connect at once and keep their connections (as wrk and gateway clients
    // do): none may be left queued behind workers busy with the others' idle connections.
    let mut conns: Vec<Conn> = (0..32).map(|_| Conn::open(gw.addr(), Duration::from_secs(5)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for conn in conns.iter_mut().rev() {
        conn.request("POST", "/v3/kv/range", &[], br#"{"key":"Zm9v"}"#).unwrap();
    }
    for conn in conns.iter_mut() {
        let reply = conn.read_reply().unwrap();
        assert_eq!(reply.status, 200);
    }
}

/// Holds every request's answer for the test to give; `/short` ones expire after 100 ms and
/// `/answered` ones after 400 ms with 504, the rest after a minute.
#[derive(Default)]
struct Holder {
    held: parking_lot::Mutex<Vec<raftkv::api::http1::Done>>,
}

impl raftkv::api::http1::Handler for Holder {
    fn handle(
        &self,
        req: raftkv::api::http1::Request,
        done: raftkv::api::http1::Done,
    ) -> Option<raftkv::api::http1::Expiry> {
        self.held.lock().push(done);
        let wait = match req.path.as_str() {
            "/short" => Duration::from_millis(100),
            "/answered" => Duration::from_millis(400),
            _ => Duration::from_secs(60),
        };
        Some(raftkv::api::http1::Expiry {
            at: std::time::Instant::now() + wait,
            answer: Box::new(move || raftkv::api::http1::plain(504, &format!("expired {}", req.path))),
        })
    }
}

#[test]
fn late_answers_and_deadlines_of_closed_connections_reach_no_one_else() {
    let handler = std::sync::Arc::new(Holder::default());
    let mut server = serve(handler.clone());
    // Eight connections, so every event loop has several.
    let ask = |path: &str| -> Vec<Conn> {
        let mut conns: Vec<Conn> =
            (0..8).map(|_| Conn::open(server.local_addr(), Duration::from_secs(10)).unwrap()).collect();
        for conn in &mut conns {
            conn.request("POST", path, &[], b"").unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while handler.held.lock().len() < 8 {
            assert!(std::time::Instant::now() < deadline, "requests never reached the handler");
            std::thread::sleep(Duration::from_millis(5));
        }
        conns
    };
    let replies = |conns: Vec<Conn>| -> Vec<(u16, String)> {
        conns.into_iter().map(|mut c| c.read_reply().unwrap()).map(|r| (r.status, r.text())).collect()
    };
    // Requests answered by their deadline, whose late `Done`s are kept.
    let short = ask("/short");
    let late = std::mem::take(&mut *handler.held.lock());
    assert!(replies(short).iter().all(|r| r == &(504, "expired /short\n".to_string())));
    // Requests answered in time, whose deadlines are still ahead.
    let answered = ask("/answered");
    for done in std::mem::take(&mut *handler.held.lock()) {
        done.respond(raftkv::api::http1::plain(200, "ok"));
    }
    assert!(replies(answered).iter().all(|r| r.0 == 200));
    std::thread::sleep(Duration::from_millis(100));
    // New connections in the freed slots: neither the late answers (dropped `Done`s close a
    // connection) nor the old deadlines may reach their requests.
    let waiting = ask("/hold");
    drop(late);
    std::thread::sleep(Duration::from_millis(400));
    for done in std::mem::take(&mut *handler.held.lock()) {
        done.respond(raftkv::api::http1::plain(200, "held"));
    }
    assert!(replies(waiting).iter().all(|r| r == &(200, "held\n".to_string())));
    server.stop();
}

/// Panics on `/panic`, answers the rest.
struct Panicker;

impl raftkv::api::http1::Handler for Panicker {
    fn handle(
        &self,
        req: raftkv::api::http1::Request,
        done: raftkv::api::http1::Done,
    ) -> Option<raftkv::api::http1::Expiry> {
        assert_ne!(req.path, "/panic", "a handler bug");
        done.respond(raftkv::api::http1::plain(200, "fine"));
        None
    }
}

#[test]
fn a_panicking_handler_costs_its_connection_only() {
    let mut server = serve(std::sync::Arc::new(Panicker));
    let mut conns: Vec<Conn> =
        (0..8).map(|_| Conn::open(server.local_addr(), Duration::from_secs(10)).unwrap()).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        let path = if i % 2 == 0 { "/panic" } else { "/ok" };
        conn.write(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
    }
    for (i, mut conn) in conns.into_iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(conn.read_to_end().unwrap(), b"", "closed without an answer");
        } else {
            for _ in 0..2 {
                assert_eq!(conn.read_reply().unwrap().text(), "fine\n");
            }
        }
    }
    server.stop();
}

#[test]
fn a_deeply_nested_body_is_refused_and_the_member_lives() {
    let gw = Gateway::start();
    // 200 KB, under --max-request-bytes: once a stack overflow that killed the process.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = gw.post("/v3/kv/range", &deep);
    assert_eq!((r.status, r.text()), (400, error("invalid character '[' exceeded max depth", 3)));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_001), "}".repeat(10_001));
    assert_eq!(gw.post("/v3/kv/put", &objects).text(), error("invalid character '{' exceeded max depth", 3));
    // Nested txns: etcd's op budget, and a depth raftkv bounds (as an op budget too).
    let nested = |levels: usize| {
        let mut body = String::new();
        for _ in 0..levels {
            body.push_str(r#"{"success":[{"request_txn":"#);
        }
        body.push_str(r#"{"success":[{"request_put":{"key":"bg==","value":"dg=="}}]}"#);
        body.push_str(&"}]}".repeat(levels));
        gw.post("/v3/kv/txn", &body)
    };
    assert_eq!(nested(8).status, 200);
    assert_eq!(nested(40).text(), error("etcdserver: too many operations in txn request", 3));
    assert_eq!(nested(60).text(), error("json: messages nested more than 100 deep", 3));
    assert_eq!(gw.post("/v3/kv/range", r#"{"key":"bg=="}"#).status, 200, "the member still serves");
}

#[test]
fn a_keep_alive_connection_survives_lease_keepalives() {
    let gw = Gateway::start();
    let r = gw.post("/v3/lease/grant", r#"{"TTL":60,"ID":"42"}"#);
    assert_eq!(r.status, 200);
    // Patroni's pattern: keepalive, then a put, on one pooled connection.
    let mut conn = Conn::open(gw.addr(), Duration::from_secs(10)).unwrap();
    for i in 0..200 {
        let keepalive = r#"{"ID":"42"}"#;
        let put = r#"{"key":"bGVhZGVy","value":"bWU=","lease":"42"}"#;
        for (path, body) in [("/v3/lease/keepalive", keepalive), ("/v3/kv/put", put)] {
            conn.request("POST", path, &[], body.as_bytes()).unwrap();
            let r = conn.read_reply().unwrap();
            assert_eq!((r.status, r.header("Connection")), (200, None), "round {i}, {path}: {}", r.text());
        }
    }
    // A body with no request is an empty stream, and the connection still serves.
    conn.request("POST", "/v3/lease/keepalive", &[], b"").unwrap();
    let r = conn.read_reply().unwrap();
    assert_eq!((r.status, r.text().as_str(), r.header("Grpc-Metadata-Content-Type")), (200, "", None));
}

#[test]
fn health_queries_and_the_probes() {
    let gw = Gateway::start();
    let get =
        |target: &str| gw.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    // As in etcd, a member is unhealthy until it has a leader, and the check does not wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get("/health");
        if r.status == 200 {
            break;
        }
        assert_eq!((r.status, r.text().as_str()), (503, "{\"health\":\"false\"}\n"));
        assert!(std::time::Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    for target in ["/health", "/health?serializable=true", "/health?exclude=NOSPACE&exclude=CORRUPT"] {
        assert_eq!((get(target).status, get(target).text()), (200, r#"{"health":"true"}"#.into()), "{target}");
    }
    let r = gw.post("/health", "");
    assert_eq!((r.status, r.header("Allow"), r.text().as_str()), (405, Some("GET"), "Method Not Allowed\n"));
    assert_eq!((get("/livez").status, get("/livez").text()), (200, "ok\n".into()));
    assert_eq!(get("/readyz").text(), "ok\n");
    assert_eq!(
        get("/readyz?verbose").text(),
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
    );
    assert_eq!(
        get("/readyz?verbose=false&exclude=linearizable_read&exclude=nosuch").text(),
        "[+]data_corruption ok\n[+]serializable_read ok\nok\n"
    );
    assert_eq!(get("/readyz/linearizable_read?verbose").text(), "[+]linearizable_read ok\nok\n");
    assert_eq!(get("/livez").header("X-Content-Type-Options"), Some("nosniff"));
    for missing in ["/livez/", "/livez/linearizable_read", "/readyz/nosuch", "/health/"] {
        assert_eq!((get(missing).status, get(missing).text()), (404, "404 page not found\n".into()), "{missing}");
    }

    // A raised alarm fails `/health` unless excluded, and CORRUPT fails `data_corruption`.
    let raised = gw.post("/v3/maintenance/alarm", r#"{"action":"ACTIVATE","memberID":"1","alarm":"CORRUPT"}"#);
    assert_eq!(raised.text(), r#"{"alarms":[{"memberID":"1","alarm":"CORRUPT"}]}"#);
    assert_eq!((get("/health").status, get("/health").text()), (503, "{\"health\":\"false\"}\n".into()));
    assert_eq!(get("/health?exclude=NOSPACE").status, 503);
    assert_eq!(get("/health?exclude=CORRUPT").status, 200);
    let r = get("/readyz");
    assert_eq!(
        (r.status, r.text()),
        (
            503,
            "[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n[+]linearizable_read ok\n\n"
                .into()
        )
    );
    assert_eq!(get("/readyz?exclude=data_corruption").status, 200);
    let r = gw.post("/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
    assert_eq!((r.status, r.text()), (500, error("etcdserver: corrupt cluster", 15)));
    gw.post("/v3/maintenance/alarm", r#"{"action":"DEACTIVATE","memberID":"1","alarm":"CORRUPT"}"#);
    assert_eq!(get("/health").status, 200);
}

/// Differences from etcd 3.4.23 found by differential runs, each answered as etcd does now.
#[test]
fn answers_that_match_etcd_3_4_23() {
    let gw = Gateway::start();
    let ok = |path: &str, body: &str| {
        let r = gw.post(path, body);
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        strip_ids(&r.text())
    };
    ok("/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
    ok("/v3/kv/put", r#"{"key":"Yg==","value":"Mg=="}"#);
    // Only the first JSON value of a body is read.
    assert!(ok("/v3/kv/range", r#"{"key":"YQ=="} x"#).contains(r#""count":"1""#));
    assert!(ok("/v3/kv/range", r#"{"key":"YQ=="}}"#).contains(r#""count":"1""#));
    // A quoted int64 is parsed as JSON: surrounding spaces are fine, escapes are not decoded.
    assert!(ok("/v3/kv/range", r#"{"key":"YQ==","range_end":"Yw==","limit":" 1"}"#).contains(r#""more":true"#));
    assert_eq!(
        gw.post("/v3/kv/range", r#"{"key":"YQ==","limit":"\u0031"}"#).text(),
        error(r"invalid character '\\\\' looking for beginning of value", 3)
    );
    // Enums out of range: an unknown order does not sort; an unknown compare target compares
    // as equal and an unknown result is true; sorting by an unknown target (which crashes etcd)
    // is refused.
    assert!(ok("/v3/kv/range", r#"{"key":"YQ==","range_end":"Yw==","sort_order":-1}"#).contains(r#""count":"2""#));
    let txn = |compare: &str| ok("/v3/kv/txn", &format!(r#"{{"compare":[{compare}]}}"#));
    assert!(txn(r#"{"key":"YQ==","target":7,"result":"EQUAL"}"#).contains(r#""succeeded":true"#));
    assert!(!txn(r#"{"key":"YQ==","target":7,"result":"GREATER"}"#).contains("succeeded"));
    assert!(txn(r#"{"key":"YQ==","target":"MOD","result":9,"mod_revision":"100"}"#).contains(r#""succeeded":true"#));
    assert!(!txn(r#"{"key":"YQ==","target":"MOD","result":"EQUAL","version":"2"}"#).contains("succeeded"));
    let r = gw.post("/v3/kv/range", r#"{"key":"YQ==","sort_target":5}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: invalid sort option", 3)));
    // Overlapping deletes in one branch are fine; a put over a delete is not.
    let r = ok(
        "/v3/kv/txn",
        r#"{"success":[{"request_delete_range":{"key":"YQ==","range_end":"Yw=="}},{"request_delete_range":{"key":"Yg==","range_end":"ZA=="}}]}"#,
    );
    assert!(r.contains(r#""deleted":"2""#), "{r}");
    let r = gw.post(
        "/v3/kv/txn",
        r#"{"success":[{"request_delete_range":{"key":"YQ==","range_end":"Yw=="}},{"request_put":{"key":"Yg=="}}]}"#,
    );
    assert_eq!(r.text(), error("etcdserver: duplicate key given in txn request", 3));
    // A put that keeps the value of a key an earlier delete of the same txn removed: etcd's
    // check looks at the store before the txn and then panics mid-txn; raftkv refuses it whole.
    ok("/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
    let before = ok("/v3/kv/range", r#"{"key":"YQ=="}"#);
    assert!(before.contains(r#""count":"1""#), "{before}");
    let r = gw.post("/v3/kv/txn", r#"{"success":[{"request_delete_range":{"key":"YQ==","range_end":"AA=="}},{"request_put":{"key":"YQ==","ignore_value":true}}]}"#);
    assert_eq!((r.status, r.text()), (400, error("etcdserver: key not found", 3)));
    assert_eq!(ok("/v3/kv/range", r#"{"key":"YQ=="}"#), before, "nothing of it was applied");
    // A lease is checked on the taken branch only.
    let untaken = r#"{"compare":[{"key":"YQ==","target":"VERSION","result":"GREATER","version":"100"}],"success":[{"request_put":{"key":"YQ==","lease":"12345"}}]}"#;
    assert!(!ok("/v3/kv/txn", untaken).contains("succeeded"));
    let r = gw.post("/v3/kv/txn", &untaken.replace("GREATER", "LESS"));
    assert_eq!((r.status, r.text()), (404, error("etcdserver: requested lease not found", 5)));
    // Compaction to 0 (an empty body) works once, as etcd's first compaction does; then a txn's
    // negative revision is compacted while a plain range's means "latest".
    let txn_at = |rev: i64| {
        gw.post("/v3/kv/txn", &format!(r#"{{"success":[{{"request_range":{{"key":"YQ==","revision":"{rev}"}}}}]}}"#))
    };
    assert_eq!(txn_at(-1).status, 200);
    assert_eq!(txn_at(-2).text(), error("etcdserver: mvcc: required revision has been compacted", 11));
    ok("/v3/kv/compaction", "");
    let r = gw.post("/v3/kv/compaction", "");
    assert_eq!((r.status, r.text()), (400, error("etcdserver: mvcc: required revision has been compacted", 11)));
    assert_eq!(txn_at(-1).text(), error("etcdserver: mvcc: required revision has been compacted", 11));
    ok("/v3/kv/range", r#"{"key":"YQ==","revision":"-1"}"#);
    // A syntax error names a byte by the rune of its number, as Go does.
    let r = gw.send(b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\n\xff");
    assert_eq!(r.text(), error("invalid character '\u{ff}' looking for beginning of value", 3));
    // etcd's gateway drops the connection on a null in a list of messages; raftkv says why.
    assert_eq!(
        gw.post("/v3/kv/txn", r#"{"compare":[null]}"#).text(),
        error("json: a list of messages holds a null", 3)
    );
    // A unary answer beyond Go's 2 KiB buffer goes out chunked, in one chunk, with no trailer.
    ok("/v3/kv/put", &format!(r#"{{"key":"YmlnZw==","value":"{}"}}"#, b64(&"v".repeat(3000))));
    let r = gw.post("/v3/kv/range", r#"{"key":"YmlnZw=="}"#);
    assert_eq!((r.header("Transfer-Encoding"), r.header("Trailer"), r.trailers.len()), (Some("chunked"), None, 0));
    assert_eq!(r.header("Grpc-Metadata-Content-Type"), Some("application/grpc"));
}
