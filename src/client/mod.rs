//! [`Client`]: a blocking client for raftkv (or etcd) members, over etcd's gRPC API
//! ([`Client::new`], as clientv3) or its JSON gateway ([`Client::gateway`]).
//!
//! gRPC: one HTTP/2 connection per endpoint ([`grpc::Channel`] over [`h2::Connection`]) carries
//! every call and stream of the client and of all its clones at once, from any thread.
//! Gateway: one keep-alive HTTP/1.1 connection per client, reused across calls and guarded by
//! a mutex (clone a `Client` per thread for parallel calls). Either way, when the current
//! endpoint cannot be reached (or answers `Unavailable`) the next one is tried, except that a
//! call that may already have been applied is never sent again. Errors the server answers with
//! come back as [`Error::Server`] with etcd's message and gRPC code; `raftkvctl` is built on
//! this. Streams (watch, observe, snapshot) and the calls that wait for other clients (lock,
//! campaign) run without a deadline on the answer; closing them ends them on the server.
//!
//! Auth: [`Client::with_credentials`] authenticates once and sends the token with every call
//! (gRPC's `token` metadata, the gateway's `Authorization` header); a call refused because
//! the token is invalid or its auth revision old authenticates again and is made once more,
//! as clientv3's retry interceptor does.
//!
//! TLS: `https://` endpoints (and scheme-less ones once [`Client::with_tls`] gave a config)
//! are dialed over TLS, ALPN `h2` for gRPC and `http/1.1` for the gateway, as etcdctl does
//! with `--cacert --cert --key --insecure-skip-tls-verify`; without a config an `https://`
//! endpoint is verified against the system's CA bundle.

pub mod grpc;
pub mod h2;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use crate::tls::{ClientTls, ClientTlsInfo, Stream};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prost::Message;
use sha2::{Digest, Sha256};

use grpc::{Channel, Failed};
use h2::Keepalive;

use crate::error::Code;
use crate::jsonpb::msg::{ErrorBody, StreamError, StreamResult};
use crate::jsonpb::{FromJson, ToJson};
use crate::pb::*;
use crate::service::Method;
use crate::wait::Cancel;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the call with etcd's error: its message and gRPC code.
    #[error("{message}")]
    Server { code: Code, message: String },
    /// No endpoint could be reached, or one broke the protocol.
    #[error("{endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The call could not be made as asked (no endpoints, a bad argument).
    #[error("{0}")]
    Usage(String),
    /// A waiting call given up by its caller (Go's `context.Canceled`, as etcdctl prints it).
    #[error("context canceled")]
    Canceled,
}

impl From<crate::Error> for Error {
    /// The answer a server gives for its error.
    fn from(e: crate::Error) -> Error {
        Error::Server { code: e.code(), message: e.to_string() }
    }
}

impl Error {
    /// The gRPC code of the server's refusal; `Unavailable` when there was no answer.
    pub fn code(&self) -> Code {
        match self {
            Error::Server { code, .. } => *code,
            Error::Unreachable { .. } => Code::Unavailable,
            Error::Usage(_) => Code::InvalidArgument,
            Error::Canceled => Code::Canceled,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Largest response body accepted.
const RESPONSE_MAX: usize = 64 << 20;
/// How often a waiting call looks at its [`Cancel`] while no answer comes.
const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct Client {
    /// `host:port` of each endpoint.
    endpoints: Vec<String>,
    /// Whether each endpoint is dialed over TLS.
    secure: Vec<bool>,
    /// Endpoints given with no scheme: TLS once a config is given, as etcdctl's flags do.
    bare: Vec<bool>,
    /// The TLS of the secure endpoints, offering `http/1.1` (gRPC's channels keep their own).
    tls: Option<ClientTls>,
    timeout: Duration,
    /// gRPC's connection dial timeout (etcdctl's `--dial-timeout`).
    dial_timeout: Duration,
    /// gRPC's connection keepalive (etcdctl's `--keepalive-time`); off unless asked for, as
    /// in clientv3.
    keepalive: Option<Keepalive>,
    /// The gateway's open connection, the index of its endpoint, and when it last answered.
    conn: Mutex<Option<(usize, BufReader<Stream>, Instant)>>,
    /// gRPC's channels, one per endpoint, shared by every clone; `None` for a gateway client.
    grpc: Option<Arc<Vec<Channel>>>,
    /// The endpoint gRPC calls go to first: the last one that answered.
    current: Arc<AtomicUsize>,
    /// The user and password [`Client::with_credentials`] authenticates with.
    credentials: Option<Arc<(String, String)>>,
    /// The auth token sent with every call, shared by every clone and gRPC channel.
    token: Token,
}

/// The auth token a client sends, once it has one.
pub(crate) type Token = Arc<RwLock<Option<String>>>;

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            endpoints: self.endpoints.clone(),
            secure: self.secure.clone(),
            bare: self.bare.clone(),
            tls: self.tls.clone(),
            timeout: self.timeout,
            dial_timeout: self.dial_timeout,
            keepalive: self.keepalive,
            conn: Mutex::new(None),
            grpc: self.grpc.clone(),
            current: self.current.clone(),
            credentials: self.credentials.clone(),
            token: self.token.clone(),
        }
    }
}

impl Client {
    /// A gRPC client for `endpoints` (`http://host:port` or `host:port`) with a per-call
    /// timeout, as etcdctl and clientv3 connect.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Client> {
        Client::with_dial_timeout(endpoints, timeout, timeout)
    }

    /// A gRPC client whose connections are dialed within `dial_timeout` (etcdctl's
    /// `--dial-timeout`) and whose calls each take at most `timeout`.
    pub fn with_dial_timeout(endpoints: &[String], timeout: Duration, dial_timeout: Duration) -> Result<Client> {
        let mut client = Client::gateway(endpoints, timeout)?;
        client.dial_timeout = dial_timeout;
        client.channels();
        Ok(client)
    }

    /// A client over the JSON gateway (HTTP/1.1), for where only that is open.
    pub fn gateway(endpoints: &[String], timeout: Duration) -> Result<Client> {
        let endpoints: Vec<&str> =
            endpoints.iter().flat_map(|e| e.split(',')).map(str::trim).filter(|e| !e.is_empty()).collect();
        if endpoints.is_empty() {
            return Err(Error::Usage("no endpoints".into()));
        }
        let secure: Vec<bool> = endpoints.iter().map(|e| e.starts_with("https://")).collect();
        let bare = endpoints.iter().map(|e| !e.starts_with("https://") && !e.starts_with("http://")).collect();
        let tls = match secure.contains(&true) {
            true => Some(ClientTls::new(&ClientTlsInfo::default(), &[b"http/1.1"]).map_err(tls_usage)?),
            false => None,
        };
        let endpoints = endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string())
            .collect();
        Ok(Client {
            endpoints,
            secure,
            bare,
            tls,
            timeout,
            dial_timeout: timeout,
            keepalive: None,
            conn: Mutex::new(None),
            grpc: None,
            current: Arc::new(AtomicUsize::new(0)),
            credentials: None,
            token: Token::default(),
        })
    }

    /// The same client making its calls as `user` (etcdctl's `--user`, clientv3's
    /// `Username`/`Password`): it authenticates now, and again whenever the token stops
    /// working.
    pub fn with_credentials(mut self, user: &str, password: &str) -> Result<Client> {
        self.credentials = Some(Arc::new((user.to_string(), password.to_string())));
        self.authenticate()?;
        Ok(self)
    }

    /// Gets a new token for the client's credentials.
    fn authenticate(&self) -> Result<()> {
        let Some(credentials) = &self.credentials else { return Ok(()) };
        let req = AuthenticateRequest { name: credentials.0.clone(), password: credentials.1.clone() };
        *self.token.write() = None;
        let resp: AuthenticateResponse = self.call_once(Method::Authenticate, &req)?;
        *self.token.write() = Some(resp.token);
        Ok(())
    }

    /// The same client with TLS set up from `info` (etcdctl's `--cacert --cert --key
    /// --insecure-skip-tls-verify`): for `https://` endpoints and for those given without a
    /// scheme; `http://` ones stay plaintext.
    pub fn with_tls(mut self, info: &ClientTlsInfo) -> Result<Client> {
        self.tls = Some(ClientTls::new(info, &[b"http/1.1"]).map_err(tls_usage)?);
        for (secure, bare) in self.secure.iter_mut().zip(&self.bare) {
            *secure |= *bare;
        }
        if self.grpc.is_some() {
            self.channels();
        }
        Ok(self)
    }

    /// The same client with its gRPC connections pinged after `time` without a frame read,
    /// and closed when `timeout` passes without one after the ping (etcdctl's
    /// `--keepalive-time` and `--keepalive-timeout`): a member that vanishes without closing
    /// its connections (paused, cut off) then fails calls over to the next endpoint instead
    /// of holding streams forever. No effect on a gateway client.
    pub fn with_keepalive(mut self, time: Duration, timeout: Duration) -> Client {
        self.keepalive = Some(Keepalive { time, timeout });
        if self.grpc.is_some() {
            self.channels();
        }
        self
    }

    /// gRPC's channels, one per endpoint, with their TLS and keepalive.
    fn channels(&mut self) {
        let channels = self.endpoints.iter().zip(&self.secure).map(|(endpoint, secure)| {
            Channel::with_tls(endpoint, self.dial_timeout, self.tls.clone().filter(|_| *secure), self.keepalive)
                .with_token(self.token.clone())
        });
        self.grpc = Some(Arc::new(channels.collect()));
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.call(Method::Range, req)
    }

    pub fn put(&self, req: &PutRequest) -> Result<PutResponse> {
        self.call(Method::Put, req)
    }

    pub fn delete_range(&self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.call(Method::DeleteRange, req)
    }

    pub fn txn(&self, req: &TxnRequest) -> Result<TxnResponse> {
        self.call(Method::Txn, req)
    }

    pub fn compact(&self, req: &CompactionRequest) -> Result<CompactionResponse> {
        self.call(Method::Compact, req)
    }

    pub fn lease_grant(&self, req: &LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        self.call(Method::LeaseGrant, req)
    }

    pub fn lease_revoke(&self, req: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        self.call(Method::LeaseRevoke, req)
    }

    /// One keepalive: a stream of one request and its one answer.
    pub fn lease_keep_alive(&self, req: &LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        if self.grpc.is_none() {
            return self
                .gateway_call::<_, StreamResult<LeaseKeepAliveResponse>>(Method::LeaseKeepAlive, req)
                .map(|r| r.0);
        }
        let mut answer = None;
        self.stream(Method::LeaseKeepAlive, std::slice::from_ref(req), true, |resp: LeaseKeepAliveResponse| {
            answer = Some(resp);
            false
        })?;
        answer.ok_or_else(|| Error::Unreachable {
            endpoint: self.endpoint(),
            reason: "keepalive stream ended unanswered".into(),
        })
    }

    pub fn lease_time_to_live(&self, req: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        self.call(Method::LeaseTimeToLive, req)
    }

    pub fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.call(Method::LeaseLeases, &EmptyRequest {})
    }

    /// Opens a watch stream on its own connection; `on_response` gets every response until it
    /// returns false or the stream ends.
    pub fn watch(&self, req: &WatchCreateRequest, on_response: impl FnMut(WatchResponse) -> bool) -> Result<()> {
        let create = watch_request::RequestUnion::CreateRequest(req.clone());
        self.watch_requests(&[WatchRequest { request_union: Some(create) }], on_response)
    }

    /// A watch stream opened with `requests` in order (creates, cancels, progress requests).
    /// Over the gateway they are the whole request body (the gateway reads it before it
    /// answers), so a progress request goes in with the create it follows; over gRPC they are
    /// the stream's first messages.
    pub fn watch_requests(
        &self,
        requests: &[WatchRequest],
        on_response: impl FnMut(WatchResponse) -> bool,
    ) -> Result<()> {
        self.stream(Method::Watch, requests, false, on_response)
    }

    /// Takes a lock (etcd's `Lock`), waiting while others hold it; `cancel` gives up (the
    /// server then deletes this caller's place in the queue).
    pub fn lock(&self, req: &LockRequest, cancel: &Cancel) -> Result<LockResponse> {
        self.call_waiting(Method::Lock, req, cancel)
    }

    pub fn unlock(&self, req: &UnlockRequest) -> Result<UnlockResponse> {
        self.call(Method::Unlock, req)
    }

    /// Campaigns in an election (etcd's `Campaign`) until elected; `cancel` gives up (the
    /// server then resigns the candidate).
    pub fn campaign(&self, req: &CampaignRequest, cancel: &Cancel) -> Result<CampaignResponse> {
        self.call_waiting(Method::Campaign, req, cancel)
    }

    pub fn proclaim(&self, req: &ProclaimRequest) -> Result<ProclaimResponse> {
        self.call(Method::Proclaim, req)
    }

    pub fn leader(&self, req: &LeaderRequest) -> Result<LeaderResponse> {
        self.call(Method::Leader, req)
    }

    pub fn resign(&self, req: &ResignRequest) -> Result<ResignResponse> {
        self.call(Method::Resign, req)
    }

    /// Observes an election on its own connection: `on_response` gets the leader and each
    /// change of it until it returns false or the stream ends.
    pub fn observe(&self, req: &LeaderRequest, on_response: impl FnMut(LeaderResponse) -> bool) -> Result<()> {
        self.stream(Method::Observe, std::slice::from_ref(req), true, on_response)
    }

    /// A call that waits for other clients, on a connection of its own with no deadline on its
    /// answer, until it is answered or `cancel` fires: the connection is then closed, which is
    /// how the server learns that its caller left. Sent once: it queues the caller.
    fn call_waiting<Req: ToJson, Resp: FromJson>(&self, method: Method, req: &Req, cancel: &Cancel) -> Result<Resp> {
        let endpoint = self.endpoint();
        let unreachable = |reason: String| Error::Unreachable { endpoint: endpoint.clone(), reason };
        let stream = self.connect(self.conn.lock().as_ref().map_or(0, |(i, _, _)| *i))?;
        let mut stream = BufReader::new(stream);
        send(
            stream.get_mut(),
            &endpoint,
            &method.gateway_path(),
            req.to_json().as_bytes(),
            self.token.read().as_deref(),
        )
        .map_err(|e| unreachable(e.to_string()))?;
        // The answer comes all at once when the call ends; until then, look at the cancel. A
        // read that times out loses nothing (a TLS session keeps a partial record).
        stream.get_ref().tcp().set_read_timeout(Some(CANCEL_POLL_INTERVAL)).map_err(|e| unreachable(e.to_string()))?;
        loop {
            match stream.fill_buf() {
                Ok([]) => return Err(unreachable("connection closed".into())),
                Ok(_) => break,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    cancel.check().map_err(|_| Error::Canceled)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unreachable(e.to_string())),
            }
        }
        stream.get_ref().tcp().set_read_timeout(Some(self.timeout)).map_err(|e| unreachable(e.to_string()))?;
        let (status, body, _) = answer(&mut stream).map_err(unreachable)?;
        decode(status, &body, &endpoint)
    }

    /// Downloads the member's snapshot (etcd's `Maintenance.Snapshot`) into `out`: the state,
    /// then its SHA-256, which is checked here. Returns the bytes written.
    pub fn snapshot(&self, out: &mut dyn Write) -> Result<u64> {
        let endpoint = self.endpoint();
        let unreachable = |reason: String| Error::Unreachable { endpoint: endpoint.clone(), reason };
        let (mut written, mut hash, mut failed) = (0u64, Sha256::new(), None);
        // The member's last data chunk says no bytes remain; the message after it is the hash.
        let (mut data_done, mut trailer) = (false, None);
        self.stream(Method::Snapshot, &[EmptyRequest {}], true, |chunk: SnapshotResponse| {
            if data_done {
                trailer = Some(chunk.blob);
                return false;
            }
            data_done = chunk.remaining_bytes == 0;
            hash.update(&chunk.blob);
            written += chunk.blob.len() as u64;
            if let Err(e) = out.write_all(&chunk.blob) {
                failed = Some(e.to_string());
                return false;
            }
            true
        })?;
        if let Some(e) = failed {
            return Err(Error::Usage(format!("cannot write the snapshot: {e}")));
        }
        let Some(trailer) = trailer else {
            return Err(unreachable("snapshot stream ended before its checksum".into()));
        };
        if hash.finalize()[..] != trailer[..] {
            return Err(unreachable("snapshot checksum mismatch".into()));
        }
        out.write_all(&trailer).map_err(|e| Error::Usage(format!("cannot write the snapshot: {e}")))?;
        Ok(written + trailer.len() as u64)
    }

    /// A stream of `method` opened with `requests` (our side ended after them when `end`),
    /// every answer to `on_response` until it returns false or the stream ends.
    fn stream<Req: ToJson + Message, Resp: FromJson + Message + Default>(
        &self,
        method: Method,
        requests: &[Req],
        end: bool,
        mut on_response: impl FnMut(Resp) -> bool,
    ) -> Result<()> {
        let Some(channels) = &self.grpc else {
            let body: Vec<String> = requests.iter().map(ToJson::to_json).collect();
            return self.gateway_stream(method, body.join("\n"), on_response);
        };
        let index = self.current.load(Ordering::Relaxed) % channels.len();
        let mut last = None;
        // Streams are opened on the first endpoint that takes them; once one answered, a
        // broken stream is the caller's to reopen (a watch resumes from its revision).
        for attempt in 0..channels.len() {
            let channel = &channels[(index + attempt) % channels.len()];
            let opened = channel.stream(method).and_then(|mut stream| {
                for (i, req) in requests.iter().enumerate() {
                    stream.send(req, end && i + 1 == requests.len(), self.timeout)?;
                }
                Ok(stream)
            });
            let mut stream = match opened {
                Ok(stream) => stream,
                Err(e @ Error::Unreachable { .. }) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.current.store((index + attempt) % channels.len(), Ordering::Relaxed);
            while let Some(resp) = stream.recv(None)? {
                if !on_response(resp) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        Err(last.unwrap_or_else(|| Error::Usage("no endpoints".into())))
    }

    /// A gateway stream on its own connection: `body` as the request, then every `{"result":...}`
    /// message to `on_response` until it returns false or the stream ends.
    fn gateway_stream<Resp: FromJson + Default>(
        &self,
        method: Method,
        body: String,
        mut on_response: impl FnMut(Resp) -> bool,
    ) -> Result<()> {
        let endpoint = self.endpoint();
        let unreachable = |reason: String| Error::Unreachable { endpoint: endpoint.clone(), reason };
        let stream = self.connect(self.conn.lock().as_ref().map_or(0, |(i, _, _)| *i))?;
        // Streams are long-lived: no read timeout.
        stream.tcp().set_read_timeout(None).map_err(|e| unreachable(e.to_string()))?;
        let mut stream = BufReader::new(stream);
        send(stream.get_mut(), &endpoint, &method.gateway_path(), body.as_bytes(), self.token.read().as_deref())
            .map_err(|e| unreachable(e.to_string()))?;
        let status = read_line(&mut stream).map_err(unreachable)?;
        while !read_line(&mut stream).map_err(unreachable)?.is_empty() {}
        if !status.contains(" 200 ") {
            return Err(unreachable(status));
        }
        // Messages end with a newline; HTTP chunks need not follow message boundaries.
        let mut pending = Vec::new();
        loop {
            let size = read_line(&mut stream).map_err(unreachable)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| unreachable("bad chunk".into()))?;
            if size == 0 {
                return Ok(());
            }
            if pending.len() + size > RESPONSE_MAX {
                return Err(unreachable(format!("stream message over {RESPONSE_MAX} bytes")));
            }
            let start = pending.len();
            pending.resize(start + size + 2, 0);
            stream.read_exact(&mut pending[start..]).map_err(|e| unreachable(e.to_string()))?;
            pending.truncate(start + size);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let message: Vec<u8> = pending.drain(..=end).collect();
                let body = &message[..end];
                if let Ok(StreamError(Some(e))) = StreamError::from_body(body) {
                    return Err(Error::Server { code: Code::from_u32(e.grpc_code), message: e.message });
                }
                let resp = StreamResult::<Resp>::from_body(body).map_err(|e| unreachable(e.0))?.0;
                if !on_response(resp) {
                    return Ok(());
                }
            }
        }
    }

    pub fn alarm(&self, req: &AlarmRequest) -> Result<AlarmResponse> {
        self.call(Method::Alarm, req)
    }

    pub fn defragment(&self) -> Result<DefragmentResponse> {
        self.call(Method::Defragment, &EmptyRequest {})
    }

    pub fn status(&self) -> Result<StatusResponse> {
        self.call(Method::Status, &EmptyRequest {})
    }

    pub fn member_list(&self) -> Result<MemberListResponse> {
        self.call(Method::MemberList, &EmptyRequest {})
    }

    pub fn member_add(&self, req: &MemberAddRequest) -> Result<MemberAddResponse> {
        self.call(Method::MemberAdd, req)
    }

    pub fn member_remove(&self, req: &MemberRemoveRequest) -> Result<MemberListResponse> {
        self.call(Method::MemberRemove, req)
    }

    pub fn member_update(&self, req: &MemberUpdateRequest) -> Result<MemberListResponse> {
        self.call(Method::MemberUpdate, req)
    }

    pub fn member_promote(&self, req: &MemberPromoteRequest) -> Result<MemberListResponse> {
        self.call(Method::MemberPromote, req)
    }

    /// Must reach the leader (etcdctl finds it first with `status`).
    pub fn move_leader(&self, req: &MoveLeaderRequest) -> Result<MoveLeaderResponse> {
        self.call(Method::MoveLeader, req)
    }

    pub fn hash(&self) -> Result<HashResponse> {
        self.call(Method::Hash, &EmptyRequest {})
    }

    /// HashKV (etcd's `Maintenance.HashKV`), over gRPC only: etcd 3.4's gateway has no path
    /// for it.
    pub fn hash_kv(&self, req: &HashKvRequest) -> Result<HashKvResponse> {
        match &self.grpc {
            Some(channels) => self.grpc_call(channels, Method::HashKv, req),
            None => Err(Error::Usage("HashKV is served over gRPC only".into())),
        }
    }

    /// The endpoint the last call used.
    pub fn endpoint(&self) -> String {
        let index = match self.grpc {
            Some(_) => self.current.load(Ordering::Relaxed),
            None => self.conn.lock().as_ref().map_or(0, |(i, _, _)| *i),
        };
        self.endpoints[index % self.endpoints.len()].clone()
    }

    /// Calls `method` through its gateway path with `req` and decodes the answer.
    ///
    /// Endpoints are tried in turn when one cannot be reached. Once a request has been sent, a
    /// broken answer is retried elsewhere only for calls that change nothing (or nothing more
    /// when repeated): a put, txn, lease grant or the like may have been applied, and sending
    /// it again could apply it twice, so its caller gets [`Error::Unreachable`] saying so, as
    /// clientv3 does not retry such calls either.
    pub fn call<Req: ToJson + Message, Resp: FromJson + Message + Default>(
        &self,
        method: Method,
        req: &Req,
    ) -> Result<Resp> {
        match self.call_once(method, req) {
            Err(e) if self.credentials.is_some() && stale_token(&e) => {
                self.authenticate()?;
                self.call_once(method, req)
            }
            outcome => outcome,
        }
    }

    fn call_once<Req: ToJson + Message, Resp: FromJson + Message + Default>(
        &self,
        method: Method,
        req: &Req,
    ) -> Result<Resp> {
        match &self.grpc {
            Some(channels) => self.grpc_call(channels, method, req),
            None => self.gateway_call(method, req),
        }
    }

    /// A unary call over gRPC, each endpoint once starting with the last that answered.
    fn grpc_call<Req: Message, Resp: Message + Default>(
        &self,
        channels: &[Channel],
        method: Method,
        req: &Req,
    ) -> Result<Resp> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..channels.len() {
            let index = (start + attempt) % channels.len();
            match channels[index].unary(method, req, self.timeout) {
                Ok(resp) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(Failed { error, sent }) => {
                    let unavailable = error.code() == Code::Unavailable;
                    if !unavailable {
                        return Err(error);
                    }
                    if sent && !retry_safe(method) {
                        let Error::Unreachable { endpoint, reason } = error else { return Err(error) };
                        let reason =
                            format!("{reason}; the request was sent and may have been applied, so it is not retried");
                        return Err(Error::Unreachable { endpoint, reason });
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Usage("no endpoints".into())))
    }

    fn gateway_call<Req: ToJson, Resp: FromJson>(&self, method: Method, req: &Req) -> Result<Resp> {
        let path = method.gateway_path();
        let path = path.as_str();
        let body = req.to_json();
        let mut conn = self.conn.lock();
        let start = conn.as_ref().map_or(0, |(i, _, _)| *i);
        let mut last_err = None;
        // Each endpoint once, starting with the current one; a reused connection that broke
        // before the request went out gets one fresh retry on the same endpoint first.
        for attempt in 0..=self.endpoints.len() {
            let index = (start + attempt.saturating_sub(1)) % self.endpoints.len();
            // A kept-alive connection the server has closed meanwhile is not reused: the
            // request would be lost with it, unknowably for a write. Servers close idle
            // connections only, so one that answered just now is not probed (three syscalls a
            // call would weigh on the load tool).
            let reused = conn.as_mut().is_some_and(|(i, stream, answered)| {
                *i == index && (answered.elapsed() < PROBE_AFTER_IDLE || still_open(stream))
            });
            if !reused {
                *conn = None;
                match self.connect(index) {
                    Ok(stream) => *conn = Some((index, BufReader::new(stream), Instant::now())),
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                }
            }
            let (_, stream, answered) = conn.as_mut().expect("connected above");
            let endpoint = &self.endpoints[index];
            match exchange(stream, endpoint, path, body.as_bytes(), self.token.read().as_deref()) {
                Ok((status, body, keep_alive)) => {
                    *answered = Instant::now();
                    if !keep_alive {
                        *conn = None;
                    }
                    return decode(status, &body, endpoint);
                }
                Err(Exchange::NotSent(reason)) => {
                    *conn = None;
                    last_err = Some(Error::Unreachable { endpoint: endpoint.clone(), reason });
                }
                Err(Exchange::Sent(reason)) => {
                    *conn = None;
                    if !retry_safe(method) {
                        let reason =
                            format!("{reason}; the request was sent and may have been applied, so it is not retried");
                        return Err(Error::Unreachable { endpoint: endpoint.clone(), reason });
                    }
                    last_err = Some(Error::Unreachable { endpoint: endpoint.clone(), reason });
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| Error::Unreachable { endpoint: self.endpoints.join(","), reason: "no endpoint".into() }))
    }

    fn connect(&self, index: usize) -> Result<Stream> {
        let endpoint = &self.endpoints[index];
        let unreachable = |reason: String| Error::Unreachable { endpoint: endpoint.clone(), reason };
        let addr = endpoint
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("no address".into()))?;
        let stream = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| unreachable(format!("dial tcp {addr}: {e}")))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| unreachable(e.to_string()))?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        match self.tls.as_ref().filter(|_| self.secure[index]) {
            Some(tls) => tls.connect(stream, endpoint).map_err(|e| unreachable(format!("tls: {e}"))),
            None => Ok(Stream::plain(stream)),
        }
    }
}

fn decode<Resp: FromJson>(status: u16, body: &[u8], endpoint: &str) -> Result<Resp> {
    let protocol = |reason: String| Error::Unreachable { endpoint: endpoint.to_string(), reason };
    if status == 200 {
        return Resp::from_body(body).map_err(|e| protocol(format!("bad response: {}", e.0)));
    }
    match ErrorBody::from_body(body) {
        Ok(err) if !err.message.is_empty() => {
            Err(Error::Server { code: Code::from_u32(err.code as u32), message: err.message })
        }
        _ => Err(protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()))),
    }
}

/// One request/response on an open connection: (status, body, keep-alive).
/// How an exchange failed: before the whole request was handed to the kernel (the server
/// cannot have acted on it), or after (it may have).
enum Exchange {
    NotSent(String),
    Sent(String),
}

/// The calls that may be sent twice: reads, and calls whose repetition changes nothing more.
fn retry_safe(method: Method) -> bool {
    use Method::*;
    matches!(
        method,
        Range
            | LeaseKeepAlive
            | LeaseTimeToLive
            | LeaseLeases
            | MemberList
            | Alarm
            | Status
            | Hash
            | HashKv
            | Defragment
            | AuthUserGet
            | AuthUserList
            | AuthRoleGet
            | AuthRoleList
            | HealthCheck
            | Leader
    )
}

/// How long a kept-alive connection may sit unused before [`still_open`] is asked first.
const PROBE_AFTER_IDLE: Duration = Duration::from_millis(100);

/// Whether a kept-alive connection is still open: the server has neither closed it nor sent
/// anything unasked (a read that would block means open and quiet).
fn still_open(stream: &mut BufReader<Stream>) -> bool {
    stream.buffer().is_empty() && !stream.get_mut().peer_closed_or_spoke()
}

/// A TLS setting the client cannot use, as its caller's mistake.
fn tls_usage(e: crate::Error) -> Error {
    Error::Usage(e.to_string())
}

/// Whether a refusal says the token no longer works (clientv3's `shouldRefreshToken`).
fn stale_token(e: &Error) -> bool {
    let old = crate::Error::AuthOldRevision.to_string();
    matches!(e, Error::Server { code: Code::Unauthenticated, .. })
        || matches!(e, Error::Server { message, .. } if *message == old)
}

fn exchange(
    stream: &mut BufReader<Stream>,
    host: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> std::result::Result<(u16, Vec<u8>, bool), Exchange> {
    send(stream.get_mut(), host, path, body, token).map_err(|e| Exchange::NotSent(e.to_string()))?;
    answer(stream).map_err(Exchange::Sent)
}

/// Writes one request, with the auth token as etcd's gateway takes it.
fn send(out: &mut Stream, host: &str, path: &str, body: &[u8], token: Option<&str>) -> std::io::Result<()> {
    let auth = token.map(|t| format!("Authorization: {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // One write: one TLS record, one segment.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    out.write_all(&request)
}

/// Reads one HTTP/1.1 answer: status, body, and whether the connection stays open.
fn answer(stream: &mut BufReader<Stream>) -> std::result::Result<(u16, Vec<u8>, bool), String> {
    let line = read_line(stream)?;
    let status: u16 =
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, !line.starts_with("HTTP/1.0"));
    loop {
        let header = read_line(stream)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = usize::from_str_radix(read_line(stream)?.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size".to_string())?;
            if size == 0 {
                while !read_line(stream)?.is_empty() {}
                break;
            }
            if body.len() + size > RESPONSE_MAX {
                return Err("response too large".into());
            }
            let start = body.len();
            body.resize(start + size, 0);
            stream.read_exact(&mut body[start..]).map_err(|e| e.to_string())?;
            read_line(stream)?;
        }
    } else if let Some(length) = length {
        if length > RESPONSE_MAX {
            return Err("response too large".into());
        }
        body.resize(length, 0);
        stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        stream.read_to_end(&mut body).map_err(|e| e.to_string())?;
        keep_alive = false;
    }
    Ok((status, body, keep_alive))
}

fn read_line(stream: &mut BufReader<Stream>) -> std::result::Result<String, String> {
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => Err("connection closed".into()),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A server on 127.0.0.1 that reads each request whole and hangs up without answering, as
    /// a member killed mid-call does; it counts the requests it got.
    fn hanging_up() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        crate::thread::spawn_named("raftkv-test-hangup", move || {
            for stream in listener.incoming() {
                let mut reader = BufReader::new(stream.unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .unwrap();
        (endpoint, seen)
    }

    /// As [`hanging_up`], for HTTP/2: it reads the preface and frames until a request's last
    /// DATA frame, counts the request, and hangs up.
    fn hanging_up_h2() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        crate::thread::spawn_named("raftkv-test-hangup", move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut preface = [0u8; 24];
                if stream.read_exact(&mut preface).is_err() {
                    continue;
                }
                loop {
                    let mut head = [0u8; 9];
                    if stream.read_exact(&mut head).is_err() {
                        break;
                    }
                    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
                    let mut payload = vec![0u8; len];
                    if stream.read_exact(&mut payload).is_err() {
                        break;
                    }
                    // DATA with END_STREAM: the request is whole.
                    if head[3] == 0 && head[4] & 1 != 0 {
                        count.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
            }
        })
        .unwrap();
        (endpoint, seen)
    }

    #[test]
    fn a_grpc_write_that_may_have_been_applied_is_not_sent_again() {
        let (first, first_seen) = hanging_up_h2();
        let (second, second_seen) = hanging_up_h2();
        let client = Client::new(&[first, second], Duration::from_secs(5)).unwrap();
        match client.put(&PutRequest::new("k", "v")) {
            Err(Error::Unreachable { reason, .. }) => assert!(reason.contains("may have been applied"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!((first_seen.load(Ordering::SeqCst), second_seen.load(Ordering::SeqCst)), (1, 0));
        // A read is safe to repeat: each endpoint once, starting with the current one.
        assert!(client.range(&RangeRequest::key("k")).is_err());
        assert_eq!((first_seen.load(Ordering::SeqCst), second_seen.load(Ordering::SeqCst)), (2, 1));
    }

    #[test]
    fn a_write_that_may_have_been_applied_is_not_sent_again() {
        let (first, first_seen) = hanging_up();
        let (second, second_seen) = hanging_up();
        let client = Client::gateway(&[first, second], Duration::from_secs(5)).unwrap();
        match client.put(&PutRequest::new("k", "v")) {
            Err(Error::Unreachable { reason, .. }) => assert!(reason.contains("may have been applied"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!((first_seen.load(Ordering::SeqCst), second_seen.load(Ordering::SeqCst)), (1, 0));
        // A read is safe to repeat: the current endpoint once more on a fresh connection, then
        // the next.
        assert!(client.range(&RangeRequest::key("k")).is_err());
        assert_eq!((first_seen.load(Ordering::SeqCst), second_seen.load(Ordering::SeqCst)), (3, 1));
    }
}
