//! TLS as etcd's `pkg/transport` sets it up, with rustls: [`TlsInfo`] is etcd's `TLSInfo`
//! (plain data from the flags), [`ServerTls`] the acceptor side of a port (certificates read
//! again when their files change, per handshake, as etcd's `GetCertificate` does),
//! [`ClientTls`] the dialing side (etcdctl's `--cacert --cert --key
//! --insecure-skip-tls-verify`), and [`Stream`] a blocking TLS (or plain) socket for threads
//! that block: the gateway's stream threads, `raftkv::Client`, the peer transport.
//!
//! Threads: none. The handshake runs on whichever thread drives the connection: an event loop
//! (`raftkv-httpio-N`, without blocking: see `api/net/socket.rs`) or a blocking caller.
//!
//! Crypto: rustls's `ring` provider (builds with a C compiler alone). TLS 1.2 and 1.3, as Go;
//! `--cipher-suites` takes Go's names and restricts the TLS 1.2 suites; TLS 1.3's suites are
//! not configurable in Go either, and stay all enabled (their names are accepted and ignored).

mod selfcert;
mod stream;
mod x509;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme, SupportedCipherSuite};

pub use selfcert::self_cert;
pub use stream::Stream;
pub use x509::{check_client_san, common_name};

use crate::{Error, Result};

/// How long a client has to finish its TLS handshake on a client or peer port before its
/// connection is closed (a connection that never finishes would otherwise hold a slot).
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// ALPN of the client port: HTTP/1.1 first. rustls picks by the server's order, so a client
/// that offers both (curl, Go's net/http: the gateway's clients) gets HTTP/1.1, where the
/// gateway is served, and gRPC clients, which offer only `h2`, get HTTP/2.
pub const CLIENT_PORT_ALPN: [&[u8]; 2] = [b"http/1.1", b"h2"];

/// A TLS protocol version, by etcd's names (`--tls-min-version`, `--tls-max-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// etcd 3.5's `tlsutil.GetTLSVersion`: `TLS1.2`, `TLS1.3`; empty is `None` (Go's default).
    pub fn parse(name: &str) -> std::result::Result<Option<TlsVersion>, String> {
        match name {
            "" => Ok(None),
            "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
            other => Err(format!("unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }
}

/// One port's TLS settings, etcd's `TLSInfo` (client port: `--cert-file ...`; peer port:
/// `--peer-cert-file ...`), with the flags etcd shares between both copied in.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// The certificate chain served (PEM), `--cert-file`.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1), `--key-file`.
    pub key_file: PathBuf,
    /// The CA bundle client certificates must chain to, `--trusted-ca-file`. Set, it makes
    /// a client certificate required, as in etcd.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify a client certificate, `--client-cert-auth`.
    pub client_cert_auth: bool,
    /// Generate a self-signed certificate in the data dir when none is given, `--auto-tls`.
    pub auto_tls: bool,
    /// Years the generated certificate is valid, `--self-signed-cert-validity` (etcd 3.5).
    pub self_signed_cert_validity_years: u32,
    /// `--tls-min-version` (etcd 3.5; TLS1.2 by default, as etcd).
    pub min_version: TlsVersion,
    /// `--tls-max-version` (etcd 3.5; `None`: the newest, TLS1.3).
    pub max_version: Option<TlsVersion>,
    /// `--cipher-suites`: Go's names, in order of preference; empty for the provider's.
    pub cipher_suites: Vec<String>,
    /// See [`HANDSHAKE_TIMEOUT_DEFAULT`]; not a flag of etcd's (tests shorten it).
    pub handshake_timeout: Duration,
    /// The common name a client certificate must carry (`--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
    /// Skip the peer port's check of a client certificate's SANs against the address it
    /// connects from (`--experimental-peer-skip-client-san-verification`).
    pub skip_client_san_verify: bool,
}

impl Default for TlsInfo {
    fn default() -> TlsInfo {
        TlsInfo {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            trusted_ca_file: None,
            client_cert_auth: false,
            auto_tls: false,
            self_signed_cert_validity_years: 1,
            min_version: TlsVersion::Tls12,
            max_version: None,
            cipher_suites: Vec::new(),
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            allowed_cn: None,
            skip_client_san_verify: false,
        }
    }
}

impl TlsInfo {
    /// No certificate given (etcd's `TLSInfo.Empty`).
    pub fn is_empty(&self) -> bool {
        self.cert_file.as_os_str().is_empty() && self.key_file.as_os_str().is_empty()
    }

    /// etcd's rules on these settings, one message per rule; `flags` names the flag prefix
    /// (`--` or `--peer-`) in the messages.
    pub fn validate(&self, flags: &str) -> std::result::Result<(), String> {
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                self.key_file.display(),
                self.cert_file.display()
            ));
        }
        if self.client_cert_auth && self.trusted_ca_file.is_none() {
            return Err(format!(
                "{flags}client-cert-auth needs {flags}trusted-ca-file: client certificates are verified against it"
            ));
        }
        if self.allowed_cn.is_some() && self.trusted_ca_file.is_none() {
            return Err(format!(
                "{flags}cert-allowed-cn needs {flags}trusted-ca-file: only verified certificates are looked at"
            ));
        }
        if self.auto_tls && self.self_signed_cert_validity_years == 0 {
            return Err("--self-signed-cert-validity must be greater than 0".into());
        }
        if self.max_version.is_some_and(|max| self.min_version > max) {
            let max = self.max_version.map_or("", TlsVersion::name);
            return Err(format!("min version ({}) is greater than max version ({max})", self.min_version.name()));
        }
        if self.min_version == TlsVersion::Tls13 && !self.cipher_suites.is_empty() {
            return Err("cipher suites cannot be configured when only TLS1.3 is enabled".into());
        }
        provider(&self.cipher_suites).map(|_| ())
    }

    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let max = self.max_version.unwrap_or(TlsVersion::Tls13);
        let mut versions = Vec::new();
        if self.min_version <= TlsVersion::Tls13 && max >= TlsVersion::Tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.min_version <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
            versions.push(&rustls::version::TLS12);
        }
        versions
    }
}

/// Go's names of the TLS 1.2 suites rustls implements (and etcd's two short aliases).
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use ring::cipher_suite::*;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Go's TLS 1.3 suites: accepted in `--cipher-suites` and ignored, as Go ignores them.
const GO_TLS13_SUITES: [&str; 3] = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// The rest of Go's `tls.CipherSuites()` and `tls.InsecureCipherSuites()`: etcd takes them,
/// rustls implements none (RSA key exchange, CBC, 3DES, RC4), so they are refused by name.
const GO_SUITES_UNSUPPORTED: [&str; 16] = [
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The ring provider with `--cipher-suites` applied: the TLS 1.3 suites always, then the
/// TLS 1.2 ones named, in their order (all of them when none is named).
fn provider(cipher_suites: &[String]) -> std::result::Result<Arc<CryptoProvider>, String> {
    let mut provider = ring::default_provider();
    if !cipher_suites.is_empty() {
        let mut chosen: Vec<SupportedCipherSuite> =
            provider.cipher_suites.iter().copied().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).collect();
        for name in cipher_suites {
            if let Some(suite) = tls12_suite(name) {
                chosen.push(suite);
            } else if GO_SUITES_UNSUPPORTED.contains(&name.as_str()) {
                return Err(format!(
                    "TLS cipher suite {name:?} is not supported (only ECDHE with AES-GCM or ChaCha20-Poly1305 is)"
                ));
            } else if !GO_TLS13_SUITES.contains(&name.as_str()) {
                return Err(format!("unexpected TLS cipher suite {name:?}"));
            }
        }
        provider.cipher_suites = chosen;
    }
    Ok(Arc::new(provider))
}

fn tls_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what} {}: {e}", path.display()))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error("cannot read certificate file", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error("cannot parse certificate file", path, e))?;
    if certs.is_empty() {
        return Err(tls_error("no certificate in", path, "want PEM CERTIFICATE blocks"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_error("cannot read private key file", path, e))
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| tls_error("unusable CA certificate in", path, e))?;
    }
    Ok(roots)
}

/// What a file looked like when last read: a change of either means read it again.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The server side of a TLS port. [`ServerTls::config`] is asked once per handshake: it looks
/// at the files' modification times and sizes (a `stat` each) and builds a new rustls config
/// when one changed, so renewed certificates (and CA bundles) apply to the next connection,
/// as etcd reads its files on every handshake.
pub struct ServerTls {
    info: TlsInfo,
    alpn: Vec<Vec<u8>>,
    /// Protects the config the next handshakes use and the file stamps it was built from.
    current: Mutex<(Vec<Stamp>, Arc<ServerConfig>)>,
}

impl ServerTls {
    /// Reads the files and builds the first config: a port whose certificate cannot be used
    /// fails the member's start, as etcd's does.
    pub fn new(info: &TlsInfo, alpn: &[&[u8]]) -> Result<Arc<ServerTls>> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let stamps = ServerTls::stamps(info);
        let config = ServerTls::build(info, &alpn)?;
        Ok(Arc::new(ServerTls { info: info.clone(), alpn, current: Mutex::new((stamps, config)) }))
    }

    fn stamps(info: &TlsInfo) -> Vec<Stamp> {
        let mut files = vec![stamp(&info.cert_file), stamp(&info.key_file)];
        files.extend(info.trusted_ca_file.as_deref().map(stamp));
        files
    }

    fn build(info: &TlsInfo, alpn: &[Vec<u8>]) -> Result<Arc<ServerConfig>> {
        let provider = provider(&info.cipher_suites).map_err(Error::Tls)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&info.versions())
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = match &info.trusted_ca_file {
            // etcd: a trusted CA file, or --client-cert-auth, requires a verified client
            // certificate (`tls.RequireAndVerifyClientCert`).
            Some(ca) => {
                let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider)
                    .build()
                    .map_err(|e| tls_error("unusable CA file", ca, e))?;
                if let Some(cn) = &info.allowed_cn {
                    verifier = Arc::new(x509::AllowedCn { inner: verifier, cn: cn.clone() });
                }
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let certs = load_certs(&info.cert_file)?;
        let key = load_key(&info.key_file)?;
        let mut config =
            builder.with_single_cert(certs, key).map_err(|e| tls_error("unusable certificate", &info.cert_file, e))?;
        config.alpn_protocols = alpn.to_vec();
        // Every connection makes a full handshake, so a changed CA bundle or a revoked client
        // certificate applies to each new connection (no resumption to skip the checks).
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// The config for a new handshake, built again if a file changed since the last one. A
    /// file that cannot be used now (half written, say) keeps the previous config, logged.
    pub fn config(&self) -> Arc<ServerConfig> {
        let stamps = ServerTls::stamps(&self.info);
        let mut current = self.current.lock();
        if current.0 != stamps {
            match ServerTls::build(&self.info, &self.alpn) {
                Ok(config) => {
                    log::info!("tls: reloaded {}", self.info.cert_file.display());
                    *current = (stamps, config);
                }
                Err(e) => {
                    log::warn!("tls: failed to reload certificates, keeping the previous ones: {e}");
                    current.0 = stamps;
                }
            }
        }
        current.1.clone()
    }

    /// A server session for a new connection.
    pub fn accept(&self) -> Result<rustls::ServerConnection> {
        rustls::ServerConnection::new(self.config()).map_err(|e| Error::Tls(e.to_string()))
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.info.handshake_timeout
    }
}

/// The client side's files and choices, etcdctl's flags.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsInfo {
    /// CA bundle to verify the server with (`--cacert`); `None`: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (`--cert`, `--key`), both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (`--insecure-skip-tls-verify`).
    pub insecure_skip_verify: bool,
}

/// Where Go's `crypto/x509` finds the system's CA bundle on Linux, in its order.
const SYSTEM_CA_FILES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
];

/// The dialing side of TLS: one rustls config for every connection of a client, built again
/// when its files change (a stat of each per connection), as etcd's `GetClientCertificate`
/// reads them per handshake: a member's renewed peer certificate is shown from its next
/// dial on, before the old one expires.
#[derive(Clone)]
pub struct ClientTls {
    info: ClientTlsInfo,
    alpn: Vec<Vec<u8>>,
    /// Protects the config new connections use and the file stamps it was built from.
    current: Arc<Mutex<(Vec<Stamp>, Arc<ClientConfig>)>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// A client config offering `alpn`; errors name the file at fault.
    pub fn new(info: &ClientTlsInfo, alpn: &[&[u8]]) -> Result<ClientTls> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let stamps = ClientTls::stamps(info);
        let config = ClientTls::build(info, &alpn)?;
        Ok(ClientTls { info: info.clone(), alpn, current: Arc::new(Mutex::new((stamps, config))) })
    }

    fn stamps(info: &ClientTlsInfo) -> Vec<Stamp> {
        [&info.ca_file, &info.cert_file, &info.key_file].into_iter().flatten().map(|p| stamp(p)).collect()
    }

    fn build(info: &ClientTlsInfo, alpn: &[Vec<u8>]) -> Result<Arc<ClientConfig>> {
        let provider = provider(&[]).map_err(Error::Tls)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = if info.insecure_skip_verify {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        } else {
            let roots = match &info.ca_file {
                Some(ca) => load_roots(ca)?,
                None => {
                    let system = SYSTEM_CA_FILES.iter().map(Path::new).find(|p| p.exists());
                    let mut roots = RootCertStore::empty();
                    if let Some(bundle) = system {
                        // A system bundle holds a few unusable certificates; skip those.
                        roots.add_parsable_certificates(load_certs(bundle)?);
                    }
                    roots
                }
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&info.cert_file, &info.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| tls_error("unusable certificate", cert, e))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(Error::Tls("--cert and --key must be given together".into())),
        };
        config.alpn_protocols = alpn.to_vec();
        Ok(Arc::new(config))
    }

    /// The same files offering `alpn` instead.
    pub fn with_alpn(&self, alpn: &[&[u8]]) -> ClientTls {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let (stamps, config) = self.current.lock().clone();
        let mut config = (*config).clone();
        config.alpn_protocols = alpn.clone();
        ClientTls { info: self.info.clone(), alpn, current: Arc::new(Mutex::new((stamps, Arc::new(config)))) }
    }

    /// The config for a new connection, built again if a file changed since the last one; a
    /// file that cannot be used now keeps the previous config, logged.
    fn config(&self) -> Arc<ClientConfig> {
        let stamps = ClientTls::stamps(&self.info);
        let mut current = self.current.lock();
        if current.0 != stamps {
            match ClientTls::build(&self.info, &self.alpn) {
                Ok(config) => *current = (stamps, config),
                Err(e) => {
                    log::warn!("tls: failed to reload client certificates, keeping the previous ones: {e}");
                    current.0 = stamps;
                }
            }
        }
        current.1.clone()
    }

    /// A client session to `host` (a name or an IP address, checked against the server's
    /// certificate).
    pub fn session(&self, host: &str) -> std::io::Result<rustls::ClientConnection> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {host:?}: {e}")))?;
        rustls::ClientConnection::new(self.config(), name).map_err(std::io::Error::other)
    }

    /// Completes the handshake on `tcp`, connected to `addr` (`host:port`, whose host the
    /// certificate must name), within the socket's timeouts.
    pub fn connect(&self, tcp: std::net::TcpStream, addr: &str) -> std::io::Result<Stream> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        Stream::handshake(tcp, rustls::Connection::Client(self.session(host)?))
    }
}

/// `--insecure-skip-tls-verify`: any certificate is taken, but the handshake's signatures are
/// still checked (the server must hold the key of the certificate it shows).
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_config_is_built_again_when_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
            std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        };
        write("first");
        let info = ClientTlsInfo {
            ca_file: Some(dir.path().join("cert.pem")),
            cert_file: Some(dir.path().join("cert.pem")),
            key_file: Some(dir.path().join("key.pem")),
            insecure_skip_verify: false,
        };
        let tls = ClientTls::new(&info, &[b"h2"]).unwrap();
        let first = tls.config();
        assert!(Arc::ptr_eq(&first, &tls.config()), "rebuilt with nothing changed");
        write("a-longer-second-name");
        let second = tls.config();
        assert!(!Arc::ptr_eq(&first, &second), "not rebuilt after the files changed");
        assert_eq!(second.alpn_protocols, vec![b"h2".to_vec()]);
        // A broken file keeps the last good config.
        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        assert!(Arc::ptr_eq(&second, &tls.config()));
    }

    #[test]
    fn versions_and_suites_follow_etcds_rules() {
        let with = |f: fn(&mut TlsInfo)| {
            let mut info = TlsInfo::default();
            f(&mut info);
            info.validate("--").err().unwrap_or_default()
        };
        assert_eq!(with(|_| {}), "");
        assert!(with(|i| i.cert_file = "c.pem".into()).starts_with("KeyFile and CertFile must both be present"));
        assert!(with(|i| i.client_cert_auth = true).contains("--trusted-ca-file"));
        assert!(with(|i| {
            i.min_version = TlsVersion::Tls13;
            i.max_version = Some(TlsVersion::Tls12);
        })
        .contains("min version (TLS1.3) is greater than max version (TLS1.2)"));
        assert!(with(|i| {
            i.min_version = TlsVersion::Tls13;
            i.cipher_suites = vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()];
        })
        .contains("only TLS1.3"));
        assert!(with(|i| i.cipher_suites = vec!["TLS_NOPE".into()]).contains("unexpected TLS cipher suite"));
        assert!(with(|i| i.cipher_suites = vec!["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).contains("not supported"));
        assert_eq!(with(|i| i.cipher_suites = vec!["TLS_AES_128_GCM_SHA256".into()]), "");
        assert_eq!(
            TlsVersion::parse("TLS1.1").unwrap_err(),
            "unexpected TLS version \"TLS1.1\" (must be one of: TLS1.2, TLS1.3)"
        );
        // Named TLS 1.2 suites in order after every TLS 1.3 one.
        let p = provider(&[
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        ])
        .unwrap();
        let names: Vec<String> = p.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names[3].contains("CHACHA20") && names[4].contains("ECDSA"), "{names:?}");
    }
}
