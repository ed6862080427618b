//! etcd's corruption detection (`etcdserver/corrupt.go`): members compare HashKV, the hash of
//! the key-value history up to a revision at a compact revision, which members that applied
//! the same entries agree on.
//!
//! - [`Checker::check_initial`] (`--experimental-initial-corrupt-check`, etcd's
//!   `CheckInitialHashKV`): at the end of `Server::open` of a member that had data, before its
//!   run loop applies anything and before its clients are served, its own HashKV at its
//!   current revision against each peer's at that revision. The same compact revision and a
//!   different hash refuse the start ([`Error::DataInconsistency`]); a peer that cannot be
//!   asked, that is behind, or that compacted differently is logged and skipped, so members
//!   that are not up yet cost at most a request timeout each, never the start.
//! - [`Checker::run`] (`--experimental-corrupt-check-time`, etcd's `monitorKVHash` and
//!   `checkHashKV`), the body of `raftkv-corrupt-check`: every interval, if this member leads,
//!   its HashKV, each peer's at that revision, a ReadIndex barrier and its HashKV again; a
//!   follower ahead of it, compacted beyond it, or with another hash at the same compact
//!   revision is reported with a CORRUPT alarm proposed through raft (once per check), which
//!   then refuses every write on every member (`alarm`).
//!
//! Thread `raftkv-corrupt-check` (only with a check interval): owns nothing; blocks on its
//! stop channel for the interval, then (as leader) on each peer's answer (at most a request
//! timeout each) and on the ReadIndex barrier. Input: stop. Output: CORRUPT alarm proposals
//! (`propose_nowait`: one that is lost is made again by the next check). A check in
//! progress at stop finishes first.
//!
//! Choice: the alarm names the member the check blames (the follower, or the leader for its
//! own two hashes at one revision), as etcd 3.4.0–3.4.21 did; 3.4.22 and later raise it for
//! member 0 (etcd #14828: the leader cannot tell which of two members is wrong). Either way it
//! refuses every write; the name tells the operator where to look first.

use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{after, select, Receiver};
use parking_lot::RwLock;

use super::propose::{wait_on, Proposer};
use crate::cluster::Membership;
use crate::identity::Identity;
use crate::mvcc::{KvHash, Store};
use crate::pb::internal_request::Request;
use crate::pb::*;
use crate::transport::Transport;
use crate::{Error, Result};

/// What a check asks with and of whom.
pub struct Checker {
    identity: Arc<Identity>,
    store: Arc<Store>,
    membership: Arc<RwLock<Membership>>,
    transport: Arc<Transport>,
    proposer: Arc<Proposer>,
    /// Bounds each peer's answer and the barrier (etcd's `ReqTimeout`).
    request_timeout: Duration,
}

/// One peer's answer to "your HashKV at this revision".
struct PeerHash {
    id: u64,
    urls: String,
    answer: Result<HashKvResponse>,
}

impl Checker {
    pub fn new(
        identity: Arc<Identity>,
        store: Arc<Store>,
        membership: Arc<RwLock<Membership>>,
        transport: Arc<Transport>,
        proposer: Arc<Proposer>,
        request_timeout: Duration,
    ) -> Checker {
        Checker { identity, store, membership, transport, proposer, request_timeout }
    }

    /// etcd's `CheckInitialHashKV`: `Err(DataInconsistency)` if a peer at this member's
    /// revision and compact revision has another hash.
    pub fn check_initial(&self) -> Result<()> {
        let me = self.identity.member_id;
        log::info!(
            "corrupt check: starting initial corruption check (local-member-id={me:x}, timeout={:?})",
            self.request_timeout
        );
        let local = self.store.hash_kv(0)?;
        let mut mismatches = 0;
        for peer in self.peer_hashes(local.current_rev) {
            let fields = format!(
                "local-member-id={me:x}, local-member-revision={}, local-member-compact-revision={}, \
                 local-member-hash={}, remote-peer-id={:x}, remote-peer-endpoints={}",
                local.current_rev, local.compact_rev, local.hash, peer.id, peer.urls
            );
            match &peer.answer {
                Ok(resp) if resp.hash == local.hash => {}
                Ok(resp) if resp.compact_revision == local.compact_rev => {
                    log::error!(
                        "corrupt check: found different hash values from remote peer ({fields}, \
                         remote-peer-revision={}, remote-peer-compact-revision={}, remote-peer-hash={})",
                        revision(resp),
                        resp.compact_revision,
                        resp.hash
                    );
                    mismatches += 1;
                }
                Ok(resp) => log::warn!(
                    "corrupt check: found different compact revision values from remote peer ({fields}, \
                     remote-peer-revision={}, remote-peer-compact-revision={}, remote-peer-hash={})",
                    revision(resp),
                    resp.compact_revision,
                    resp.hash
                ),
                Err(e @ Error::FutureRevision) => {
                    log::warn!("corrupt check: cannot fetch hash from slow remote peer ({fields}): {e}")
                }
                Err(e @ Error::Compacted) => log::warn!(
                    "corrupt check: cannot fetch hash from remote peer; local member is behind ({fields}): {e}"
                ),
                // Logged where it was asked.
                Err(_) => {}
            }
        }
        if mismatches > 0 {
            return Err(Error::DataInconsistency { member_id: me });
        }
        log::info!("corrupt check: initial corruption checking passed; no corruption (local-member-id={me:x})");
        Ok(())
    }

    /// The `raftkv-corrupt-check` thread body (etcd's `monitorKVHash`): a check every
    /// `interval` while this member leads, until `stop_rx` fires.
    pub fn run(&self, interval: Duration, stop_rx: &Receiver<()>) {
        log::info!(
            "corrupt check: enabled corruption checking (local-member-id={:x}, interval={interval:?})",
            self.identity.member_id
        );
        loop {
            select! {
                recv(stop_rx) -> _ => return,
                recv(after(interval)) -> _ => {}
            }
            if !self.identity.is_leader() {
                continue;
            }
            if let Err(e) = self.check_peers() {
                log::warn!("corrupt check: failed to check hash KV: {e}");
            }
        }
    }

    /// etcd's `checkHashKV`, as the leader. The second HashKV after the barrier is at least as
    /// new as anything a follower applied when it answered, so a follower ahead of it, or
    /// compacted beyond it, holds what the cluster never committed.
    fn check_peers(&self) -> Result<()> {
        let first = self.store.hash_kv(0)?;
        let peers = self.peer_hashes(first.current_rev);
        wait_on(|ready| self.proposer.read_index_then((), ready))?;
        let second = self.store.hash_kv(0)?;
        let mut alarm = Alarm { proposer: &self.proposer, raised: false };
        if second.hash != first.hash
            && second.current_rev == first.current_rev
            && second.compact_rev == first.compact_rev
        {
            log::error!(
                "corrupt check: found hash mismatch (revision-1={}, compact-revision-1={}, hash-1={}, \
                 revision-2={}, compact-revision-2={}, hash-2={})",
                first.current_rev,
                first.compact_rev,
                first.hash,
                second.current_rev,
                second.compact_rev,
                second.hash
            );
            alarm.raise(self.identity.member_id);
        }
        let mut checked = 0;
        for peer in &peers {
            if let Ok(resp) = &peer.answer {
                checked += 1;
                self.check_follower(&first, &second, peer.id, resp, &mut alarm);
            }
        }
        log::info!("corrupt check: finished peer corruption check (number-of-peers-checked={checked})");
        Ok(())
    }

    /// etcd's three rules for one follower's answer, each logged with what it compared.
    fn check_follower(&self, first: &KvHash, second: &KvHash, id: u64, resp: &HashKvResponse, alarm: &mut Alarm) {
        if revision(resp) > second.current_rev {
            log::error!(
                "corrupt check: revision from follower must be less than or equal to leader's \
                 (leader-revision={}, follower-revision={}, follower-peer-id={id:x})",
                second.current_rev,
                revision(resp)
            );
            alarm.raise(id);
        }
        if resp.compact_revision > second.compact_rev {
            log::error!(
                "corrupt check: compact revision from follower must be less than or equal to leader's \
                 (leader-compact-revision={}, follower-compact-revision={}, follower-peer-id={id:x})",
                second.compact_rev,
                resp.compact_revision
            );
            alarm.raise(id);
        }
        if resp.compact_revision == first.compact_rev && resp.hash != first.hash {
            log::error!(
                "corrupt check: same compact revision then hashes must match (leader-compact-revision={}, \
                 leader-hash={}, follower-compact-revision={}, follower-hash={}, follower-peer-id={id:x}, \
                 revision={})",
                second.compact_rev,
                first.hash,
                resp.compact_revision,
                resp.hash,
                first.current_rev
            );
            alarm.raise(id);
        }
    }

    /// Every other member's HashKV at `revision` (etcd's `getPeerHashKVs`), asked one after
    /// the other, each on a connection of its own within the request timeout.
    fn peer_hashes(&self, revision: i64) -> Vec<PeerHash> {
        let me = self.identity.member_id;
        let peers: Vec<Member> = self.membership.read().members().into_iter().filter(|m| m.id != me).collect();
        let request = PeerRequest { request: Some(peer_request::Request::HashKv(HashKvRequest { revision })) };
        peers
            .into_iter()
            .map(|m| {
                let answer = self.transport.call_direct(m.id, &request, self.request_timeout).and_then(hash_kv_answer);
                let urls = m.peer_urls.join(",");
                if let Err(e) = &answer {
                    log::warn!(
                        "corrupt check: failed hash kv request (local-member-id={me:x}, requested-revision={revision}, \
                         remote-peer-id={:x}, remote-peer-endpoints={urls}): {e}",
                        m.id
                    );
                }
                PeerHash { id: m.id, urls, answer }
            })
            .collect()
    }
}

fn hash_kv_answer(response: PeerResponse) -> Result<HashKvResponse> {
    match response.response {
        Some(peer_response::Response::HashKv(resp)) => Ok(resp),
        Some(peer_response::Response::Error(e)) => Err(Error::from(e)),
        other => Err(Error::Decode { what: "peer's HashKV answer", detail: format!("{other:?}") }),
    }
}

/// The peer's current revision, which its answer's header carries.
fn revision(resp: &HashKvResponse) -> i64 {
    resp.header.as_ref().map_or(0, |h| h.revision)
}

/// The CORRUPT alarm of one check: raised at most once, for the first member blamed (etcd's
/// `mismatch`), through raft without waiting, as etcd's `goAttach(raftRequest)`.
struct Alarm<'a> {
    proposer: &'a Proposer,
    raised: bool,
}

impl Alarm<'_> {
    fn raise(&mut self, member_id: u64) {
        if std::mem::replace(&mut self.raised, true) {
            return;
        }
        self.proposer.propose_nowait(Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id,
            alarm: AlarmType::Corrupt as i32,
        }));
    }
}
