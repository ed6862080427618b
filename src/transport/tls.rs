//! The peer port's TLS (`--peer-cert-file --peer-key-file --peer-trusted-ca-file
//! --peer-client-cert-auth --peer-auto-tls --peer-cert-allowed-cn`, `https://` peer URLs), as
//! etcd's rafthttp uses its `PeerTLSInfo`: the same certificate serves the peer listener and
//! identifies this member when it dials, and a trusted CA file makes every member show a
//! certificate it signed. Handshakes are blocking: the accepting side's on its
//! `raftkv-peer-rx` thread (within the hello timeout), the dialing side's on the dialer's.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use crate::config::Config;
use crate::tls::{self, ClientTls, ClientTlsInfo, ServerTls, Stream};
use crate::Result;

/// This member's peer TLS: what it serves `https://` peer connections with, and what it dials
/// `https://` peer URLs with.
pub struct PeerTls {
    /// `None` when this member's peer listener is plaintext (it may still dial `https://`).
    server: Option<Arc<ServerTls>>,
    client: ClientTls,
    /// Check a client certificate's SANs against the address it connects from (etcd 3.4's
    /// default on the peer listener).
    check_san: bool,
}

impl PeerTls {
    /// From the `--peer-*` settings; `None` when no peer URL (this member's or the initial
    /// cluster's) is `https://` and no peer certificate is given.
    pub fn from_config(cfg: &Config) -> Result<Option<PeerTls>> {
        let mut info = cfg.peer_tls.clone();
        let any_https =
            cfg.listen_peer_urls.iter().chain(&cfg.initial_advertise_peer_urls).any(|u| u.starts_with("https://"))
                || cfg.initial_cluster.contains("https://");
        if info.is_empty() && !info.auto_tls && !any_https {
            return Ok(None);
        }
        let self_signed = info.auto_tls && info.is_empty();
        if info.auto_tls && !self_signed {
            log::warn!("ignoring peer auto TLS since certs given");
        }
        if self_signed {
            let hosts: Vec<String> = cfg.listen_peer_urls.iter().map(|u| host_port(u).to_string()).collect();
            tls::self_cert(&mut info, &cfg.data_dir.join("fixtures").join("peer"), &hosts, true)?;
        }
        let listens_tls = cfg.listen_peer_urls.first().is_some_and(|u| u.starts_with("https://"));
        let server = if listens_tls { Some(ServerTls::new(&info, &[])?) } else { None };
        let has_cert = !info.is_empty();
        let client = ClientTls::new(
            &ClientTlsInfo {
                ca_file: info.trusted_ca_file.clone(),
                cert_file: Some(info.cert_file.clone()).filter(|_| has_cert),
                key_file: Some(info.key_file.clone()).filter(|_| has_cert),
                // etcd trusts any peer certificate when its own is self-signed: there is no
                // CA to check one against.
                insecure_skip_verify: self_signed,
            },
            &[],
        )?;
        Ok(Some(PeerTls { server, client, check_san: !info.skip_client_san_verify }))
    }

    /// The accepting side's handshake on a new connection (plain when the listener is).
    pub(super) fn accept(tls: Option<&PeerTls>, tcp: TcpStream) -> io::Result<Stream> {
        match tls.and_then(|t| t.server.as_ref()) {
            Some(server) => {
                let remote = tcp.peer_addr()?.ip();
                let session = server.accept().map_err(io::Error::other)?;
                let stream = Stream::handshake(tcp, rustls::Connection::Server(session))?;
                let checked = match stream.peer_certificate() {
                    Some(cert) if tls.is_some_and(|t| t.check_san) => tls::check_client_san(&cert, remote),
                    _ => Ok(()),
                };
                checked.map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
                Ok(stream)
            }
            None => Ok(Stream::plain(tcp)),
        }
    }

    /// The dialing side: TLS to an `https://` URL, plain to an `http://` one.
    pub(super) fn connect(tls: Option<&PeerTls>, tcp: TcpStream, url: &str) -> io::Result<Stream> {
        if !url.starts_with("https://") {
            return Ok(Stream::plain(tcp));
        }
        let Some(tls) = tls else {
            return Err(io::Error::other(format!("{url}: an https peer URL, and no peer TLS is set up")));
        };
        tls.client.connect(tcp, host_port(url))
    }
}

/// `host:port` of a URL.
fn host_port(url: &str) -> &str {
    url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/')
}
