//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate for the port's hosts, kept in
//! the data dir (`fixtures/client`, `fixtures/peer`) and reused at the next start, as etcd's
//! `transport.SelfCert` does. Clients cannot verify it (etcdctl needs
//! `--insecure-skip-tls-verify`); it only encrypts.

use std::path::Path;

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use super::TlsInfo;
use crate::{Error, Result};

/// Fills `info`'s certificate and key with `dir`'s `cert.pem` and `key.pem`, generating them
/// first (for `hosts`, each `host:port` or `host`) when either is missing. `client_auth` adds
/// client authentication to its uses, for a peer certificate that also dials.
pub fn self_cert(info: &mut TlsInfo, dir: &Path, hosts: &[String], client_auth: bool) -> Result<()> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::Tls(format!("auto TLS: {what}: {e}"));
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| failed(&format!("cannot create {}", dir.display()), &e))?;
        let names: Vec<String> = hosts
            .iter()
            .map(|h| match h.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                _ => h.as_str(),
            })
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .collect();
        let mut params = CertificateParams::new(names).map_err(|e| failed("bad host name", &e))?;
        // etcd's subject: the organization alone (rcgen would add a common name).
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "etcd");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = now + time::Duration::days(365 * i64::from(info.self_signed_cert_validity_years));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if client_auth {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        // ECDSA P-256: etcd uses P-521, which ring can verify but not sign with.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| failed("key", &e))?;
        let cert = params.self_signed(&key).map_err(|e| failed("certificate", &e))?;
        write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| failed("cannot write key", &e))?;
        std::fs::write(&cert_path, cert.pem()).map_err(|e| failed("cannot write certificate", &e))?;
        log::info!("tls: created {} and {}", cert_path.display(), key_path.display());
    }
    info.cert_file = cert_path;
    info.key_file = key_path;
    Ok(())
}

/// A file only its owner can read, as etcd writes its generated key (mode 0600).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
