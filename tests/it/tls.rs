//! TLS on the client port: certificates made here with rcgen (a CA, the member's certificate
//! for 127.0.0.1, client certificates from that CA, from another CA, expired, oversized);
//! gRPC and the gateway over TLS with client certificates, `raftkvctl` and etcdctl 3.4 with
//! `--cacert --cert --key`, `--auto-tls`; clients without a good certificate, plaintext,
//! garbage records and handshakes that never finish refused while the member keeps serving;
//! renewed certificate files used from the next handshake on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use raftkv::client::Client;
use raftkv::embed::Member;
use raftkv::pb::*;
use raftkv::tls::{ClientTlsInfo, TlsInfo};

use super::harness::{self, process};

const SOON: Duration = Duration::from_secs(5);

/// A CA that signs the certificates of one test.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf certificate for `names`, `client` or server use, valid for a day from
    /// `from_days_ago` days back (2: expired yesterday).
    pub(crate) fn issue(&self, cn: &str, names: &[&str], client: bool, from_days_ago: i64) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(from_days_ago);
        params.not_after = params.not_before + time::Duration::days(1);
        // A peer's certificate serves and dials: a "server" one is good for both.
        params.extended_key_usages = if client {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        };
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        (params.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    }
}

/// PEM files in `dir`: `<name>.pem` and `<name>-key.pem`.
pub(crate) fn write_pair(dir: &Path, name: &str, (cert, key): (String, String)) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}

/// The files of one test: a CA, the member's certificate and a good client's.
struct Pki {
    dir: tempfile::TempDir,
    pub(crate) ca: Ca,
    pub(crate) ca_file: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("raftkv test CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        let server = write_pair(dir.path(), "server", ca.issue("member", &["127.0.0.1", "localhost"], false, 0));
        let client = write_pair(dir.path(), "client", ca.issue("client", &[], true, 0));
        Pki { dir, ca, ca_file, server, client }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The member's TLS with client certificates required.
    fn member_tls(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.server.0.clone(),
            key_file: self.server.1.clone(),
            trusted_ca_file: Some(self.ca_file.clone()),
            client_cert_auth: true,
            handshake_timeout: Duration::from_secs(1),
            ..TlsInfo::default()
        }
    }

    fn client_tls(&self, pair: Option<&(PathBuf, PathBuf)>) -> ClientTlsInfo {
        ClientTlsInfo {
            ca_file: Some(self.ca_file.clone()),
            cert_file: pair.map(|p| p.0.clone()),
            key_file: pair.map(|p| p.1.clone()),
            insecure_skip_verify: false,
        }
    }
}

/// A member serving clients on an `https://` URL with `tls`.
fn tls_member(data: &Path, tls: TlsInfo) -> (Member, String) {
    harness::init_logs();
    let mut cfg = harness::config(data);
    cfg.listen_client_urls = vec!["https://127.0.0.1:0".into()];
    cfg.client_tls = tls;
    let member = Member::start(cfg).expect("start member");
    let endpoint = format!("https://{}", member.client_addrs()[0]);
    (member, endpoint)
}

/// A fresh PKI and a member serving with it (client certificates required): the PKI, the
/// data dir, the member, its `https://` endpoint.
fn served() -> (Pki, tempfile::TempDir, Member, String) {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let (member, endpoint) = tls_member(data.path(), pki.member_tls());
    (pki, data, member, endpoint)
}

fn grpc(endpoint: &str, tls: &ClientTlsInfo) -> Client {
    Client::new(&[endpoint.to_string()], SOON).unwrap().with_tls(tls).unwrap()
}

fn gateway(endpoint: &str, tls: &ClientTlsInfo) -> Client {
    Client::gateway(&[endpoint.to_string()], SOON).unwrap().with_tls(tls).unwrap()
}

fn put(client: &Client, key: &str, value: &str) -> raftkv::client::Result<PutResponse> {
    client.put(&PutRequest::new(key, value))
}

fn value(client: &Client, key: &str) -> Vec<u8> {
    let resp = client.range(&RangeRequest::key(key)).expect("range");
    resp.kvs.into_iter().next().map(|kv| kv.value).unwrap_or_default()
}

#[test]
fn grpc_and_the_gateway_serve_clients_with_certificates() {
    let (pki, _data, member, endpoint) = served();
    let tls = pki.client_tls(Some(&pki.client));
    let (over_grpc, over_gateway) = (grpc(&endpoint, &tls), gateway(&endpoint, &tls));
    put(&over_grpc, "via/grpc", "1").expect("put over gRPC and TLS");
    put(&over_gateway, "via/gateway", "2").expect("put over the gateway and TLS");
    assert_eq!(value(&over_gateway, "via/grpc"), b"1");
    assert_eq!(value(&over_grpc, "via/gateway"), b"2");
    // Kept-alive connections are reused call after call.
    for i in 0..20 {
        put(&over_gateway, "again", &i.to_string()).unwrap();
        assert_eq!(value(&over_grpc, "again"), i.to_string().as_bytes());
    }
    // A streamed answer: the gateway hands its connection, TLS session and all, to a stream
    // thread; gRPC's watch stays on the loop.
    for client in [&over_gateway, &over_grpc] {
        let mut seen = Vec::new();
        let req = WatchCreateRequest {
            key: b"via/".to_vec(),
            range_end: b"via0".to_vec(),
            start_revision: 1,
            ..Default::default()
        };
        client
            .watch(&req, |resp| {
                seen.extend(resp.events.into_iter().map(|e| e.kv.unwrap_or_default().key));
                seen.len() < 2
            })
            .expect("watch over TLS");
        assert_eq!(seen, vec![b"via/grpc".to_vec(), b"via/gateway".to_vec()]);
    }
    member.stop().unwrap();
}

#[test]
fn clients_without_a_good_certificate_are_refused_and_the_member_keeps_serving() {
    let (pki, _data, member, endpoint) = served();
    let other = Ca::new("another CA");
    let foreign = write_pair(pki.path(), "foreign", other.issue("client", &[], true, 0));
    let expired = write_pair(pki.path(), "expired", pki.ca.issue("client", &[], true, 2));
    let refused = [
        ("no certificate", pki.client_tls(None)),
        ("another CA's certificate", pki.client_tls(Some(&foreign))),
        ("an expired certificate", pki.client_tls(Some(&expired))),
    ];
    for (what, tls) in &refused {
        assert!(put(&grpc(&endpoint, tls), "k", "v").is_err(), "gRPC with {what} was served");
        assert!(put(&gateway(&endpoint, tls), "k", "v").is_err(), "the gateway with {what} was served");
    }
    // Plaintext to the TLS port, on both protocols.
    let plain = endpoint.replace("https://", "http://");
    assert!(put(&Client::new(std::slice::from_ref(&plain), SOON).unwrap(), "k", "v").is_err());
    assert!(put(&Client::gateway(&[plain], SOON).unwrap(), "k", "v").is_err());
    // A server certificate the client cannot verify is refused by the client.
    let wrong_ca = ClientTlsInfo {
        ca_file: Some(write_pair(pki.path(), "x", other.issue("x", &[], true, 0)).0),
        ..pki.client_tls(Some(&pki.client))
    };
    assert!(put(&grpc(&endpoint, &wrong_ca), "k", "v").is_err());
    let good = pki.client_tls(Some(&pki.client));
    put(&grpc(&endpoint, &good), "still", "serving").expect("a good client after the refusals");
    assert_eq!(value(&gateway(&endpoint, &good), "still"), b"serving");
    member.stop().unwrap();
}

/// Raw bytes to the TLS port: the connection ends (the member's answer, if any, is an alert)
/// within `limit`.
pub(crate) fn closed_within(addr: &str, send: &[u8], limit: Duration) -> bool {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(limit)).unwrap();
    let _ = conn.write_all(send);
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        if start.elapsed() > limit {
            return false;
        }
    }
}

#[test]
fn garbage_records_and_handshakes_that_never_finish_are_closed() {
    let (pki, _data, member, endpoint) = served();
    let addr = endpoint.trim_start_matches("https://").to_string();
    // Nothing at all, and half a ClientHello: closed at the handshake timeout (1 s here).
    assert!(closed_within(&addr, b"", Duration::from_secs(10)), "a silent client was never closed");
    assert!(closed_within(&addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Duration::from_secs(10)));
    // A record header announcing more than TLS allows, a plaintext request, random bytes.
    let mut huge = b"\x16\x03\x01\xff\xff".to_vec();
    huge.extend(std::iter::repeat_n(0x41u8, 70_000));
    assert!(closed_within(&addr, &huge, SOON));
    assert!(closed_within(&addr, b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", SOON));
    assert!(closed_within(&addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SOON));
    assert!(closed_within(
        &addr,
        &[0x17, 0x03, 0x03, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        SOON
    ));
    // A client certificate chain past TLS's 64 KiB handshake message limit (a good
    // certificate, then the CA's again and again).
    let (cert, key) = pki.ca.issue("client", &[], true, 0);
    let huge_cert = write_pair(pki.path(), "huge", (cert + &pki.ca.pem.repeat(300), key));
    assert!(std::fs::metadata(&huge_cert.0).unwrap().len() > 128 * 1024);
    assert!(put(&grpc(&endpoint, &pki.client_tls(Some(&huge_cert))), "k", "v").is_err());
    let good = pki.client_tls(Some(&pki.client));
    put(&grpc(&endpoint, &good), "still", "serving").expect("a good client after the garbage");
    member.stop().unwrap();
}

#[test]
fn renewed_certificate_files_serve_the_next_handshake() {
    let (pki, _data, member, endpoint) = served();
    let good = pki.client_tls(Some(&pki.client));
    put(&gateway(&endpoint, &good), "before", "renewal").unwrap();
    // The member's files now hold a certificate (and a trusted CA) of a new CA.
    let renewed = Ca::new("renewed CA");
    std::fs::write(&pki.ca_file, &renewed.pem).unwrap();
    let (cert, key) = renewed.issue("member", &["127.0.0.1"], false, 0);
    std::fs::write(&pki.server.1, key).unwrap();
    std::fs::write(&pki.server.0, cert).unwrap();
    let client = write_pair(pki.path(), "renewed-client", renewed.issue("client", &[], true, 0));
    let renewed_tls = ClientTlsInfo { ca_file: Some(pki.ca_file.clone()), ..pki.client_tls(Some(&client)) };
    assert!(
        harness::eventually(SOON, || put(&gateway(&endpoint, &renewed_tls), "after", "renewal").is_ok()),
        "the renewed certificate was never served"
    );
    let old_ca = pki.path().join("old-ca.pem");
    std::fs::write(&old_ca, &pki.ca.pem).unwrap();
    let old = ClientTlsInfo { ca_file: Some(old_ca), ..pki.client_tls(Some(&pki.client)) };
    assert!(put(&gateway(&endpoint, &old), "k", "v").is_err(), "the old certificate is still served");
    member.stop().unwrap();
}

#[test]
fn raftkvctl_and_etcdctl_speak_tls_with_client_certificates() {
    let (pki, _data, member, endpoint) = served();
    let files = |cert: &Path, key: &Path| {
        vec![
            "--cacert".to_string(),
            pki.ca_file.display().to_string(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    };
    let flags = files(&pki.client.0, &pki.client.1);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for gateway in [false, true] {
        let mut args = flags.clone();
        if gateway {
            args.push("--gateway");
        }
        let run = |extra: &[&str]| {
            let out = process::ctl_command(&endpoint, &[&args[..], extra].concat()).output().unwrap();
            assert!(out.status.success(), "raftkvctl {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(run(&["put", "ctl", "tls"]), "OK\n");
        assert_eq!(run(&["get", "ctl"]), "ctl\ntls\n");
        // HashKV is gRPC's only, --gateway or not.
        assert!(run(&["endpoint", "hashkv"]).starts_with(&format!("{endpoint}, ")));
    }
    let refused =
        process::ctl_command(&endpoint, &["--cacert", pki.ca_file.to_str().unwrap(), "get", "ctl"]).output().unwrap();
    assert!(!refused.status.success(), "raftkvctl without a certificate was served");
    // etcdctl 3.4 (grpc-go's TLS), as Kubernetes and every etcd tool connects.
    let (code, out, err) = super::grpc::etcdctl(&endpoint, &[&flags[..], &["put", "etcdctl", "over-tls"]].concat(), "");
    assert_eq!(code, Some(0), "etcdctl put: {err}");
    assert_eq!(out, "OK\n");
    let (code, out, err) = super::grpc::etcdctl(&endpoint, &[&flags[..], &["get", "ctl"]].concat(), "");
    assert_eq!((code, out.as_str()), (Some(0), "ctl\ntls\n"), "etcdctl get: {err}");
    let (code, _, _) = super::grpc::etcdctl(&endpoint, &["--cacert", pki.ca_file.to_str().unwrap(), "get", "ctl"], "");
    assert_ne!(code, Some(0), "etcdctl without a certificate was served");
    member.stop().unwrap();
}

#[test]
fn auto_tls_serves_a_self_signed_certificate_and_logs_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let port = harness::free_port();
    let url = format!("https://127.0.0.1:{port}");
    // The peer port too (`--peer-auto-tls`), as a real process parses those flags.
    let peer = format!("https://127.0.0.1:{}", harness::free_port());
    let log = dir.path().join("member.log");
    let mut member = process::Process::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["--name", "auto", "--listen-client-urls", &url, "--advertise-client-urls", &url, "--auto-tls"])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer, "--peer-auto-tls"])
            .args(["--initial-cluster", &format!("auto={peer}")])
            .stdin(std::process::Stdio::null())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let ctl = |args: &[&str]| process::ctl_command(&url, args).output().unwrap();
    assert!(
        harness::eventually(Duration::from_secs(20), || ctl(&["--insecure-skip-tls-verify", "put", "auto", "tls"])
            .status
            .success()),
        "raftkvctl --insecure-skip-tls-verify never got an answer: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let out = ctl(&["--insecure-skip-tls-verify", "--gateway", "get", "auto"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "auto\ntls\n");
    assert!(dir.path().join("data/fixtures/client/cert.pem").exists());
    assert!(dir.path().join("data/fixtures/peer/cert.pem").exists());
    // A self-signed certificate is not trusted unless verification is skipped.
    assert!(!ctl(&["get", "auto"]).status.success());
    // Plaintext to the TLS port: refused with one line in the member's log; it keeps serving.
    assert!(closed_within(&format!("127.0.0.1:{port}"), b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n", SOON));
    assert!(harness::eventually(SOON, || std::fs::read_to_string(&log).unwrap().contains("rejected connection from")));
    assert!(ctl(&["--insecure-skip-tls-verify", "get", "auto"]).status.success());
    assert!(member.terminate().success());
}

/// With `--client-cert-auth` and auth enabled, a verified certificate's common name is the
/// user on gRPC (etcd's `AuthInfoFromTLS`); the gateway never takes it (etcd ignores the
/// name for its gateway's requests), so there a certificate alone names nobody.
#[test]
fn with_auth_enabled_a_client_certificates_common_name_is_the_user_on_grpc() {
    let (pki, _data, member, endpoint) = served();
    let as_user = |cn: &str| {
        let (cert, key) = write_pair(pki.path(), cn, pki.ca.issue(cn, &[], true, 0));
        let flags = ["--cacert", pki.ca_file.to_str().unwrap(), "--cert", cert.to_str().unwrap()];
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        flags.extend(["--key".to_string(), key.display().to_string()]);
        flags
    };
    let (root, ro) = (as_user("root"), as_user("ro"));
    let run = |who: &[String], args: &[&str]| {
        let argv: Vec<&str> = who.iter().map(String::as_str).chain(args.iter().copied()).collect();
        let (code, out, err) = super::grpc::etcdctl(&endpoint, &argv, "");
        (code, format!("{out}{}", err.lines().last().unwrap_or_default()))
    };
    for step in [
        &["user", "add", "root:pw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "ro:pw"],
        &["role", "add", "ro"],
        &["role", "grant-permission", "ro", "read", "p/", "--prefix=true"],
        &["user", "grant-role", "ro", "ro"],
        &["put", "p/a", "1"],
        &["auth", "enable"],
    ] {
        assert_eq!(run(&root, step).0, Some(0), "{step:?}");
    }
    assert_eq!(run(&ro, &["get", "p/a"]), (Some(0), "p/a\n1\n".to_string()));
    assert_eq!(run(&ro, &["put", "p/a", "2"]), (Some(1), "Error: etcdserver: permission denied".to_string()));
    assert_eq!(run(&root, &["put", "p/a", "3"]), (Some(0), "OK\n".to_string()));
    assert_eq!(run(&ro, &["user", "list"]).1, "Error: etcdserver: permission denied");
    let tls = pki.client_tls(Some(&(pki.path().join("ro.pem"), pki.path().join("ro-key.pem"))));
    let refused = gateway(&endpoint, &tls).range(&RangeRequest::key("p/a")).unwrap_err();
    assert_eq!(refused.to_string(), "etcdserver: user name is empty");
    member.stop().unwrap();
}
