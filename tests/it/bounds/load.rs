//! The loads of issue 16's resource bounds, each a [`Scenario`]: its set-up, then its load
//! under [`Bench::under_load`], and what its own clients got as notes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftkv::pb::*;
use raftkv::Client;

use super::Bench;

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub run: fn(&mut Bench),
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "watch_key", what: "10,000 watchers on one key (100 gRPC streams × 100)", run: watch_key },
    Scenario { name: "watch_prefix", what: "10,000 prefix watchers (1,000 prefixes × 10)", run: watch_prefix },
    Scenario { name: "leases", what: "100,000 leases with a key each, expiring together", run: leases },
    Scenario { name: "idle", what: "10,000 idle client connections (5,000 gRPC, 5,000 HTTP/1.1)", run: idle },
    Scenario { name: "slow_watch", what: "watch streams whose clients read nothing", run: slow_watch },
    Scenario { name: "ranges", what: "1,000 clients doing unpaginated ranges of 100,000 keys", run: ranges },
];

/// Errors by their text, from many threads.
#[derive(Default)]
struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    fn add(&self, e: impl ToString) {
        *self.0.lock().unwrap().entry(e.to_string()).or_default() += 1;
    }

    fn text(&self) -> String {
        let errors = self.0.lock().unwrap();
        if errors.is_empty() {
            return "no errors".into();
        }
        errors.iter().map(|(e, n)| format!("{n} × `{e}`")).collect::<Vec<_>>().join("; ")
    }
}

fn create(key: &[u8], range_end: &[u8]) -> WatchRequest {
    let create = WatchCreateRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() };
    WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) }
}

/// Polls `cond` every 100 ms until it holds, `stop` is set or `limit` passes.
fn wait_for(limit: Duration, stop: &AtomicBool, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Puts `count` keys from `put(n)`, paced at `rate` a second, until `stop`; returns how many
/// were answered (the others' errors go to `errors`).
fn paced_puts(
    writer: &Client,
    (count, rate): (u64, u64),
    stop: &AtomicBool,
    errors: &Errors,
    put: impl Fn(u64) -> PutRequest,
) -> u64 {
    let pace = Duration::from_secs_f64(1.0 / rate as f64);
    let (writing, mut written) = (Instant::now(), 0);
    for n in 0..count {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match writer.put(&put(n)) {
            Ok(_) => written += 1,
            Err(e) => errors.add(format!("writer: {e}")),
        }
        let next = writing + pace * (n as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    written
}

/// Watchers: `streams` gRPC watch streams, each on its own connection, stream `i` creating
/// watchers on `watched(i, j)` for j < `per_stream`; then `writes` puts of keys from `key(n)`
/// paced at `rate` per second, each delivered to `fan_out` watchers. Notes how many watchers
/// were created and events delivered.
fn watchers(
    bench: &mut Bench,
    name: &'static str,
    (streams, per_stream): (usize, usize),
    watched: fn(usize, usize) -> (Vec<u8>, Vec<u8>),
    key: fn(u64) -> Vec<u8>,
    (writes, rate): (u64, u64),
    fan_out: u64,
) {
    let (created, events, ended) = (AtomicUsize::new(0), AtomicU64::new(0), AtomicBool::new(false));
    let errors = Errors::default();
    let writer = bench.client(Duration::from_secs(10));
    let endpoint = bench.endpoint.clone();
    let mut expected = 0;
    let start = Instant::now();
    bench.under_load(name, Duration::from_secs(300), |stop| {
        std::thread::scope(|s| {
            for i in 0..streams {
                let (created, events, ended, errors, endpoint) = (&created, &events, &ended, &errors, &endpoint);
                s.spawn(move || {
                    let client = Client::new(std::slice::from_ref(endpoint), Duration::from_secs(30)).unwrap();
                    let requests: Vec<WatchRequest> = (0..per_stream)
                        .map(|j| {
                            let (key, end) = watched(i, j);
                            create(&key, &end)
                        })
                        .collect();
                    let outcome = client.watch_requests(&requests, |resp| {
                        if resp.created {
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                        if resp.canceled {
                            errors.add(format!("canceled: {}", resp.cancel_reason));
                        }
                        events.fetch_add(resp.events.len() as u64, Ordering::Relaxed);
                        !ended.load(Ordering::Acquire)
                    });
                    if let Err(e) = outcome {
                        errors.add(e);
                    }
                });
            }
            let all = streams * per_stream;
            if !wait_for(Duration::from_secs(120), stop, || created.load(Ordering::Relaxed) == all) {
                errors.add(format!("only {} of {all} watchers created", created.load(Ordering::Relaxed)));
            }
            let written =
                paced_puts(&writer, (writes, rate), stop, &errors, |n| PutRequest::new(key(n), n.to_string()));
            expected = written * fan_out;
            // Every watcher has all it should once the count is reached (or it never will).
            wait_for(Duration::from_secs(30), stop, || events.load(Ordering::Relaxed) >= expected);
            ended.store(true, Ordering::Release);
            // One more event on every stream wakes its callback, which then ends it.
            for i in 0..streams {
                let (key, _) = watched(i, 0);
                let _ = writer.put(&PutRequest::new(key, "end"));
            }
        });
    });
    bench.note(format!(
        "{} watchers created; {} of {expected} events delivered; {}; {:.0} s",
        created.load(Ordering::Relaxed),
        events.load(Ordering::Relaxed).min(expected),
        errors.text(),
        start.elapsed().as_secs_f64()
    ));
}

fn watch_key(bench: &mut Bench) {
    // 5 puts a second to the one key: 50,000 events a second to deliver.
    watchers(
        bench,
        "watch_key",
        (100, 100),
        |_, _| (b"hot".to_vec(), Vec::new()),
        |_| b"hot".to_vec(),
        (75, 5),
        10_000,
    );
}

fn watch_prefix(bench: &mut Bench) {
    // Stream i's watcher j watches prefix (i * 100 + j) % 1000: 10 watchers per prefix. Each
    // put goes to one prefix, so to 10 watchers, and is checked against all 10,000.
    fn prefix(n: usize) -> Vec<u8> {
        format!("pre/{n:04}/").into_bytes()
    }
    let watched = |i: usize, j: usize| {
        let p = prefix((i * 100 + j) % 1000);
        let end = prefix_end(&p);
        (p, end)
    };
    let key = |n: u64| format!("pre/{:04}/k{n}", (n * 7919) % 1000).into_bytes();
    watchers(bench, "watch_prefix", (100, 100), watched, key, (1500, 100), 10);
}

/// 100,000 leases with one key each, of a TTL longer than granting them takes; the member
/// restarts, so that as the new leader it counts every lease down from its full TTL at once
/// and they all come due together. The probe's baseline is taken just before.
fn leases(bench: &mut Bench) {
    const LEASES: usize = 100_000;
    const TTL: i64 = 90;
    const THREADS: usize = 32;
    let start = Instant::now();
    let errors = Errors::default();
    let endpoint = bench.endpoint.clone();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (errors, endpoint) = (&errors, &endpoint);
            s.spawn(move || {
                let client = Client::new(std::slice::from_ref(endpoint), Duration::from_secs(30)).unwrap();
                for i in (t..LEASES).step_by(THREADS) {
                    let id = 1 + i as i64;
                    if let Err(e) = client.lease_grant(&LeaseGrantRequest { ttl: TTL, id }) {
                        errors.add(e);
                        continue;
                    }
                    let put = PutRequest { lease: id, ..PutRequest::new(format!("lease/{i:06}"), "v") };
                    if let Err(e) = client.put(&put) {
                        errors.add(e);
                    }
                }
            });
        }
    });
    bench.note(format!(
        "set-up: {LEASES} leases of TTL {TTL} s and a key each in {:.0} s ({})",
        start.elapsed().as_secs_f64(),
        errors.text()
    ));
    let restarted = Instant::now();
    bench.restart();
    bench.note(format!("restart with {LEASES} leases: healthy in {:.1} s", restarted.elapsed().as_secs_f64()));
    let client = bench.client(Duration::from_secs(30));
    let count = move || {
        let req = RangeRequest { count_only: true, ..RangeRequest::prefix("lease/") };
        client.range(&req).map(|r| r.count).unwrap_or(-1)
    };
    let mut timeline = Vec::new();
    // The baseline (5 s) ends a few seconds before they come due.
    std::thread::sleep((restarted + Duration::from_secs(TTL as u64 - 8)).saturating_duration_since(Instant::now()));
    bench.under_load("leases", Duration::from_secs(300), |stop| {
        let mut first_gone = None;
        loop {
            let left = count();
            let at = restarted.elapsed().as_secs_f64();
            if left >= 0 && left < LEASES as i64 && first_gone.is_none() {
                first_gone = Some(at);
            }
            if timeline.last().is_none_or(|(_, l)| *l != left) {
                timeline.push((at, left));
            }
            if left == 0 || stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let step = (timeline.len() / 8).max(1);
    let marks: Vec<String> = timeline.iter().step_by(step).map(|(at, left)| format!("{at:.0} s: {left}")).collect();
    bench.note(format!(
        "keys left after the restart: {}; last: {:?}",
        marks.join(", "),
        timeline.last().map(|(at, left)| format!("{at:.1} s: {left}"))
    ));
}

/// 5,000 gRPC clients and 5,000 gateway clients, each with one range answered, then held open
/// and idle for 20 s; every 10th is asked again at the end.
fn idle(bench: &mut Bench) {
    const EACH: usize = 5_000;
    const OPENERS: usize = 8;
    let errors = Errors::default();
    let endpoint = bench.endpoint.clone();
    let (mut opened, mut again) = (0, 0);
    bench.under_load("idle", Duration::from_secs(300), |_stop| {
        let clients: Vec<Client> = std::thread::scope(|s| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|t| {
                    let (errors, endpoint) = (&errors, &endpoint);
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for i in (t..2 * EACH).step_by(OPENERS) {
                            let endpoints = [endpoint.clone()];
                            let timeout = Duration::from_secs(30);
                            let client = if i % 2 == 0 {
                                Client::new(&endpoints, timeout).unwrap()
                            } else {
                                Client::gateway(&endpoints, timeout).unwrap()
                            };
                            match client.range(&RangeRequest::key("idle")) {
                                Ok(_) => mine.push(client),
                                Err(e) => errors.add(e),
                            }
                        }
                        mine
                    })
                })
                .collect();
            openers.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        opened = clients.len();
        std::thread::sleep(Duration::from_secs(20));
        for client in clients.iter().step_by(10) {
            match client.range(&RangeRequest::key("idle")) {
                Ok(_) => again += 1,
                Err(e) => errors.add(format!("again: {e}")),
            }
        }
    });
    bench.note(format!(
        "{opened} of {} connections opened and answered; {again} of every 10th answered again after 20 s idle; {}",
        2 * EACH,
        errors.text()
    ));
}

/// Four gRPC and four gateway watch streams on one prefix whose clients read nothing while
/// 200 puts/s of 4 KiB values go on for 20 s; then they read again and must each get every
/// event exactly once.
fn slow_watch(bench: &mut Bench) {
    const EACH: usize = 4;
    const PUTS: u64 = 4_000;
    const RATE: u64 = 200;
    let value = vec![b'x'; 4096];
    let (reading, ended, finished) = (AtomicBool::new(false), AtomicBool::new(false), AtomicUsize::new(0));
    // The revision of the last put: a stream that has delivered it has caught up.
    let end_revision = std::sync::atomic::AtomicI64::new(i64::MAX);
    let errors = Errors::default();
    let endpoint = bench.endpoint.clone();
    let writer = bench.client(Duration::from_secs(10));
    let mut delivered = Vec::new();
    let mut written = 0;
    let mut caught_up = Duration::ZERO;
    bench.under_load("slow_watch", Duration::from_secs(300), |stop| {
        delivered = std::thread::scope(|s| {
            let watchers: Vec<_> = (0..2 * EACH)
                .map(|i| {
                    let (reading, ended, finished, end_revision, errors, endpoint) =
                        (&reading, &ended, &finished, &end_revision, &errors, &endpoint);
                    s.spawn(move || {
                        let endpoints = [endpoint.clone()];
                        let timeout = Duration::from_secs(30);
                        let client = if i < EACH {
                            Client::new(&endpoints, timeout)
                        } else {
                            Client::gateway(&endpoints, timeout)
                        }
                        .unwrap();
                        let (mut events, mut last) = (0u64, 0i64);
                        let outcome = client.watch_requests(&[create(b"slow/", &prefix_end(b"slow/"))], |resp| {
                            // Reads nothing more until told to: the stream backs up to the member.
                            while !reading.load(Ordering::Acquire) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            for event in &resp.events {
                                let rev = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                                if rev <= last {
                                    errors.add("an event out of order or twice");
                                }
                                last = rev;
                                events += 1;
                            }
                            last < end_revision.load(Ordering::Acquire) && !ended.load(Ordering::Acquire)
                        });
                        if let Err(e) = outcome {
                            errors.add(e);
                        }
                        finished.fetch_add(1, Ordering::Release);
                        events
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(1));
            written = paced_puts(&writer, (PUTS, RATE), stop, &errors, |n| {
                PutRequest::new(format!("slow/{n}"), value.clone())
            });
            match writer.put(&PutRequest::new("slow/end", "end")) {
                Ok(resp) => end_revision.store(resp.header.map_or(0, |h| h.revision), Ordering::Release),
                Err(e) => errors.add(format!("writer: {e}")),
            }
            let released = Instant::now();
            reading.store(true, Ordering::Release);
            let all = 2 * EACH;
            if !wait_for(Duration::from_secs(120), stop, || finished.load(Ordering::Acquire) == all) {
                errors.add(format!("{} of {all} streams caught up within 120 s", finished.load(Ordering::Acquire)));
                ended.store(true, Ordering::Release);
                let _ = writer.put(&PutRequest::new("slow/wake", "wake"));
            }
            caught_up = released.elapsed();
            watchers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<u64>>()
        });
    });
    // The last put (`slow/end`) is delivered too.
    let whole = delivered.iter().filter(|n| **n == written + 1).count();
    bench.note(format!(
        "{written} puts of 4 KiB; reading again, {whole} of {} streams got every event once, in {:.0} s (events per stream: {delivered:?}); {}",
        2 * EACH,
        caught_up.as_secs_f64(),
        errors.text()
    ));
}

/// 100,000 keys of 16-byte values; 1,000 clients on their own connections range over all of
/// them, unpaginated, again and again for 30 s (100 ms after a refusal).
fn ranges(bench: &mut Bench) {
    const KEYS: usize = 100_000;
    const CLIENTS: usize = 1_000;
    const PER_TXN: usize = 100;
    let start = Instant::now();
    let errors = Errors::default();
    let endpoint = bench.endpoint.clone();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (errors, endpoint) = (&errors, &endpoint);
            s.spawn(move || {
                let client = Client::new(std::slice::from_ref(endpoint), Duration::from_secs(30)).unwrap();
                for batch in (t..KEYS / PER_TXN).step_by(8) {
                    let success = (batch * PER_TXN..(batch + 1) * PER_TXN)
                        .map(|i| RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest::new(
                                format!("range/{i:06}"),
                                format!("{i:016}"),
                            ))),
                        })
                        .collect();
                    if let Err(e) = client.txn(&TxnRequest { success, ..Default::default() }) {
                        errors.add(e);
                    }
                }
            });
        }
    });
    bench.note(format!("set-up: {KEYS} keys in {:.0} s ({})", start.elapsed().as_secs_f64(), errors.text()));
    let (ok, keys_seen) = (AtomicU64::new(0), AtomicU64::new(0));
    let errors = Errors::default();
    let latencies = Mutex::new(super::probe::latencies());
    let load_start = Instant::now();
    bench.under_load("ranges", Duration::from_secs(600), |_stop| {
        std::thread::scope(|s| {
            for _ in 0..CLIENTS {
                let (ok, keys_seen, errors, latencies, endpoint) = (&ok, &keys_seen, &errors, &latencies, &endpoint);
                s.spawn(move || {
                    let client = Client::new(std::slice::from_ref(endpoint), Duration::from_secs(60)).unwrap();
                    while load_start.elapsed() < Duration::from_secs(30) {
                        let began = Instant::now();
                        match client.range(&RangeRequest::prefix("range/")) {
                            Ok(resp) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                keys_seen.fetch_add(resp.kvs.len() as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.add(e);
                                // A refused client backs off a little before it asks again.
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        latencies.lock().unwrap().saturating_record(began.elapsed().as_micros() as u64);
                    }
                });
            }
        });
    });
    let h = latencies.lock().unwrap();
    bench.note(format!(
        "{} ranges answered ({} keys each on average), range p50 {} ms p99 {} ms max {} ms; {}; load ended after {:.0} s",
        ok.load(Ordering::Relaxed),
        keys_seen.load(Ordering::Relaxed) / ok.load(Ordering::Relaxed).max(1),
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.max() / 1000,
        errors.text(),
        load_start.elapsed().as_secs_f64()
    ));
}
