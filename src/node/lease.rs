//! The lease calls: grant and revoke go through raft; keepalive and time-to-live are the
//! leader's (only it counts leases down), so a follower forwards them over the transport.
//! [`KeepAlive`] renews a lease from a thread of its own (`raftkv-keepalive`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, RecvTimeoutError};

use super::{Node, Origin};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::server::propose::wait_on;
use crate::{Error, Result};

impl Node {
    /// Creates a lease (etcd `LeaseGrant`). With `id` 0 the server picks a positive id.
    pub fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if req.ttl > crate::lease::MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        if req.id == 0 {
            // Chosen before proposing, so every member applies the same id (etcd's rule).
            req.id = (self.inner.proposer.ids.next() & (i64::MAX as u64)) as i64;
        }
        wait_on(|reply| self.propose_then(Origin::Client, Request::LeaseGrant(req), reply))
    }

    /// Deletes a lease and its keys (etcd `LeaseRevoke`). An unknown lease is found out when
    /// the revoke is applied: this member may not have applied a grant made elsewhere yet.
    pub fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        wait_on(|reply| self.propose_then(Origin::Client, Request::LeaseRevoke(req), reply))
    }

    /// Restarts a lease's countdown (etcd `LeaseKeepAlive`, one message). An unknown lease
    /// answers TTL 0, as etcd does.
    pub fn lease_keep_alive(&self, req: LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        match self.forward_to_leader(peer_request::Request::KeepAlive(req.clone()))? {
            None => self.inner.peer_service.keep_alive(&req),
            Some(peer_response::Response::KeepAlive(resp)) => Ok(resp),
            Some(other) => Err(peer_error(other)),
        }
    }

    /// Keeps lease `id` alive from a named thread (`raftkv-keepalive`) that renews it every
    /// third of its TTL, as etcd's client does, until the returned handle is dropped or the
    /// lease is gone (revoked or expired). [`KeepAlive::ttl`] reports the last renewal.
    pub fn keep_alive(&self, id: i64) -> Result<KeepAlive> {
        let first = self.lease_keep_alive(LeaseKeepAliveRequest { id })?;
        if first.ttl <= 0 {
            return Err(Error::LeaseNotFound);
        }
        let (stop_tx, stop_rx) = channel::bounded::<()>(1);
        let ttl = Arc::new(AtomicI64::new(first.ttl));
        let (node, last) = (self.clone(), ttl.clone());
        let thread = crate::thread::spawn_named("raftkv-keepalive", move || loop {
            let period = Duration::from_millis((last.load(Ordering::Relaxed).max(1) as u64 * 1000) / 3);
            if stop_rx.recv_timeout(period) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            match node.lease_keep_alive(LeaseKeepAliveRequest { id }) {
                Ok(resp) if resp.ttl > 0 => last.store(resp.ttl, Ordering::Relaxed),
                // The lease is gone (or the member stopped): nothing left to keep alive.
                _ => {
                    last.store(0, Ordering::Relaxed);
                    return;
                }
            }
        })?;
        Ok(KeepAlive { ttl, stop_tx, thread: Some(thread) })
    }

    /// A lease's remaining and granted TTL (etcd `LeaseTimeToLive`); TTL -1 if it is unknown.
    /// The remaining time is the leader's, so a follower asks the leader.
    pub fn lease_time_to_live(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        match self.forward_to_leader(peer_request::Request::TimeToLive(req.clone()))? {
            None => self.inner.peer_service.time_to_live(&req),
            Some(peer_response::Response::TimeToLive(resp)) => Ok(resp),
            Some(other) => Err(peer_error(other)),
        }
    }

    /// Every lease, soonest to expire first (etcd `LeaseLeases`).
    pub fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        let inner = &self.inner;
        let leases = inner.lessor.leases().into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(LeaseLeasesResponse { header: inner.identity.header_at(inner.store.current_revision()), leases })
    }

    /// `None` when this member leads and answers itself; otherwise the leader's answer.
    fn forward_to_leader(&self, request: peer_request::Request) -> Result<Option<peer_response::Response>> {
        let inner = &self.inner;
        if inner.identity.is_leader() {
            return Ok(None);
        }
        let leader = inner.identity.raft().leader_id();
        if leader == 0 {
            return Err(Error::NoLeader);
        }
        let request = PeerRequest { request: Some(request) };
        let response = inner.transport.call(leader, &request, inner.cfg.request_timeout())?;
        Ok(Some(response.response.ok_or(Error::LeaderChanged)?))
    }
}

fn peer_error(response: peer_response::Response) -> Error {
    match response {
        peer_response::Response::Error(e) => Error::from(e),
        other => Error::Decode { what: "leader's answer", detail: format!("unexpected {other:?}") },
    }
}

/// A lease kept alive by [`Node::keep_alive`]; dropping it stops the renewals (the lease then
/// expires after its TTL unless renewed elsewhere).
pub struct KeepAlive {
    ttl: Arc<AtomicI64>,
    stop_tx: channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl KeepAlive {
    /// The TTL granted by the last renewal; 0 once the lease is gone.
    pub fn ttl(&self) -> i64 {
        self.ttl.load(Ordering::Relaxed)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.stop_tx.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
