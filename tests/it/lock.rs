//! etcd's Lock service on a real member: waiters get the lock in the order they queued,
//! whichever protocol they wait on (the library's `Service`, the gateway through
//! `raftkv::Client`, gRPC through raftkv's gRPC client); a holder's lease revoked or expired
//! hands it on; a waiter that leaves (canceled, disconnected, past its gRPC deadline) takes
//! its key with it, and so does one whose member stops (answered `server stopped` at once); a
//! `raftkvctl lock` process killed with SIGKILL loses the lock once its session's TTL runs
//! out, and one stopped with SIGTERM unlocks at once.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver};
use raftkv::client::grpc;
use raftkv::client::Error as ClientError;
use raftkv::error::Code;
use raftkv::pb::*;
use raftkv::service::{Method, Service};
use raftkv::wait::Cancel;
use raftkv::{Client, Error, Node};

use crate::harness::http::Conn;
use crate::harness::process::{ctl_command, Process};
use crate::harness::{eventually, Gateway};

/// How long a call that must not return yet is given to return anyway.
const STILL_WAITING: Duration = Duration::from_millis(300);
const SOON: Duration = Duration::from_secs(10);

pub(crate) fn grant(node: &Node, ttl: i64) -> i64 {
    node.lease_grant(LeaseGrantRequest { ttl, id: 0 }).unwrap().id
}

/// The keys queued for lock (or election) `name`, oldest first.
pub(crate) fn queued(node: &Node, name: &str) -> Vec<String> {
    let mut range = RangeRequest::prefix(format!("{name}/"));
    range.sort_target = SortTarget::Create as i32;
    range.sort_order = SortOrder::Ascend as i32;
    node.range(range).unwrap().kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

pub(crate) fn key_of(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

fn lock_request(name: &str, lease: i64) -> LockRequest {
    LockRequest { name: name.as_bytes().to_vec(), lease }
}

/// Runs `call` on a thread; its outcome arrives on the receiver, tagged with `who`.
fn waiter<T: Send + 'static>(
    who: &'static str,
    call: impl FnOnce() -> T + Send + 'static,
) -> (Receiver<(&'static str, T)>, JoinHandle<()>) {
    let (tx, rx) = channel::bounded(1);
    let thread = std::thread::Builder::new()
        .name(format!("raftkv-test-{who}"))
        .spawn(move || {
            let _ = tx.send((who, call()));
        })
        .unwrap();
    (rx, thread)
}

#[test]
fn waiters_get_the_lock_in_order_whichever_protocol_they_wait_on() {
    let gw = Gateway::start();
    let (node, endpoint) = (gw.node.clone(), gw.addr().to_string());
    let service = Service::new(node.clone());
    let leases: Vec<i64> = (0..3).map(|_| grant(&node, 60)).collect();
    let keys: Vec<String> = leases.iter().map(|l| key_of("job", *l)).collect();

    let held = service.lock(lock_request("job", leases[0]), &Cancel::never()).unwrap();
    assert_eq!(String::from_utf8_lossy(&held.key), keys[0]);
    // Locking again with the holder's lease is the same lock, not a second place in line.
    let again = service.lock(lock_request("job", leases[0]), &Cancel::never()).unwrap();
    assert_eq!((again.key, again.header.unwrap().revision), (held.key.clone(), held.header.unwrap().revision));

    let client = Client::new(std::slice::from_ref(&endpoint), Duration::from_secs(5)).unwrap();
    let (gateway_rx, gateway_thread) = {
        let (client, req) = (client.clone(), lock_request("job", leases[1]));
        waiter("gateway", move || client.lock(&req, &Cancel::never()))
    };
    assert!(eventually(SOON, || queued(&node, "job").len() == 2));
    let (grpc_rx, grpc_thread) = {
        let (endpoint, req) = (endpoint.clone(), lock_request("job", leases[2]));
        waiter("grpc", move || grpc::call::<_, LockResponse>(&endpoint, Method::Lock, &req, Duration::from_secs(60)))
    };
    assert!(eventually(SOON, || queued(&node, "job").len() == 3));
    assert_eq!(queued(&node, "job"), keys);
    assert!(gateway_rx.recv_timeout(STILL_WAITING).is_err(), "the lock is held");

    let unlocked = service.unlock(UnlockRequest { key: held.key }).unwrap();
    let (_, second) = gateway_rx.recv_timeout(SOON).unwrap();
    let second = second.unwrap();
    assert_eq!(String::from_utf8_lossy(&second.key), keys[1]);
    // The header of the read that found every older key gone, as etcd's `waitDeletes` answers.
    assert!(second.header.unwrap().revision >= unlocked.header.unwrap().revision);
    assert!(grpc_rx.recv_timeout(STILL_WAITING).is_err(), "the second holds it now");

    client.unlock(&UnlockRequest { key: second.key }).unwrap();
    let (_, third) = grpc_rx.recv_timeout(SOON).unwrap();
    assert_eq!(String::from_utf8_lossy(&third.unwrap().key), keys[2]);
    assert_eq!(queued(&node, "job"), [keys[2].clone()]);
    gateway_thread.join().unwrap();
    grpc_thread.join().unwrap();
}

#[test]
fn a_holders_lease_revoked_or_expired_hands_the_lock_to_the_next_waiter() {
    let gw = Gateway::start();
    let node = gw.node.clone();
    let service = Service::new(node.clone());
    let (first, second, third) = (grant(&node, 60), grant(&node, 2), grant(&node, 60));
    service.lock(lock_request("lease", first), &Cancel::never()).unwrap();
    // The second's short lease is kept alive while it waits, and dropped once it holds.
    let renewing = node.keep_alive(second).unwrap();
    let (second_rx, second_thread) = {
        let service = service.clone();
        waiter("second", move || service.lock(lock_request("lease", second), &Cancel::never()))
    };
    assert!(eventually(SOON, || queued(&node, "lease").len() == 2));
    let (third_rx, third_thread) = {
        let service = service.clone();
        waiter("third", move || service.lock(lock_request("lease", third), &Cancel::never()))
    };
    assert!(eventually(SOON, || queued(&node, "lease").len() == 3));
    assert!(second_rx.recv_timeout(STILL_WAITING).is_err());

    node.lease_revoke(LeaseRevokeRequest { id: first }).unwrap();
    let (_, got) = second_rx.recv_timeout(SOON).unwrap();
    assert_eq!(String::from_utf8_lossy(&got.unwrap().key), key_of("lease", second));
    assert!(third_rx.recv_timeout(Duration::from_secs(3)).is_err(), "renewed, the second keeps it");

    let stopped_renewing = Instant::now();
    drop(renewing);
    let (_, got) = third_rx.recv_timeout(SOON).unwrap();
    let waited = stopped_renewing.elapsed();
    assert_eq!(String::from_utf8_lossy(&got.unwrap().key), key_of("lease", third));
    // Renewed every third of its 2 s, the lease had more than a second left when renewals
    // stopped: the lock went with the lease's expiry, not with the renewals.
    assert!(waited >= Duration::from_secs(1), "handed on after {waited:?}");
    assert_eq!(queued(&node, "lease"), [key_of("lease", third)]);
    second_thread.join().unwrap();
    third_thread.join().unwrap();
}

#[test]
fn a_waiter_that_leaves_takes_its_key_with_it() {
    let gw = Gateway::start();
    let (node, endpoint) = (gw.node.clone(), gw.addr().to_string());
    let service = Service::new(node.clone());
    let holder = grant(&node, 60);
    let held = service.lock(lock_request("left", holder), &Cancel::never()).unwrap();
    let only_holder = || queued(&node, "left") == [key_of("left", holder)];

    // The library's caller cancels.
    let (cancel_tx, cancel) = Cancel::new();
    let (rx, thread) = {
        let (service, req) = (service.clone(), lock_request("left", grant(&node, 60)));
        waiter("canceled", move || service.lock(req, &cancel))
    };
    assert!(eventually(SOON, || queued(&node, "left").len() == 2));
    drop(cancel_tx);
    let (_, outcome) = rx.recv_timeout(SOON).unwrap();
    assert!(matches!(outcome, Err(Error::Canceled)), "{outcome:?}");
    assert!(only_holder(), "{:?}", queued(&node, "left"));
    thread.join().unwrap();

    // A gateway client hangs up while it waits.
    let body = format!(r#"{{"name":"bGVmdA==","lease":"{}"}}"#, grant(&node, 60));
    let mut conn = Conn::open(gw.addr(), SOON).unwrap();
    conn.request("POST", "/v3/lock/lock", &[], body.as_bytes()).unwrap();
    assert!(eventually(SOON, || queued(&node, "left").len() == 2));
    drop(conn);
    assert!(eventually(SOON, only_holder), "{:?}", queued(&node, "left"));

    // A gRPC client's deadline passes: etcd's status (Unknown, as its recipe returns the
    // context's error), and the key is gone.
    let req = lock_request("left", grant(&node, 60));
    let channel = grpc::Channel::new(&endpoint, SOON);
    match channel.unary_past_deadline::<_, LockResponse>(Method::Lock, &req, Duration::from_millis(700), SOON) {
        Err(grpc::Failed { error: ClientError::Server { code, message }, .. }) => {
            assert_eq!((code, message.as_str()), (Code::Unknown, "context deadline exceeded"))
        }
        other => panic!("{other:?}"),
    }
    assert!(eventually(SOON, only_holder), "{:?}", queued(&node, "left"));

    // Nobody was left in line: the next one after the holder gets it at once.
    service.unlock(UnlockRequest { key: held.key }).unwrap();
    let next = grant(&node, 60);
    let got = service.lock(lock_request("left", next), &Cancel::never()).unwrap();
    assert_eq!(String::from_utf8_lossy(&got.key), key_of("left", next));

    // A member stopping answers its waiters (rather than dropping them after its grace), and
    // they leave the queue before the member goes.
    let (watch_tx, deleted) = channel::unbounded();
    let create = WatchCreateRequest { key: b"left/".to_vec(), range_end: b"left0".to_vec(), ..Default::default() };
    let watch = node.watch(create).unwrap();
    let responses = watch.responses.clone();
    let deletes = std::thread::Builder::new().name("raftkv-test-deletes".into()).spawn(move || {
        for resp in responses {
            for event in resp.events.iter().filter(|e| e.r#type == EventType::Delete as i32) {
                let _ = watch_tx.send(String::from_utf8_lossy(&event.kv.as_ref().unwrap().key).into_owned());
            }
        }
    });
    deletes.unwrap();
    let last = grant(&node, 60);
    let mut conn = Conn::open(gw.addr(), SOON).unwrap();
    let body = format!(r#"{{"name":"bGVmdA==","lease":"{last}"}}"#);
    conn.request("POST", "/v3/lock/lock", &[], body.as_bytes()).unwrap();
    assert!(eventually(SOON, || queued(&node, "left").len() == 2));
    gw.member.stop().unwrap();
    let reply = conn.read_reply().unwrap();
    assert_eq!((reply.status, reply.text().contains("etcdserver: server stopped")), (503, true), "{}", reply.text());
    assert_eq!(deleted.recv_timeout(SOON).unwrap(), key_of("left", last));
}

/// `raftkvctl lock --ttl <ttl> <name>` holding the lock: the process (its output still
/// open, so that it never writes into a closed pipe) and the key it printed.
fn holding_ctl(endpoint: &str, name: &str, ttl: &str) -> (Process, BufReader<ChildStdout>, String) {
    let mut command = ctl_command(endpoint, &["lock", "--ttl", ttl, name]);
    let mut holder = Process::spawn(command.stdout(Stdio::piped()).stderr(Stdio::null()));
    let mut out = BufReader::new(holder.child.stdout.take().unwrap());
    let (mut key, mut value) = (String::new(), String::new());
    out.read_line(&mut key).unwrap();
    out.read_line(&mut value).unwrap();
    assert_eq!(value, "\n", "a lock's key has no value");
    (holder, out, key.trim_end().to_string())
}

#[test]
fn a_killed_lock_holder_loses_the_lock_after_its_ttl_and_a_stopped_one_unlocks() {
    let gw = Gateway::start();
    let (node, endpoint) = (gw.node.clone(), gw.addr().to_string());
    let service = Service::new(node.clone());

    let (mut holder, _out, key) = holding_ctl(&endpoint, "proc", "2");
    assert_eq!(queued(&node, "proc"), std::slice::from_ref(&key));
    let mine = grant(&node, 60);
    let (rx, thread) = {
        let service = service.clone();
        waiter("after-kill", move || service.lock(lock_request("proc", mine), &Cancel::never()))
    };
    // Its session is renewed: the lock stays with the process for longer than its TTL.
    assert!(rx.recv_timeout(Duration::from_secs(3)).is_err(), "a live holder keeps its lock");
    let killed = Instant::now();
    holder.kill();
    let (_, got) = rx.recv_timeout(SOON).unwrap();
    let waited = killed.elapsed();
    assert_eq!(String::from_utf8_lossy(&got.unwrap().key), key_of("proc", mine));
    // The key outlived its process until the lease ran out (renewed each second, it had
    // more than one second of its two left).
    assert!(waited >= Duration::from_millis(900), "handed on after {waited:?}");
    thread.join().unwrap();

    // SIGTERM unlocks at once, long before its 30 s session could run out.
    let waiting = service.clone();
    let next = grant(&node, 60);
    waiting.unlock(UnlockRequest { key: key_of("proc", mine).into_bytes() }).unwrap();
    let (mut holder, _out, key) = holding_ctl(&endpoint, "proc", "30");
    let (rx, thread) = waiter("after-term", move || waiting.lock(lock_request("proc", next), &Cancel::never()));
    assert!(eventually(SOON, || queued(&node, "proc").len() == 2));
    let status = holder.terminate();
    assert!(status.success(), "{status:?}");
    let (_, got) = rx.recv_timeout(SOON).unwrap();
    assert_eq!(String::from_utf8_lossy(&got.unwrap().key), key_of("proc", next));
    assert!(!queued(&node, "proc").contains(&key));
    thread.join().unwrap();
}
