//! `--peer-cert-allowed-cn`: a client certificate must not only chain to the trusted CA but
//! also carry this common name, as etcd's `AllowedCN` check (`VerifyPeerCertificate` on the
//! verified chain's leaf). The name is read from the certificate's DER after webpki verified
//! it: a short walk over the subject, every length checked, never a panic.

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

/// The common names in a certificate's subject (usually one).
fn common_names<'a>(cert: &'a [u8]) -> Vec<&'a [u8]> {
    let subject = || -> Option<&'a [u8]> {
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
        let (SEQUENCE, subject, _) = element(rest)? else { return None };
        Some(subject)
    };
    let mut names = Vec::new();
    let Some(mut rdns) = subject() else { return names };
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
        for cut in 0..cert.der().len() {
            let _ = common_names(&cert.der()[..cut]);
        }
        assert!(common_names(b"\x30\x84\xff\xff\xff\xff").is_empty());
        assert!(common_names(b"").is_empty());
    }
}
