//! The verbs over etcd's lock and election services: `lock <name> [command args...]`,
//! `elect <name> <proposal>` and `elect -l <name>`, with etcdctl's output and exits. Where
//! etcdctl runs the recipes itself over KV, lease and watch, these call the services, which
//! run them in the server; the session lease (kept alive here) is the same.
//!
//! Threads: the main thread makes the calls; `raftkv-signals` turns SIGINT and SIGTERM into
//! a cancel of the waiting call and a message to the main thread; `raftkv-keepalive` renews
//! the session's lease and reports when it is lost.

use std::process::Command as Process;

use crossbeam::channel::{self, select, Receiver};
use raftkv::wait::Cancel;

use super::*;

/// etcd's `defaultSessionTTL`, the session of `elect` (`lock` has `--ttl`).
const ELECT_SESSION_TTL_S: i64 = 60;
/// How soon a renewal that failed is tried again.
const KEEPALIVE_RETRY: Duration = Duration::from_millis(500);

/// SIGINT or SIGTERM: the first cancels the waiting call and tells the main thread.
struct Interrupt {
    /// The waiting call's cancel (only the first signal matters).
    cancel: Cancel,
    signal_rx: Receiver<()>,
}

fn interrupt() -> Result<Interrupt, CtlError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CtlError::Usage(format!("install signal handlers: {e}")))?;
    let (cancel_tx, cancel) = Cancel::new();
    let (signal_tx, signal_rx) = channel::bounded(1);
    raftkv::thread::spawn_named("raftkv-signals", move || {
        if signals.forever().next().is_some() {
            drop(cancel_tx);
            let _ = signal_tx.send(());
        }
    })
    .map_err(|e| CtlError::Usage(e.to_string()))?;
    Ok(Interrupt { cancel, signal_rx })
}

/// A session (concurrency.NewSession): a lease of `ttl` seconds renewed at a third of it.
/// Its receiver gets a message (or disconnects) once the lease is lost: expired, revoked, or
/// not renewed within its TTL.
fn session(client: &Client, ttl: i64) -> Result<(i64, Receiver<()>), CtlError> {
    let lease = client.lease_grant(&LeaseGrantRequest { ttl, id: 0 })?;
    let (lost_tx, lost_rx) = channel::bounded(1);
    let (client, id, ttl) = (client.clone(), lease.id, lease.ttl);
    raftkv::thread::spawn_named("raftkv-keepalive", move || {
        let mut expires = Instant::now() + Duration::from_secs(ttl as u64);
        let mut wait = Duration::from_secs((ttl as u64 / 3).max(1));
        loop {
            std::thread::sleep(wait);
            match client.lease_keep_alive(&LeaseKeepAliveRequest { id }) {
                Ok(r) if r.ttl > 0 => {
                    expires = Instant::now() + Duration::from_secs(r.ttl as u64);
                    wait = Duration::from_secs((r.ttl as u64 / 3).max(1));
                }
                Ok(_) => break,
                Err(_) if Instant::now() < expires => wait = KEEPALIVE_RETRY,
                Err(_) => break,
            }
        }
        let _ = lost_tx.send(());
    })
    .map_err(|e| CtlError::Usage(e.to_string()))?;
    Ok((id, lost_rx))
}

impl Ctl {
    /// `etcdctl lock`: waits for the lock, then runs the command and unlocks, or prints the
    /// lock's key and holds it until interrupted (then unlocks) or its session is lost.
    pub(crate) fn lock(&self, args: &[String], ttl: i64) -> Outcome {
        let Some((name, command)) = args.split_first() else {
            bad_args("lock takes a lock name argument and an optional command to execute")
        };
        let interrupt = interrupt()?;
        let (lease, lost) = session(&self.client, ttl)?;
        let req = LockRequest { name: name.clone().into_bytes(), lease };
        let locked = self.client.lock(&req, &interrupt.cancel)?;
        let unlock = || self.client.unlock(&UnlockRequest { key: locked.key.clone() }).map(drop);
        if let Some((program, program_args)) = command.split_first() {
            let key = String::from_utf8_lossy(&locked.key).into_owned();
            let rev = locked.header.map_or(0, |h| h.revision);
            let status = Process::new(program)
                .args(program_args)
                .env("ETCD_LOCK_KEY", key)
                .env("ETCD_LOCK_REV", rev.to_string())
                .status()
                .map_err(|e| CtlError::Usage(format!("exec: {program:?}: {e}")));
            let unlocked = unlock();
            exited(status?)?;
            return unlocked;
        }
        let held = self.client.range(&RangeRequest::key(locked.key.clone()))?;
        if held.kvs.is_empty() {
            return Err(CtlError::Usage("lock lost on init".into()));
        }
        self.print_get(&held);
        select! {
            recv(interrupt.signal_rx) -> _ => unlock(),
            recv(lost) -> _ => Err(CtlError::Usage("session expired".into())),
        }
    }

    /// `etcdctl elect`: with `-l`, prints each leader of the election until interrupted;
    /// otherwise campaigns with the proposal, prints the leader key once elected and leads
    /// until interrupted (then resigns) or its session is lost.
    pub(crate) fn elect(&self, args: &[String], listen: bool) -> Outcome {
        match (args, listen) {
            ([name], true) => self.observe(name),
            ([_], false) => bad_args("no proposal argument but -l not set"),
            ([_, _], true) => bad_args("proposal given but -l is set"),
            ([name, proposal], false) => self.campaign(name, proposal),
            _ => bad_args("elect takes one election name argument and an optional proposal argument"),
        }
    }

    fn observe(&self, name: &str) -> Outcome {
        let interrupt = interrupt()?;
        let ctl = self.clone();
        let req = LeaderRequest { name: name.as_bytes().to_vec() };
        // The stream blocks in a read until the next leader: a thread of its own, so that
        // an interrupt ends the command at once, as etcdctl's does.
        let (ended_tx, ended) = channel::bounded(1);
        raftkv::thread::spawn_named("raftkv-observe", move || {
            let outcome = ctl.client.observe(&req, |resp| {
                ctl.print_get(&RangeResponse {
                    header: resp.header,
                    kvs: resp.kv.into_iter().collect(),
                    ..Default::default()
                });
                true
            });
            if let Err(e) = outcome {
                log::debug!("raftkvctl: observe ended: {e}");
            }
            let _ = ended_tx.send(());
        })
        .map_err(|e| CtlError::Usage(e.to_string()))?;
        select! {
            recv(interrupt.signal_rx) -> _ => Ok(()),
            // However the stream ended, as etcdctl's observer channel closes.
            recv(ended) -> _ => Err(CtlError::Usage("elect: observer lost".into())),
        }
    }

    fn campaign(&self, name: &str, proposal: &str) -> Outcome {
        let interrupt = interrupt()?;
        let (lease, lost) = session(&self.client, ELECT_SESSION_TTL_S)?;
        let req = CampaignRequest { name: name.as_bytes().to_vec(), lease, value: proposal.as_bytes().to_vec() };
        let elected = self.client.campaign(&req, &interrupt.cancel)?;
        let leader = elected.leader.unwrap_or_default();
        self.print_get(&self.client.range(&RangeRequest::key(leader.key.clone()))?);
        select! {
            recv(interrupt.signal_rx) -> _ => self.client.resign(&ResignRequest { leader: Some(leader) }).map(drop),
            recv(lost) -> _ => Err(CtlError::Usage("elect: session expired".into())),
        }
    }

    /// etcdctl's `display.Get`.
    fn print_get(&self, resp: &RangeResponse) {
        match self.format {
            Format::Json => self.print_json(resp),
            _ => self.print_kvs(&resp.kvs, false),
        }
    }
}

/// A command's exit as Go's `exec.ExitError` words a failure.
fn exited(status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(CtlError::Usage(format!("exit status {code}"))),
        (None, Some(2)) => Err(CtlError::Usage("signal: interrupt".into())),
        (None, Some(9)) => Err(CtlError::Usage("signal: killed".into())),
        (None, Some(15)) => Err(CtlError::Usage("signal: terminated".into())),
        (None, signal) => Err(CtlError::Usage(format!("signal: {}", signal.unwrap_or(0)))),
    }
}
