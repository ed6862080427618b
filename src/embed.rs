//! [`Member`]: one member together with its client listeners, as etcd's `embed.Etcd` is. It
//! owns the start and shutdown order, so the CLI, the tests and a Rust program that embeds
//! raftkv all get the same one.
//!
//! Start: bind every `--listen-client-urls` and `--listen-metrics-urls` socket first (a port
//! in use fails before the data dir is touched) and load the TLS certificate of the
//! `https://` client ones (generated with `--auto-tls`), open the member, then serve the
//! gateway on each client socket and `/metrics` with the probes on each metrics socket.
//! Shutdown: stop the client listeners first (no new request reaches a member that is going
//! away; their event loops, pool and stream threads are joined), then the member itself.
//!
//! Threads: none of its own. [`Member::run`] runs the member's loop on the caller's thread (the
//! CLI gives it the process main thread); [`Member::start`] runs it on `raftkv-run`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::api::net::HttpServer;
use crate::tls::{ServerTls, CLIENT_PORT_ALPN};
use crate::{Config, Node, Result, Server};

/// A client listener: its URL, its socket, and its TLS for an `https://` URL.
type Listener = (String, TcpListener, Option<Arc<ServerTls>>);

/// Every socket a member serves clients on: the client port's, then the metrics port's.
struct Listeners {
    clients: Vec<Listener>,
    metrics: Vec<(String, TcpListener)>,
}

/// A member and the gateway on its client listeners. Cheap to clone: clones share the member,
/// and any of them stops it.
#[derive(Clone)]
pub struct Member {
    node: Node,
    clients: Arc<Mutex<Vec<HttpServer>>>,
    addrs: Arc<Vec<SocketAddr>>,
    metrics_addrs: Arc<Vec<SocketAddr>>,
    /// The run loop until [`Member::run`] takes it; `None` once started or run.
    server: Arc<Mutex<Option<Server>>>,
}

impl Member {
    /// Opens the member and serves its clients; the caller then gives a thread to
    /// [`Member::run`]. Requests wait (or time out) until the loop runs.
    pub fn open(cfg: Config) -> Result<Member> {
        let listeners = bind_listeners(&cfg)?;
        let (server, node) = Node::open(cfg)?;
        Member::serve(node, listeners, Some(server))
    }

    /// Opens the member, runs its loop on `raftkv-run`, and serves its clients.
    pub fn start(cfg: Config) -> Result<Member> {
        let listeners = bind_listeners(&cfg)?;
        Member::serve(Node::start(cfg)?, listeners, None)
    }

    fn serve(node: Node, listeners: Listeners, server: Option<Server>) -> Result<Member> {
        let mut clients = Vec::with_capacity(listeners.clients.len() + listeners.metrics.len());
        let mut addrs = Vec::with_capacity(listeners.clients.len());
        for (url, listener, tls) in listeners.clients {
            // On an error the servers already started stop as `clients` drops.
            let served = crate::api::serve(listener, node.clone(), tls)?;
            log::info!("raftkv: serving client requests on {url} ({})", served.local_addr());
            addrs.push(served.local_addr());
            clients.push(served);
        }
        let mut metrics_addrs = Vec::with_capacity(listeners.metrics.len());
        for (url, listener) in listeners.metrics {
            let served = crate::api::serve_metrics(listener, node.clone())?;
            log::info!("raftkv: serving metrics on {url} ({})", served.local_addr());
            metrics_addrs.push(served.local_addr());
            clients.push(served);
        }
        Ok(Member {
            node,
            clients: Arc::new(Mutex::new(clients)),
            addrs: Arc::new(addrs),
            metrics_addrs: Arc::new(metrics_addrs),
            server: Arc::new(Mutex::new(server)),
        })
    }

    /// Runs the member's loop on this thread until [`Member::stop`] (from another thread) or a
    /// fatal error ends it, then stops the client listeners. Returns the loop's outcome.
    ///
    /// # Panics
    /// When the loop already runs: the member came from [`Member::start`] or was run before.
    pub fn run(&self) -> Result<()> {
        let server = self.server.lock().take().expect("Member::run: the loop already runs");
        let outcome = server.run();
        self.stop_clients();
        outcome
    }

    /// The member, to call directly rather than through a listener.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where each `--listen-client-urls` entry is served, in order (a `:0` port is resolved).
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Where each `--listen-metrics-urls` entry is served, in order.
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    /// Stops the client listeners, then the member, and joins all their threads. Reports the
    /// fatal error that stopped the member, if one did. Calling it again is harmless.
    pub fn stop(&self) -> Result<()> {
        self.stop_clients();
        self.node.stop()
    }

    fn stop_clients(&self) {
        for mut client in std::mem::take(&mut *self.clients.lock()) {
            client.stop();
        }
    }
}

fn bind_listeners(cfg: &Config) -> Result<Listeners> {
    let metrics = cfg
        .listen_metrics_urls
        .iter()
        .map(|url| Ok((url.clone(), crate::config::bind("--listen-metrics-urls", url)?)))
        .collect::<Result<_>>()?;
    Ok(Listeners { clients: bind_clients(cfg)?, metrics })
}

fn bind_clients(cfg: &Config) -> Result<Vec<Listener>> {
    let secure = cfg.listen_client_urls.iter().any(|u| u.starts_with("https://"));
    let tls = if secure { Some(client_tls(cfg)?) } else { None };
    cfg.listen_client_urls
        .iter()
        .map(|url| {
            let listener = crate::config::bind("--listen-client-urls", url)?;
            if url.starts_with("http://") && !cfg.client_tls.is_empty() {
                log::warn!("scheme is HTTP while key and cert files are present; ignoring key and cert files ({url})");
            }
            let tls = if url.starts_with("https://") { tls.clone() } else { None };
            Ok((url.clone(), listener, tls))
        })
        .collect()
}

/// The client port's TLS, shared by its `https://` listeners: the given certificate, or with
/// `--auto-tls` and none given, a self-signed one in `<data-dir>/fixtures/client` for the
/// listen URLs' hosts (etcd's `ClientSelfCert`).
fn client_tls(cfg: &Config) -> Result<Arc<ServerTls>> {
    let mut info = cfg.client_tls.clone();
    if info.auto_tls {
        if info.is_empty() {
            let hosts: Vec<String> = cfg
                .listen_client_urls
                .iter()
                .map(|u| {
                    u.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
                })
                .collect();
            crate::tls::self_cert(&mut info, &cfg.data_dir.join("fixtures").join("client"), &hosts, false)?;
        } else {
            log::warn!("ignoring client auto TLS since certs given");
        }
    }
    ServerTls::new(&info, &CLIENT_PORT_ALPN)
}
