//! What etcd checks of a peer's client certificate beyond its chain, read from the leaf's DER
//! after webpki verified it (a short walk, every length checked, never a panic):
//! - `--peer-cert-allowed-cn`: the subject's common name ([`AllowedCn`], etcd's `AllowedCN`
//!   check in `VerifyPeerCertificate`);
//! - the subject alternative names against the address the peer connects from
//!   ([`check_client_san`], etcd 3.4's `checkSAN` on the peer listener).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A verifier that asks `inner` first, then requires the leaf's common name to be `cn`.
#[derive(Debug)]
pub(super) struct AllowedCn {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) cn: String,
}

impl ClientCertVerifier for AllowedCn {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if common_names(end_entity).contains(&self.cn.as_bytes()) {
            return Ok(verified);
        }
        // etcd's words for it.
        Err(rustls::Error::General("client certificate authentication failed".into()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, contents, rest), or `None` if the lengths do not add up.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |len, b| (len << 8) | *b as usize), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11];
/// GeneralName's `[2] dNSName` and `[7] iPAddress`, implicitly tagged.
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;

/// The subject of a certificate and what follows it in the TBS certificate.
fn subject_and_rest(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, cert, _) = element(cert)? else { return None };
    let (SEQUENCE, tbs, _) = element(cert)? else { return None };
    let mut rest = tbs;
    // [0] version, when present; then serial, signature algorithm, issuer, validity.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, subject, rest) = element(rest)? else { return None };
    Some((subject, rest))
}

/// The subject alternative names of a certificate: (DNS names, IP addresses).
pub(super) fn subject_alt_names(cert: &[u8]) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    let extensions = || -> Option<&[u8]> {
        // After the subject: the public key, then optional [1], [2] and [3] extensions.
        let mut rest = element(subject_and_rest(cert)?.1)?.2;
        while let Some((tag, contents, after)) = element(rest) {
            if tag == 0xa3 {
                let (SEQUENCE, extensions, _) = element(contents)? else { return None };
                return Some(extensions);
            }
            rest = after;
        }
        None
    };
    let Some(mut extensions) = extensions() else { return (dns, ips) };
    while let Some((SEQUENCE, extension, after)) = element(extensions) {
        extensions = after;
        let Some((OID, oid, mut rest)) = element(extension) else { continue };
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        // `critical`, when present, before the value.
        if rest.first() == Some(&0x01) {
            rest = element(rest).map_or(&[][..], |e| e.2);
        }
        let Some((0x04, value, _)) = element(rest) else { continue };
        let Some((SEQUENCE, mut names, _)) = element(value) else { continue };
        while let Some((tag, name, next)) = element(names) {
            match (tag, name.len()) {
                (DNS_NAME, _) => dns.push(String::from_utf8_lossy(name).into_owned()),
                (IP_ADDRESS, 4) => ips.push(std::net::IpAddr::from(<[u8; 4]>::try_from(name).expect("4 bytes"))),
                (IP_ADDRESS, 16) => ips.push(std::net::IpAddr::from(<[u8; 16]>::try_from(name).expect("16 bytes"))),
                _ => {}
            }
            names = next;
        }
    }
    (dns, ips)
}

/// etcd 3.4's `checkSAN`: a certificate naming IP addresses or DNS names must name the
/// address it is used from, an IP directly or a DNS name that resolves to it (forward
/// lookup only: Go also tries a reverse lookup); one naming neither is accepted.
pub fn check_client_san(cert: &[u8], remote: std::net::IpAddr) -> std::result::Result<(), String> {
    let (dns, ips) = subject_alt_names(cert);
    if ips.contains(&remote) || (dns.is_empty() && ips.is_empty()) {
        return Ok(());
    }
    if dns.is_empty() {
        let valid: Vec<String> = ips.iter().map(ToString::to_string).collect();
        return Err(format!("x509: certificate is valid for {}, not {remote}", valid.join(", ")));
    }
    use std::net::ToSocketAddrs;
    let resolves = |name: &String| (name.as_str(), 0).to_socket_addrs().is_ok_and(|mut a| a.any(|a| a.ip() == remote));
    if dns.iter().filter(|n| !n.starts_with("*.")).any(resolves) {
        return Ok(());
    }
    Err(format!("tls: {:?} does not match any of DNSNames {dns:?}", remote.to_string()))
}

/// The common name of a certificate's subject as Go's `pkix.Name` reads it (the last one),
/// for etcd's `AuthInfoFromTLS`; `None` without one or for garbage.
pub fn common_name(cert: &[u8]) -> Option<String> {
    common_names(cert).last().map(|name| String::from_utf8_lossy(name).into_owned())
}

/// The common names in a certificate's subject (usually one).
fn common_names(cert: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    let Some((mut rdns, _)) = subject_and_rest(cert) else { return names };
    while let Some((SET, mut attributes, after)) = element(rdns) {
        while let Some((SEQUENCE, attribute, next)) = element(attributes) {
            if let Some((OID, oid, value)) = element(attribute) {
                if oid == COMMON_NAME {
                    if let Some((_, name, _)) = element(value) {
                        names.push(name);
                    }
                }
            }
            attributes = next;
        }
        rdns = after;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_are_read_from_the_subject_and_garbage_gives_none() {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "etcd");
        params.distinguished_name.push(rcgen::DnType::CommonName, "member-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_names(cert.der()), vec![b"member-1".as_slice()]);
        assert_eq!(common_name(cert.der()).as_deref(), Some("member-1"));
        for cut in 0..cert.der().len() {
            let _ = common_names(&cert.der()[..cut]);
        }
        assert!(common_names(b"\x30\x84\xff\xff\xff\xff").is_empty());
        assert!(common_names(b"").is_empty());
        assert_eq!(common_name(b""), None);
    }

    #[test]
    fn client_sans_are_checked_against_the_remote_address_as_etcd_does() {
        let cert = |names: &[&str]| {
            let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
            params.unwrap().self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
        };
        let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let ip = cert(&["127.0.0.1", "::1"]);
        assert_eq!(subject_alt_names(&ip).1, vec![local, "::1".parse().unwrap()]);
        assert_eq!(check_client_san(&ip, local), Ok(()));
        assert_eq!(
            check_client_san(&ip, other).unwrap_err(),
            "x509: certificate is valid for 127.0.0.1, ::1, not 127.0.0.2"
        );
        assert_eq!(check_client_san(&cert(&[]), other), Ok(()), "no SANs: anyone");
        let dns = cert(&["localhost"]);
        assert_eq!(subject_alt_names(&dns).0, vec!["localhost".to_string()]);
        assert_eq!(check_client_san(&dns, local), Ok(()));
        assert!(check_client_san(&dns, other).unwrap_err().contains("does not match any of DNSNames"));
        for cut in 0..ip.len() {
            let _ = subject_alt_names(&ip[..cut]);
        }
    }
}
