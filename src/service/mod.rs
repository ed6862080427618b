//! etcd's unary calls (and gRPC's health check), once, for every protocol: [`Service::call`]
//! takes a decoded [`Request`] and answers a [`Responder`] with a [`Response`]; the JSON
//! gateway and the gRPC server only decode, route through [`rpc`] and encode.
//!
//! Where a call runs is decided here from the RPC table: the key-value calls start on the
//! adapter's thread without blocking and are answered by the raft or apply thread, whose
//! answer the responder moves back to the adapter's thread for the cheap last step (a local
//! read, encoding); every other call runs where blocking is allowed (the responder's pool),
//! and the calls that wait for other clients (`Lock`, `Campaign`) get a [`Cancel`] that
//! fires when their caller leaves. The calls themselves, with etcd's checks and rules, are
//! [`Node`]'s, except etcd's lock and election services, which are recipes over them
//! ([`lock`], [`election`], [`observe`] on `recipes`). The streams (watch, lease
//! keepalive, observe) are sessions of their adapters over [`Node`]'s stream calls.
//!
//! Every call comes with the client's [`Credentials`] (its token, and on gRPC its
//! certificate's name), resolved here once into a [`Node`] handle that carries the caller
//! ([`Service::for_caller`]); the node's calls check that caller where etcd does.

pub mod election;
pub mod lock;
pub mod metered;
pub mod observe;
pub mod reads;
mod recipes;
pub mod rpc;
pub mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Credentials;
use crate::metrics::Histogram;
use crate::pb::*;
use crate::wait::{Cancel, Reply};
use crate::{Error, Node, Result, Ticket};

pub use rpc::{Kind, Method, Rpc, Runs, RPCS};

/// Waiting calls (`Lock`, `Campaign`) in progress at once on one [`Service`], each holding a
/// pool thread until it is answered or its caller leaves: half of the HTTP server's pool
/// (`api::net::POOL_MAX`, 1024), so that a pile of contended locks never takes the threads
/// of the calls that block only briefly. More are refused with `etcdserver: too many
/// requests`.
pub const WAITING_CALLS_MAX: usize = 512;

/// Calls that wait at once, each on a pool thread for at most the request timeout, for the
/// apply of the `Authenticate` entry that made their simple token (given on another member a
/// moment ago, or made up): enough for the clients of a cluster switching members, few
/// enough that made-up tokens cannot take the pool.
pub const TOKEN_WAITS_MAX: usize = 64;

macro_rules! calls {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        /// A decoded request to one of etcd's unary calls.
        #[derive(Debug)]
        pub enum Request {
            $($method($request),)*
        }

        /// The answer to a [`Request`] of the same name.
        #[derive(Debug, PartialEq)]
        pub enum Response {
            $($method($response),)*
        }

        impl Request {
            pub fn method(&self) -> Method {
                match self {
                    $(Request::$method(_) => Method::$method,)*
                }
            }

            /// Its protobuf size (the gRPC message without its prefix).
            pub fn encoded_len(&self) -> usize {
                match self {
                    $(Request::$method(r) => prost::Message::encoded_len(r),)*
                }
            }
        }

        impl Response {
            /// Its protobuf size (the gRPC message without its prefix).
            pub fn encoded_len(&self) -> usize {
                match self {
                    $(Response::$method(r) => prost::Message::encoded_len(r),)*
                }
            }
        }
    };
}

/// Calls `$callback!` with the names of every unary call: how each protocol's codec gets the
/// method list from here rather than writing it again. `both` are served on the gateway and
/// gRPC, `grpc` on gRPC only (no gateway path in the RPC table).
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_unary {
    ($callback:ident) => {
        $callback! {
            both: [
                Range,
                Put,
                DeleteRange,
                Txn,
                Compact,
                LeaseGrant,
                LeaseRevoke,
                LeaseTimeToLive,
                LeaseLeases,
                MemberAdd,
                MemberRemove,
                MemberUpdate,
                MemberList,
                MemberPromote,
                Alarm,
                Status,
                Defragment,
                Hash,
                MoveLeader,
                AuthEnable,
                AuthDisable,
                Authenticate,
                AuthUserAdd,
                AuthUserGet,
                AuthUserList,
                AuthUserDelete,
                AuthUserChangePassword,
                AuthUserGrantRole,
                AuthUserRevokeRole,
                AuthRoleAdd,
                AuthRoleGet,
                AuthRoleList,
                AuthRoleDelete,
                AuthRoleGrantPermission,
                AuthRoleRevokePermission,
                Lock,
                Unlock,
                Campaign,
                Proclaim,
                Leader,
                Resign
            ],
            grpc: [HashKv, HealthCheck]
        }
    };
}

calls! {
    Range(RangeRequest) -> RangeResponse;
    Put(PutRequest) -> PutResponse;
    DeleteRange(DeleteRangeRequest) -> DeleteRangeResponse;
    Txn(TxnRequest) -> TxnResponse;
    Compact(CompactionRequest) -> CompactionResponse;
    LeaseGrant(LeaseGrantRequest) -> LeaseGrantResponse;
    LeaseRevoke(LeaseRevokeRequest) -> LeaseRevokeResponse;
    LeaseTimeToLive(LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse;
    LeaseLeases(EmptyRequest) -> LeaseLeasesResponse;
    MemberAdd(MemberAddRequest) -> MemberAddResponse;
    MemberRemove(MemberRemoveRequest) -> MemberListResponse;
    MemberUpdate(MemberUpdateRequest) -> MemberListResponse;
    MemberList(EmptyRequest) -> MemberListResponse;
    MemberPromote(MemberPromoteRequest) -> MemberListResponse;
    Alarm(AlarmRequest) -> AlarmResponse;
    Status(EmptyRequest) -> StatusResponse;
    Defragment(EmptyRequest) -> DefragmentResponse;
    Hash(EmptyRequest) -> HashResponse;
    HashKv(HashKvRequest) -> HashKvResponse;
    MoveLeader(MoveLeaderRequest) -> MoveLeaderResponse;
    AuthEnable(EmptyRequest) -> AuthHeaderResponse;
    AuthDisable(EmptyRequest) -> AuthHeaderResponse;
    Authenticate(AuthenticateRequest) -> AuthenticateResponse;
    AuthUserAdd(AuthUserAddRequest) -> AuthHeaderResponse;
    AuthUserGet(AuthUserRequest) -> AuthUserGetResponse;
    AuthUserList(EmptyRequest) -> AuthUserListResponse;
    AuthUserDelete(AuthUserRequest) -> AuthHeaderResponse;
    AuthUserChangePassword(AuthUserChangePasswordRequest) -> AuthHeaderResponse;
    AuthUserGrantRole(AuthUserGrantRoleRequest) -> AuthHeaderResponse;
    AuthUserRevokeRole(AuthUserRevokeRoleRequest) -> AuthHeaderResponse;
    AuthRoleAdd(AuthRoleAddRequest) -> AuthHeaderResponse;
    AuthRoleGet(AuthRoleRequest) -> AuthRoleGetResponse;
    AuthRoleList(EmptyRequest) -> AuthRoleListResponse;
    AuthRoleDelete(AuthRoleRequest) -> AuthHeaderResponse;
    AuthRoleGrantPermission(AuthRoleGrantPermissionRequest) -> AuthHeaderResponse;
    AuthRoleRevokePermission(AuthRoleRevokePermissionRequest) -> AuthHeaderResponse;
    HealthCheck(HealthCheckRequest) -> HealthCheckResponse;
    Lock(LockRequest) -> LockResponse;
    Unlock(UnlockRequest) -> UnlockResponse;
    Campaign(CampaignRequest) -> CampaignResponse;
    Proclaim(ProclaimRequest) -> ProclaimResponse;
    Leader(LeaderRequest) -> LeaderResponse;
    Resign(ResignRequest) -> ResignResponse;
}

/// The answer to a call, owed to its adapter.
pub type Answer = Box<dyn FnOnce() -> Result<Response> + Send>;
/// A call that waits for other clients, given up when its [`Cancel`] fires.
pub type Waiting = Box<dyn FnOnce(Cancel) -> Result<Response> + Send>;

/// How an adapter receives a call's answer.
pub trait Responder: Send + 'static {
    /// Runs `answer` on the adapter's own thread and sends its outcome: the last step of a call
    /// answered from the raft or apply thread, which must not run there.
    fn later(self: Box<Self>, answer: Answer);
    /// Runs `work` where blocking is allowed and sends its outcome.
    fn blocking(self: Box<Self>, work: Answer);
    /// Runs `work` where blocking is allowed, with the [`Cancel`] of its caller leaving, and
    /// sends its outcome.
    fn waiting(self: Box<Self>, work: Waiting);
}

/// etcd's calls for one set of adapters (the gateway and gRPC of one listener share one, and
/// with it the bound on waiting calls).
#[derive(Clone)]
pub struct Service {
    node: Node,
    /// Waiting calls in progress (at most [`WAITING_CALLS_MAX`]).
    waiting: Arc<AtomicUsize>,
    /// Ranges that may be large, read on the pool a few at a time ([`reads`]).
    large_reads: Arc<reads::LargeReads>,
    /// Calls waiting for the entry of their simple token (at most [`TOKEN_WAITS_MAX`]).
    token_waits: Arc<AtomicUsize>,
    /// The gRPC server's series of every method.
    meters: Arc<metered::Meters>,
}

impl Service {
    pub fn new(node: Node) -> Service {
        let meters = Arc::new(metered::Meters::new(node.grpc_metrics(), node.config().warning_apply_duration));
        Service { node, waiting: Arc::default(), large_reads: Arc::default(), token_waits: Arc::default(), meters }
    }

    /// Counts a streaming call of `method` as started (as [`Service::call`] counts every unary
    /// one); the adapter counts its messages and its end on the [`metered::Call`].
    pub fn stream_started(&self, method: Method) -> metered::Call {
        self.meters.start(method)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The same calls made as the user `credentials` name ([`Node::with_credentials`]), for
    /// a call of `method`.
    pub fn for_caller(&self, method: Method, credentials: &Credentials) -> Result<Service> {
        let node = self.node.with_credentials(credentials).map_err(|e| {
            if method.leaks_auth_errors() {
                Error::unconverted(e)
            } else {
                e
            }
        })?;
        Ok(Service { node, ..self.clone() })
    }

    /// Starts `request` from a client that came with `credentials`; `responder` gets the
    /// answer. Returns the ticket of a call that waits on raft, whose deadline the adapter
    /// enforces; `None` when the answer is already on its way or the call blocks on the pool,
    /// where the node's own deadline bounds it.
    pub fn call(&self, request: Request, credentials: &Credentials, responder: Box<dyn Responder>) -> Option<Ticket> {
        let call = self.meters.start(request.method());
        call.received_bytes(request.encoded_len());
        if credentials.is_empty() || !request.method().checks_caller() {
            return self.start(request, call, responder);
        }
        match self.for_caller(request.method(), credentials) {
            Ok(service) => service.start(request, call, responder),
            Err(e) => {
                match self.node.token_index_ahead(credentials) {
                    // A token of an entry not applied here yet: the call waits for it (rare:
                    // the call's end rides with the responder).
                    Some(index) => {
                        let responder = Box::new(Metered { inner: responder, call });
                        self.once_applied(index, request, credentials.clone(), responder);
                    }
                    // Its entry may have been applied between the two looks: a last one.
                    None => match self.for_caller(request.method(), credentials) {
                        Ok(service) => return service.start(request, call, responder),
                        Err(_) => responder.later(Box::new(move || call.unary_done(Err(e)))),
                    },
                }
                None
            }
        }
    }

    /// Makes `request` once this member applied `index` (or gave up waiting), with its
    /// credentials resolved then, where blocking is allowed: the key-value calls in their
    /// blocking form.
    fn once_applied(&self, index: u64, request: Request, credentials: Credentials, responder: Box<dyn Responder>) {
        let waits = request.method().rpc().runs == Runs::Waits;
        let service = self.clone();
        let resolved = move || {
            // At most TOKEN_WAITS_MAX calls wait at once; the others look once, and are
            // refused unless the entry was applied meanwhile.
            if let Ok(_slot) = WaitingSlot::take(&service.token_waits, TOKEN_WAITS_MAX) {
                service.node.wait_for_index(index);
            }
            service.for_caller(request.method(), &credentials).map(|service| (service, request))
        };
        if waits {
            responder.waiting(Box::new(move |cancel| {
                let (service, request) = resolved()?;
                service.waiting(request, &cancel)
            }));
            return;
        }
        responder.blocking(Box::new(move || {
            let (service, request) = resolved()?;
            let node = &service.node;
            Ok(match request {
                Request::Range(req) => Response::Range(node.range(req)?),
                Request::Put(req) => Response::Put(node.put(req)?),
                Request::DeleteRange(req) => Response::DeleteRange(node.delete_range(req)?),
                Request::Txn(req) => Response::Txn(node.txn(req)?),
                other => service.blocking(other)?,
            })
        }));
    }

    /// Starts `request` as this handle's caller, counted on `call`: each path folds the call's
    /// end into the one closure it boxes anyway, so metering adds no allocation to a call.
    fn start(&self, request: Request, call: metered::Call, responder: Box<dyn Responder>) -> Option<Ticket> {
        match request.method().rpc().runs {
            Runs::Pool => {
                let service = self.clone();
                responder.blocking(Box::new(move || call.unary_done(service.blocking(request))));
                return None;
            }
            Runs::Waits => {
                let service = self.clone();
                responder.waiting(Box::new(move |cancel| call.unary_done(service.waiting(request, &cancel))));
                return None;
            }
            Runs::Loop => {}
        }
        let node = &self.node;
        let reply = &node.stages().reply;
        let refuse = |responder: Box<dyn Responder>, call: metered::Call, e: Error| {
            responder.later(Box::new(move || call.unary_done(Err(e))));
        };
        match request {
            Request::Put(req) => Some(node.put_then(req, later(reply, call, responder, |r| Ok(Response::Put(r))))),
            Request::DeleteRange(req) => {
                Some(node.delete_range_then(req, later(reply, call, responder, |r| Ok(Response::DeleteRange(r)))))
            }
            Request::Range(req) => {
                if let Err(e) = node.check_range(&req) {
                    refuse(responder, call, e);
                    return None;
                }
                let (serializable, reader) = (req.serializable, node.clone());
                if reads::may_be_large(&req) {
                    let (reads, deadline) =
                        (self.large_reads.clone(), Instant::now() + node.config().request_timeout());
                    // Refused before the read barrier, a refusal costs no raft round.
                    if !reads.admits(deadline) {
                        refuse(responder, call, Error::TooManyRequests);
                        return None;
                    }
                    // Large reads may be refused on their way, so the call's end rides with
                    // the responder (an allocation more, for a read of thousands of keys).
                    let responder = Box::new(Metered { inner: responder, call });
                    let ready = Reply::new(move |outcome: Result<RangeRequest>| {
                        let read = move || outcome.and_then(|req| reader.range_local(req)).map(Response::Range);
                        reads.run(responder, deadline, read);
                    });
                    let ticket = node.read_barrier_then(serializable, req, ready);
                    return (!serializable).then_some(ticket);
                }
                let then = move |req| reader.range_local(req).map(Response::Range);
                let ticket = node.read_barrier_then(serializable, req, later(reply, call, responder, then));
                // A serializable read was answered already.
                (!serializable).then_some(ticket)
            }
            Request::Txn(req) => {
                if let Err(e) = node.check_txn(&req) {
                    refuse(responder, call, e);
                    return None;
                }
                if !Node::txn_is_read_only(&req) {
                    return Some(node.txn_then(req, later(reply, call, responder, |r| Ok(Response::Txn(r)))));
                }
                let (serializable, reader) = (Node::txn_is_serializable(&req), node.clone());
                let then = move |req| reader.txn_local(req).map(Response::Txn);
                let ticket = node.read_barrier_then(serializable, req, later(reply, call, responder, then));
                (!serializable).then_some(ticket)
            }
            other => unreachable!("{:?} is a blocking call", other.method()),
        }
    }

    /// The calls that may block, on the responder's pool.
    fn blocking(&self, request: Request) -> Result<Response> {
        let node = &self.node;
        // etcd's unary interceptor: a learner answers Status (and serializable ranges, which
        // do not block) and nothing else.
        if !matches!(request, Request::Status(_)) {
            node.refuse_learner()?;
        }
        Ok(match request {
            Request::Compact(req) => Response::Compact(node.compact(req)?),
            Request::LeaseGrant(req) => Response::LeaseGrant(node.lease_grant(req)?),
            Request::LeaseRevoke(req) => Response::LeaseRevoke(node.lease_revoke(req)?),
            Request::LeaseTimeToLive(req) => Response::LeaseTimeToLive(node.lease_time_to_live(req)?),
            Request::LeaseLeases(_) => Response::LeaseLeases(node.lease_leases()?),
            Request::MemberAdd(req) => Response::MemberAdd(node.member_add(req)?),
            Request::MemberRemove(req) => Response::MemberRemove(node.member_remove(req)?),
            Request::MemberUpdate(req) => Response::MemberUpdate(node.member_update(req)?),
            Request::MemberList(_) => Response::MemberList(node.member_list()),
            Request::MemberPromote(req) => Response::MemberPromote(node.member_promote(req)?),
            Request::MoveLeader(req) => Response::MoveLeader(node.move_leader(req)?),
            Request::Status(_) => Response::Status(node.status()?),
            Request::Hash(_) => Response::Hash(node.hash()?),
            Request::HashKv(req) => Response::HashKv(node.hash_kv(req)?),
            Request::Alarm(req) => Response::Alarm(node.alarm(req)?),
            Request::Defragment(_) => Response::Defragment(node.defragment()?),
            Request::AuthEnable(_) => Response::AuthEnable(node.auth_enable()?),
            Request::AuthDisable(_) => Response::AuthDisable(node.auth_disable()?),
            Request::Authenticate(req) => Response::Authenticate(node.authenticate(&req)?),
            Request::AuthUserAdd(req) => Response::AuthUserAdd(node.user_add(&req)?),
            Request::AuthUserGet(req) => Response::AuthUserGet(node.user_get(&req)?),
            Request::AuthUserList(_) => Response::AuthUserList(node.user_list()?),
            Request::AuthUserDelete(req) => Response::AuthUserDelete(node.user_delete(&req)?),
            Request::AuthUserChangePassword(req) => Response::AuthUserChangePassword(node.user_change_password(&req)?),
            Request::AuthUserGrantRole(req) => Response::AuthUserGrantRole(node.user_grant_role(&req)?),
            Request::AuthUserRevokeRole(req) => Response::AuthUserRevokeRole(node.user_revoke_role(&req)?),
            Request::AuthRoleAdd(req) => Response::AuthRoleAdd(node.role_add(&req)?),
            Request::AuthRoleGet(req) => Response::AuthRoleGet(node.role_get(&req)?),
            Request::AuthRoleList(_) => Response::AuthRoleList(node.role_list()?),
            Request::AuthRoleDelete(req) => Response::AuthRoleDelete(node.role_delete(&req)?),
            Request::AuthRoleGrantPermission(req) => {
                Response::AuthRoleGrantPermission(node.role_grant_permission(&req)?)
            }
            Request::AuthRoleRevokePermission(req) => {
                Response::AuthRoleRevokePermission(node.role_revoke_permission(&req)?)
            }
            Request::HealthCheck(req) => Response::HealthCheck(node.health_check(&req)?),
            Request::Unlock(req) => Response::Unlock(self.unlock(req)?),
            Request::Proclaim(req) => Response::Proclaim(self.proclaim(req)?),
            Request::Leader(req) => Response::Leader(self.leader(req)?),
            Request::Resign(req) => Response::Resign(self.resign(req)?),
            Request::Range(_) | Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) => {
                unreachable!("key-value calls do not block")
            }
            Request::Lock(_) | Request::Campaign(_) => unreachable!("waiting calls get a cancel"),
        })
    }

    /// The calls that wait for other clients, on the responder's pool, at most
    /// [`WAITING_CALLS_MAX`] at once.
    fn waiting(&self, request: Request, cancel: &Cancel) -> Result<Response> {
        self.node.refuse_learner()?;
        let _slot = WaitingSlot::take(&self.waiting, WAITING_CALLS_MAX)?;
        Ok(match request {
            Request::Lock(req) => Response::Lock(self.lock(req, cancel)?),
            Request::Campaign(req) => Response::Campaign(self.campaign(req, cancel)?),
            other => unreachable!("{:?} does not wait", other.method()),
        })
    }
}

/// One of at most so many waiting calls, given back when dropped.
struct WaitingSlot<'a>(&'a AtomicUsize);

impl<'a> WaitingSlot<'a> {
    fn take(count: &'a AtomicUsize, max: usize) -> Result<WaitingSlot<'a>> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| Error::TooManyRequests)?;
        Ok(WaitingSlot(count))
    }
}

impl Drop for WaitingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A reply that, answered on the raft or apply thread, has the responder run `then` on its
/// own thread, and ends `call` there; the hop between the two is the reply stage of the
/// request's timings.
fn later<T: Send + 'static>(
    reply_stage: &Histogram,
    call: metered::Call,
    responder: Box<dyn Responder>,
    then: impl FnOnce(T) -> Result<Response> + Send + 'static,
) -> Reply<T> {
    let reply_stage = reply_stage.clone();
    Reply::new(move |outcome: Result<T>| {
        let answered = Instant::now();
        responder.later(Box::new(move || {
            crate::metrics::observe_since(&reply_stage, answered);
            call.unary_done(outcome.and_then(then))
        }))
    })
}

/// Counts a unary call's end in the gRPC server's series, whichever way its responder is
/// answered.
struct Metered {
    inner: Box<dyn Responder>,
    call: metered::Call,
}

impl Responder for Metered {
    fn later(self: Box<Self>, answer: Answer) {
        let call = self.call;
        self.inner.later(Box::new(move || call.unary_done(answer())));
    }

    fn blocking(self: Box<Self>, work: Answer) {
        let call = self.call;
        self.inner.blocking(Box::new(move || call.unary_done(work())));
    }

    fn waiting(self: Box<Self>, work: Waiting) {
        let call = self.call;
        self.inner.waiting(Box::new(move |cancel| call.unary_done(work(cancel))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! check_lists {
        (both: [$($both:ident),*], grpc: [$($grpc:ident),*]) => {{
            $(assert!(!Method::$both.rpc().gateway.is_empty(), "{:?} has no gateway path", Method::$both);)*
            $(assert!(Method::$grpc.rpc().gateway.is_empty(), "{:?} has a gateway path", Method::$grpc);)*
            let listed = [$(Method::$both,)* $(Method::$grpc,)*];
            for rpc in RPCS.iter().filter(|rpc| rpc.kind == Kind::Unary) {
                assert!(listed.contains(&rpc.method), "{:?} is not in for_each_unary!", rpc.method);
            }
        }};
    }

    /// The gateway codec has no JSON for the `grpc` list: a gateway path for one of them would
    /// route to a call it cannot decode.
    #[test]
    fn the_unary_lists_match_the_rpc_table() {
        crate::for_each_unary!(check_lists);
    }
}
