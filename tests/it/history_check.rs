//! The history checker on a real cluster: 3 `raftkv` processes on 127.0.0.1 under mixed
//! traffic (puts, reads, ranges with a limit, deletes, compare-and-swap txns, leases) from
//! several clients on different members, while the leader is SIGKILLed and restarted; one
//! watch on the prefix resumes on another member when its stream breaks. Every call and
//! every watch response is recorded; the history must be linearizable and the watch must keep
//! etcd's guarantees.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raftkv::pb::{RangeRequest, WatchCreateRequest};
use raftkv::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::process::{agreed_leader, initial_cluster, position_of, spawn_cluster, Member};
use crate::history::client::{watch_response, RecordingClient};
use crate::history::*;

const PREFIX: &str = "h/";
/// Written once the traffic is over; the watch ends when it sees it.
const BARRIER_KEY: &[u8] = b"h/end";
const KEYS: usize = 8;
const CLIENTS: usize = 6;
/// Traffic runs this long; the leader dies a third of the way in and comes back at two thirds.
const RUN: Duration = Duration::from_secs(6);
/// Longer than the members' request timeout (7 s), so a stalled call ends with the server's
/// answer rather than a client-side timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_LIMIT: Duration = Duration::from_secs(20);

/// `endpoints` starting at `first`: the member this client prefers, then the others.
fn rotated(endpoints: &[String], first: usize) -> Vec<String> {
    (0..endpoints.len()).map(|i| endpoints[(first + i) % endpoints.len()].clone()).collect()
}

/// Client `id`'s recording clients, one per member, its preferred member first. One endpoint
/// each: `raftkv::Client` with several endpoints re-sends a request whose connection broke
/// to the next one, so a write could apply twice; failing over between members is left to
/// the caller, which knows the outcome was unknown. Over the gateway, the traffic this test
/// was sized for: gRPC's multiplexed clients make several times the calls in the same run,
/// more than the check's time bound covers in one piece (the soak, over gRPC, checks in
/// segments instead).
fn recording_clients<'a>(endpoints: &[String], id: usize, recorder: &'a Recorder) -> Vec<RecordingClient<'a>> {
    rotated(endpoints, id)
        .into_iter()
        .map(|endpoint| RecordingClient { client: Client::gateway(&[endpoint], CLIENT_TIMEOUT).unwrap(), recorder, id })
        .collect()
}

fn key(rng: &mut StdRng) -> Bytes {
    format!("{PREFIX}k{}", rng.gen_range(0..KEYS)).into_bytes()
}

/// One client's traffic until `stop`, through `members` (one client per member, this one's
/// preferred member first): after an unknown outcome it moves on to the next member. Values
/// are unique (`c<client>-<n>`), so a watch can tell which put of unknown outcome took effect.
fn traffic(members: &[RecordingClient], stop: &AtomicBool) {
    let id = members[0].id;
    let mut at = 0;
    let mut rng = StdRng::seed_from_u64(id as u64);
    // The last mod_revision this client read per key: the guard of its compare-and-swaps.
    let mut seen_mod: HashMap<Bytes, i64> = HashMap::new();
    let mut leases: Vec<i64> = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (key, value) = (key(&mut rng), format!("c{id}-{n}").into_bytes());
        let request = match rng.gen_range(0..100) {
            0..=29 => Request::Kv(KvOp::Put { key, value, lease: 0 }),
            30..=54 => Request::Kv(KvOp::Range { key, end: Vec::new(), limit: 0 }),
            55..=64 => Request::Kv(KvOp::Range { key: PREFIX.into(), end: b"h0".to_vec(), limit: 3 }),
            65..=72 => Request::Kv(KvOp::Delete { key, end: Vec::new() }),
            73..=89 => Request::Txn {
                compares: vec![Compare {
                    key: key.clone(),
                    cmp: Cmp::Equal,
                    target: Target::Mod(*seen_mod.get(&key).unwrap_or(&0)),
                }],
                success: vec![KvOp::Put { key: key.clone(), value, lease: 0 }],
                failure: vec![KvOp::Range { key, end: Vec::new(), limit: 0 }],
            },
            90..=93 => Request::LeaseGrant { id: (id as i64 + 1) * 1_000_000 + n, ttl: 60 },
            94..=96 if !leases.is_empty() => {
                Request::Kv(KvOp::Put { key, value, lease: leases[rng.gen_range(0..leases.len())] })
            }
            97 if !leases.is_empty() => Request::LeaseKeepAlive { id: leases[rng.gen_range(0..leases.len())] },
            98..=99 if !leases.is_empty() => Request::LeaseRevoke { id: leases.remove(0) },
            _ => continue,
        };
        let granted = match &request {
            Request::LeaseGrant { id, .. } => Some(*id),
            _ => None,
        };
        let outcome = members[at].call(request);
        let Outcome::Ok { response, .. } = &outcome else {
            at = (at + 1) % members.len();
            continue;
        };
        let kvs = match response {
            Response::Kv(KvResult::Range { kvs, .. }) => kvs.as_slice(),
            Response::Txn { results, .. } => match results.first() {
                Some(KvResult::Range { kvs, .. }) => kvs.as_slice(),
                _ => &[],
            },
            Response::LeaseGrant => {
                leases.extend(granted);
                &[]
            }
            _ => &[],
        };
        for kv in kvs {
            seen_mod.insert(kv.key.clone(), kv.mod_revision);
        }
    }
}

/// Watches the prefix (with prev_kv) until it has seen the barrier key written, or `abort`;
/// a broken stream resumes on the next member from the revision after the last one seen.
fn watch(recorder: &Recorder, endpoints: &[String], first: usize, abort: &AtomicBool) {
    let mut next_start = 0;
    for attempt in first.. {
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let client = Client::new(&rotated(endpoints, attempt), CLIENT_TIMEOUT).unwrap();
        let range = RangeRequest::prefix(PREFIX);
        let req = WatchCreateRequest {
            key: range.key.clone(),
            range_end: range.range_end.clone(),
            start_revision: next_start,
            prev_kv: true,
            ..Default::default()
        };
        let mut record = WatchRecord {
            client: CLIENTS,
            key: range.key,
            end: range.range_end,
            start_revision: next_start,
            prev_kv: true,
            responses: Vec::new(),
        };
        let mut done = false;
        let _ = client.watch(&req, |resp| {
            let resp = watch_response(resp);
            let seen = resp.events.iter().map(WatchEvent::revision).chain(resp.created.then_some(resp.revision)).max();
            next_start = next_start.max(seen.map_or(0, |r| r + 1));
            done = resp.events.iter().any(|e| e.kv.key == BARRIER_KEY);
            record.responses.push(resp);
            !done
        });
        let got_something = !record.responses.is_empty();
        if got_something {
            recorder.add_watch(record);
        }
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_history_with_the_leader_killed_and_restarted_is_linearizable() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut members = spawn_cluster("h", 3, dir.path());
    let leader = agreed_leader(&members, 0, Duration::from_secs(20)).expect("a first leader");
    let leader_at = position_of(&members, leader);
    let endpoints: Vec<String> = members.iter().map(Member::endpoint).collect();

    let recorder = Recorder::default();
    let (stop, abort) = (AtomicBool::new(false), AtomicBool::new(false));
    let watch_done = AtomicBool::new(false);
    let final_revision = std::thread::scope(|s| {
        // The watch starts on the leader, so the kill breaks it and it must resume.
        s.spawn(|| {
            watch(&recorder, &endpoints, leader_at, &abort);
            watch_done.store(true, Ordering::Relaxed);
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (recorder, stop, endpoints) = (&recorder, &stop, &endpoints);
                s.spawn(move || traffic(&recording_clients(endpoints, id, recorder), stop))
            })
            .collect();
        std::thread::sleep(RUN / 3);
        members[leader_at].kill();
        agreed_leader(&members, leader, Duration::from_secs(10)).expect("a new leader");
        std::thread::sleep(RUN / 3);
        let data_dir = dir.path().join(&members[leader_at].name);
        let initial = initial_cluster(&members);
        members[leader_at].spawn(&data_dir, &initial, &[]);
        std::thread::sleep(RUN / 3);
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().for_each(|c| c.join().expect("a client thread"));

        // A last write after all the traffic: the watch ends when it has seen it.
        let barrier = recording_clients(&endpoints, CLIENTS + 1, &recorder);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut attempt = 0;
        let final_revision = loop {
            let value = format!("end-{attempt}").into_bytes();
            let put = Request::Kv(KvOp::Put { key: BARRIER_KEY.to_vec(), value, lease: 0 });
            if let Outcome::Ok { revision: Some(r), .. } = barrier[attempt % barrier.len()].call(put) {
                break r;
            }
            attempt += 1;
            assert!(Instant::now() < deadline, "no write succeeded after the run");
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watch_done.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !watch_done.load(Ordering::Relaxed) {
            // Killing the members breaks the stream the watch blocks on.
            abort.store(true, Ordering::Relaxed);
            members.iter_mut().filter(|m| m.running()).for_each(Member::kill);
        }
        final_revision
    });
    let traffic_done = started.elapsed();
    let mut history = recorder.into_history();
    let saved = std::env::temp_dir().join(format!("raftkv-history-{}.jsonl", std::process::id()));
    if abort.load(Ordering::Relaxed) {
        let mut streams = String::new();
        for (i, w) in history.watches.iter().enumerate() {
            let last = w.responses.last().map_or(0, |r| r.events.last().map_or(r.revision, WatchEvent::revision));
            streams += &format!(
                "\n  stream {i}: from revision {}, {} responses, last at {last}",
                w.start_revision,
                w.responses.len()
            );
        }
        crate::history::json::save(&history, &saved).expect("save the history");
        panic!("the watch never reached revision {final_revision}:{streams}\nhistory saved to {}", saved.display());
    }
    let unknown = history.ops.iter().filter(|op| op.outcome == Outcome::Unknown).count();
    let events: usize = history.watches.iter().map(|w| w.events().count()).sum();
    let checked = assert_passes(&mut history, CHECK_LIMIT, &saved);
    eprintln!(
        "{} operations ({unknown} of unknown outcome), {} watch streams with {events} events up to revision \
         {final_revision}; traffic {traffic_done:?}, checked in {:?}",
        history.ops.len(),
        history.watches.len(),
        checked.took
    );
    assert!(history.ops.len() > 300, "only {} operations", history.ops.len());
    assert!(events > 100, "the watch saw only {events} events");
}
