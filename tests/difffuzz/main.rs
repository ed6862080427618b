//! Differential fuzzer of the JSON gateway: a fresh etcd 3.4 and a fresh raftkv get the same
//! random request sequence (from a seed), and every answer is compared (status, the headers
//! clients read, framing, trailers and body) after the normalizations named in
//! `normalize.rs`. The first difference stops the run with the request, both answers and
//! the command that replays it.
//!
//!     cargo test --release --test difffuzz -- --seeds 20 --ops 1500   # make compat
//!     cargo test --release --test difffuzz -- --seed 7 --ops 420      # replay one seed
//!
//! Without arguments (as `make test` runs it) it runs one short seed, and skips when etcd is
//! not installed. Both servers keep their data in a temp dir (on /dev/shm when there is one,
//! so etcd's fsyncs do not set the pace).

mod gen;
#[path = "../harness/http.rs"]
#[allow(dead_code)] // the fuzzer uses the raw client only
mod http;
mod normalize;
mod server;

use std::time::{Duration, Instant};

use rand::SeedableRng;

use gen::{Gen, Op, State};
use normalize::{normalize, Answer};
use server::{Reply, Request, Server, ETCD_BIN};

struct Args {
    seeds: Vec<u64>,
    ops: usize,
    /// Run the other seeds after a mismatch (to see several at once).
    keep_going: bool,
}

fn args() -> Args {
    let mut args = Args { seeds: vec![1], ops: 300, keep_going: false };
    let (mut first, mut count) = (1, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number =
            || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{arg} wants a number"));
        match arg.as_str() {
            "--seed" => args.seeds = vec![number()],
            "--seeds" => count = Some(number()),
            "--first-seed" => first = number(),
            "--ops" => args.ops = number() as usize,
            "--keep-going" => args.keep_going = true,
            // What the test harness passes along (filters, --nocapture) means nothing here.
            _ => {}
        }
    }
    if let Some(count) = count {
        args.seeds = (first..first + count).collect();
    }
    args
}

fn main() {
    normalize::self_check();
    if !std::path::Path::new(ETCD_BIN).exists() {
        println!("difffuzz: {ETCD_BIN} not installed (apt-get install etcd-server); skipped");
        return;
    }
    let args = args();
    let started = Instant::now();
    let (mut total, mut failed) = (0, 0);
    for &seed in &args.seeds {
        match run_seed(seed, args.ops) {
            Ok(summary) => {
                total += args.ops;
                println!("difffuzz: seed {seed}: {} ops, 0 mismatches ({summary})", args.ops);
            }
            Err(report) => {
                eprintln!("{report}");
                eprintln!("difffuzz: replay with: scripts/difffuzz.sh --seed {seed} --ops {}", args.ops);
                failed += 1;
                if !args.keep_going {
                    break;
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("difffuzz: {failed} of {} seeds found a mismatch", args.seeds.len());
        std::process::exit(1);
    }
    println!(
        "difffuzz: {} seeds × {} ops = {total} requests, 0 mismatches, in {:.0} s",
        args.seeds.len(),
        args.ops,
        started.elapsed().as_secs_f64()
    );
}

/// The two servers of one run and what the run learned.
struct Run {
    etcd: Server,
    raftkv: Server,
    state: State,
    /// Lease ids each server chose, by symbol.
    etcd_leases: Vec<String>,
    raftkv_leases: Vec<String>,
    /// Requests per path, for the summary.
    counts: std::collections::BTreeMap<String, usize>,
    _dir: tempfile::TempDir,
}

fn run_seed(seed: u64, ops: usize) -> Result<String, String> {
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::Builder::new().prefix("difffuzz").tempdir_in("/dev/shm"),
        false => tempfile::tempdir(),
    }
    .unwrap();
    let mut run = Run {
        etcd: Server::etcd(&dir.path().join("etcd")),
        raftkv: Server::raftkv(&dir.path().join("raftkv")),
        state: State { revision: 1, compacted: -1, leases: 0 },
        etcd_leases: Vec::new(),
        raftkv_leases: Vec::new(),
        counts: Default::default(),
        _dir: dir,
    };
    let mut gen = Gen { rng: rand::rngs::StdRng::seed_from_u64(seed), txn_ignores: None };
    for i in 0..ops {
        let op = gen.op(&run.state);
        match op {
            Op::Send(req) => run.compare(i, seed, &req)?,
            Op::Expire { id, ttl, keys } => run.expire(i, seed, id, ttl, &keys)?,
            Op::Watch(req) => run.watch(i, seed, &req)?,
        }
    }
    let summary: Vec<String> = run.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Ok(summary.join(", "))
}

fn show(req: &Request) -> String {
    let body = String::from_utf8_lossy(&req.body);
    let body = if body.len() > 1500 { format!("{}… ({} bytes)", &body[..1500], req.body.len()) } else { body.into() };
    format!("{} {} {body:?}", req.method, req.target)
}

impl Run {
    /// `req` with the lease symbols replaced by `leases`' ids.
    fn bind(req: &Request, leases: &[String]) -> Request {
        let mut body = req.body.clone();
        for (i, id) in leases.iter().enumerate().rev() {
            body = replace(&body, format!("@@L{i}@@").as_bytes(), id.as_bytes());
        }
        Request { method: req.method, target: req.target.clone(), body }
    }

    fn send_both(&mut self, req: &Request) -> (Reply, Reply) {
        let e = self.etcd.send(&Run::bind(req, &self.etcd_leases));
        let r = self.raftkv.send(&Run::bind(req, &self.raftkv_leases));
        (e, r)
    }

    /// Sends `req` to both and compares the answers; then waits out a short lease it granted.
    fn compare(&mut self, i: usize, seed: u64, req: &Request) -> Result<(), String> {
        let e = self.exchange(i, seed, req)?;
        // A lease short enough to expire during the run expires on each server's clock: wait
        // until both revoked it, so the run goes on from one state.
        if req.target == "/v3/lease/grant" && e.status == 200 {
            let body = String::from_utf8_lossy(&e.body);
            if field(&body, "TTL").and_then(|t| t.parse::<i64>().ok()).is_some_and(|ttl| ttl < 60) {
                let symbol = match field(&body, "ID") {
                    Some(id) if self.etcd_leases.contains(&id) => format!("@@L{}@@", self.state.leases - 1),
                    Some(id) => id,
                    None => return Ok(()),
                };
                self.wait_expired(i, seed, &symbol)?;
            }
        }
        Ok(())
    }

    /// Sends `req` to both and compares the answers; returns etcd's.
    fn exchange(&mut self, i: usize, seed: u64, req: &Request) -> Result<Reply, String> {
        let (e, r) = self.send_both(req);
        if std::env::var_os("DIFFFUZZ_TRACE").is_some() {
            let answer = String::from_utf8_lossy(&e.body);
            let answer: String = answer.chars().take(300).collect();
            eprintln!("op {i}: {} -> etcd {} {answer:?} / raftkv {}", show(req), e.status, r.status);
        }
        *self.counts.entry(req.target.clone()).or_default() += 1;
        self.learn_lease(req, &e, &r);
        self.check(i, seed, req, &e, &r)?;
        self.learn(req, &e);
        Ok(e)
    }

    fn check(&mut self, i: usize, seed: u64, req: &Request, e: &Reply, r: &Reply) -> Result<(), String> {
        if !self.etcd.alive() {
            return Err(format!("difffuzz: seed {seed} op {i}: etcd died on {} (a generator bug)", show(req)));
        }
        if !self.raftkv.alive() {
            return Err(format!(
                "difffuzz: seed {seed} op {i}: raftkv died on {}; log {}",
                show(req),
                self.raftkv.log.display()
            ));
        }
        let (ne, nr) = (normalize(&req.target, e, &self.etcd_leases), normalize(&req.target, r, &self.raftkv_leases));
        if same(&ne, &nr) {
            return Ok(());
        }
        Err(format!(
            "difffuzz: MISMATCH at seed {seed} op {i}\n  request: {}\n  etcd:    {ne:?}\n  raftkv:  {nr:?}",
            show(req)
        ))
    }

    /// A lease each server granted with an id of its choosing becomes the next symbol, before
    /// the answers are compared (`lease-ids`).
    fn learn_lease(&mut self, req: &Request, e: &Reply, r: &Reply) {
        if req.target != "/v3/lease/grant" || e.status != 200 || r.status != 200 {
            return;
        }
        let (ide, idr) =
            (field(&String::from_utf8_lossy(&e.body), "ID"), field(&String::from_utf8_lossy(&r.body), "ID"));
        if let (Some(ide), Some(idr)) = (ide, idr) {
            if ide != idr {
                self.etcd_leases.push(ide);
                self.raftkv_leases.push(idr);
                self.state.leases += 1;
            }
        }
    }

    /// Updates the generator's view from etcd's answer (raftkv's matched it).
    fn learn(&mut self, req: &Request, e: &Reply) {
        let body = String::from_utf8_lossy(&e.body);
        if let Some(rev) = field(&body, "revision").and_then(|v| v.parse::<i64>().ok()) {
            self.state.revision = self.state.revision.max(rev);
        }
        if e.status != 200 {
            return;
        }
        if req.target == "/v3/kv/compaction" {
            let sent = String::from_utf8_lossy(&req.body);
            let mut values = serde_json::Deserializer::from_str(&sent).into_iter::<serde_json::Value>();
            let rev = match values.next() {
                Some(Ok(v)) => match &v["revision"] {
                    serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
                    serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
                    _ => 0,
                },
                _ => 0,
            };
            self.state.compacted = rev;
        }
    }

    /// A lease with a short TTL and keys on it, granted on both servers; then both must revoke
    /// it on expiry and hold the same keys afterwards.
    fn expire(&mut self, i: usize, seed: u64, id: i64, ttl: i64, keys: &[&[u8]]) -> Result<(), String> {
        let grant = Request {
            method: "POST",
            target: "/v3/lease/grant".into(),
            body: format!(r#"{{"TTL":{ttl},"ID":"{id}"}}"#).into_bytes(),
        };
        self.exchange(i, seed, &grant)?;
        for key in keys {
            let put = format!(r#"{{"key":"{}","value":"ZQ==","lease":"{id}"}}"#, gen::b64(key));
            self.exchange(i, seed, &Request { method: "POST", target: "/v3/kv/put".into(), body: put.into_bytes() })?;
        }
        self.wait_expired(i, seed, &id.to_string())
    }

    /// A watch on each server: the messages that arrive before it goes quiet.
    fn watch(&mut self, i: usize, seed: u64, req: &Request) -> Result<(), String> {
        let quiet = Duration::from_millis(400);
        let e = self.etcd.stream(&Run::bind(req, &self.etcd_leases), quiet);
        let r = self.raftkv.stream(&Run::bind(req, &self.raftkv_leases), quiet);
        *self.counts.entry(req.target.clone()).or_default() += 1;
        self.check(i, seed, req, &e, &r)
    }

    /// Waits until lease `id` (an id, or a symbol) is gone on both servers, then compares all
    /// keys.
    fn wait_expired(&mut self, i: usize, seed: u64, id: &str) -> Result<(), String> {
        let ttl_req = Request {
            method: "POST",
            target: "/v3/lease/timetolive".into(),
            body: format!(r#"{{"ID":"{id}"}}"#).into_bytes(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (e, r) = self.send_both(&ttl_req);
            let gone = |reply: &Reply| String::from_utf8_lossy(&reply.body).contains(r#""TTL":"-1""#);
            if gone(&e) && gone(&r) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "difffuzz: seed {seed} op {i}: lease {id} did not expire on both: etcd {e:?} raftkv {r:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let everything = Request {
            method: "POST",
            target: "/v3/kv/range".into(),
            body: br#"{"key":"AA==","range_end":"AA=="}"#.to_vec(),
        };
        self.compare(i, seed, &everything)
    }
}

/// Answers agree; framing near Go's 2 KiB boundary may go either way (`chunk-boundary`).
fn same(a: &Answer, b: &Answer) -> bool {
    let framing = a.framing == b.framing || a.framing == "either" || b.framing == "either";
    framing && a.status == b.status && a.headers == b.headers && a.trailers == b.trailers && a.body == b.body
}

/// The first value of `"name":` in a JSON text, unquoted.
fn field(body: &str, name: &str) -> Option<String> {
    let at = body.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = body[at..].trim_start_matches('"');
    let end = rest.find(['"', ',', '}'])?;
    Some(rest[..end].to_string())
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}
