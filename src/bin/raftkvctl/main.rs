//! `raftkvctl`: etcdctl's verbs and output for raftkv (and etcd) members, over the JSON gateway
//! with the blocking [`raftkv::Client`]. Errors print as `Error: <message>` and exit 1, as
//! etcdctl's do.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use raftkv::client::Error as CtlError;
use raftkv::jsonpb::ToJson;
use raftkv::pb::compare::TargetUnion;
use raftkv::pb::request_op::Request;
use raftkv::pb::response_op::Response;
use raftkv::pb::*;
use raftkv::Client;

mod bench;

#[derive(Parser)]
#[command(name = "raftkvctl", version, about = "A command line client for raftkv (etcdctl's verbs)")]
struct Cli {
    /// gRPC-gateway endpoints (comma-separated).
    #[arg(long, global = true, env = "RAFTKVCTL_ENDPOINTS", default_value = "127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", global = true, default_value = "simple")]
    write_out: Format,
    /// Timeout of each request.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    command_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Simple,
    Json,
    Table,
}

#[derive(Clone, Copy, ValueEnum)]
enum SortBy {
    Key,
    Version,
    Create,
    Modify,
    Value,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
enum Order {
    Ascend,
    Descend,
}

#[derive(Subcommand)]
enum Command {
    /// Puts the given key into the store.
    Put {
        key: String,
        value: String,
        #[arg(long)]
        prev_kv: bool,
        #[arg(long)]
        ignore_value: bool,
        #[arg(long, default_value = "0", value_parser = parse_hex_or_dec)]
        lease: i64,
    },
    /// Gets the key or a range of keys.
    Get {
        key: String,
        range_end: Option<String>,
        #[arg(long)]
        prefix: bool,
        #[arg(long)]
        from_key: bool,
        #[arg(long, default_value_t = 0)]
        rev: i64,
        #[arg(long, default_value_t = 0)]
        limit: i64,
        #[arg(long)]
        sort_by: Option<SortBy>,
        #[arg(long)]
        order: Option<Order>,
        #[arg(long)]
        keys_only: bool,
        #[arg(long)]
        count_only: bool,
        #[arg(long)]
        print_value_only: bool,
        /// Linearizable (l) or serializable (s).
        #[arg(long, default_value = "l")]
        consistency: String,
    },
    /// Removes the specified key or range of keys.
    Del {
        key: String,
        range_end: Option<String>,
        #[arg(long)]
        prefix: bool,
        #[arg(long)]
        from_key: bool,
        #[arg(long)]
        prev_kv: bool,
    },
    /// Txn processes all the requests in one transaction (etcdctl's stdin syntax).
    Txn {
        #[arg(short, long)]
        interactive: bool,
    },
    /// Watches a key or prefix and prints every event until interrupted.
    Watch {
        key: String,
        range_end: Option<String>,
        #[arg(long)]
        prefix: bool,
        /// Revision to start watching from (replays history).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        #[arg(long)]
        prev_kv: bool,
    },
    /// Compacts the event history.
    Compaction {
        revision: i64,
        #[arg(long)]
        physical: bool,
    },
    /// Endpoint related commands.
    Endpoint {
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Lease related commands.
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
    /// Load generator (etcd's tools/benchmark): puts or ranges from many clients.
    Bench {
        /// Keep-alive connections shared by the clients.
        #[arg(long, default_value_t = 1)]
        conns: usize,
        /// Concurrent clients (threads).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Requests in all.
        #[arg(long, default_value_t = 10_000)]
        total: u64,
        /// Requests per second across clients (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
        /// Send every request to the leader (found with endpoint status).
        #[arg(long)]
        target_leader: bool,
        #[command(subcommand)]
        workload: BenchCommand,
    },
    /// Transfers leadership to another member (hex id), like `etcdctl move-leader`.
    MoveLeader { target: String },
    /// Membership related commands.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// Prints out the status of the endpoints.
    Status,
    /// Checks the healthiness of the endpoints.
    Health,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Puts with generated keys.
    Put {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        /// Keys in order instead of spread over the key space.
        #[arg(long)]
        sequential_keys: bool,
        #[arg(long, default_value_t = 1)]
        key_space_size: u64,
    },
    /// Ranges over KEY (or [KEY, END)).
    Range {
        key: String,
        end: Option<String>,
        /// Linearizable (l) or serializable (s).
        #[arg(long, default_value = "l")]
        consistency: String,
    },
    /// Txns of --txn-ops puts each.
    TxnPut {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        #[arg(long, default_value_t = 1)]
        key_space_size: u64,
        #[arg(long, default_value_t = 1)]
        txn_ops: usize,
    },
    /// Lease keepalives; every client renews a lease it granted.
    LeaseKeepalive,
    /// Put→event latency seen by --watchers watch streams on one key (--total puts at --rate,
    /// 100/s if unset).
    WatchLatency {
        #[arg(long, default_value_t = 10)]
        watchers: usize,
        #[arg(long, default_value = "watchkey")]
        key: String,
        #[arg(long, default_value_t = 32)]
        val_size: usize,
    },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Creates a lease with a TTL in seconds.
    Grant { ttl: i64 },
    /// Revokes a lease and deletes its keys.
    Revoke {
        #[arg(value_parser = parse_hex_or_dec)]
        id: i64,
    },
    /// Shows a lease's remaining TTL.
    Timetolive {
        #[arg(value_parser = parse_hex_or_dec)]
        id: i64,
        /// Also list the attached keys.
        #[arg(long)]
        keys: bool,
    },
    /// Lists all leases.
    List,
    /// Keeps a lease alive (once, or until interrupted).
    KeepAlive {
        #[arg(value_parser = parse_hex_or_dec)]
        id: i64,
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Lists all members in the cluster.
    List,
    /// Adds a member into the cluster.
    Add {
        name: String,
        /// Comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
        /// Indicates if the new member is a raft learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster.
    Remove { id: String },
    /// Updates a member's peer URLs in the cluster.
    Update {
        id: String,
        /// Comma separated peer URLs for the member.
        #[arg(long = "peer-urls", value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
    },
    /// Promotes a learner member to a voting member.
    Promote { id: String },
}

/// Member ids are hex, as etcdctl prints and reads them; a bad one is etcdctl's error.
fn parse_member_id(s: &str) -> Result<u64, CtlError> {
    u64::from_str_radix(s, 16).map_err(|e| CtlError::Usage(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_hex_or_dec(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    i64::from_str_radix(s, 16).or_else(|_| s.parse()).map_err(|_| format!("bad lease ID {s:?}"))
}

/// etcdctl's key range arguments → (key, range_end).
fn key_range(key: &str, range_end: Option<String>, prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
    let key = key.as_bytes().to_vec();
    if prefix {
        let end = if key.is_empty() { vec![0] } else { prefix_end(&key) };
        let key = if key.is_empty() { vec![0] } else { key };
        return (key, end);
    }
    if from_key {
        let key = if key.is_empty() { vec![0] } else { key };
        return (key, vec![0]);
    }
    (key, range_end.map(String::into_bytes).unwrap_or_default())
}

struct Ctl {
    client: Client,
    format: Format,
}

type Outcome = Result<(), CtlError>;

impl Ctl {
    fn print_json(&self, resp: &impl ToJson) {
        println!("{}", resp.to_etcdctl_json());
    }

    fn print_kvs(&self, kvs: &[KeyValue], keys_only: bool, value_only: bool) {
        for kv in kvs {
            if !value_only {
                println!("{}", String::from_utf8_lossy(&kv.key));
            }
            if !keys_only {
                println!("{}", String::from_utf8_lossy(&kv.value));
            }
        }
    }

    fn put(&self, req: PutRequest) -> Outcome {
        let resp = self.client.put(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => {
                println!("OK");
                if let Some(prev) = &resp.prev_kv {
                    self.print_kvs(std::slice::from_ref(prev), false, false);
                }
            }
        }
        Ok(())
    }

    fn get(&self, req: RangeRequest, value_only: bool) -> Outcome {
        let resp = self.client.range(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ if req.count_only => println!("{}", resp.count),
            _ => self.print_kvs(&resp.kvs, req.keys_only, value_only),
        }
        Ok(())
    }

    fn del(&self, req: DeleteRangeRequest) -> Outcome {
        let resp = self.client.delete_range(&req)?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => {
                println!("{}", resp.deleted);
                self.print_kvs(&resp.prev_kvs, false, false);
            }
        }
        Ok(())
    }

    fn txn(&self, interactive: bool) -> Outcome {
        let req = read_txn(interactive).map_err(CtlError::Usage)?;
        let resp = self.client.txn(&req)?;
        if self.format == Format::Json {
            self.print_json(&resp);
            return Ok(());
        }
        println!("{}", if resp.succeeded { "SUCCESS" } else { "FAILURE" });
        for op in &resp.responses {
            println!();
            match &op.response {
                Some(Response::ResponsePut(_)) => println!("OK"),
                Some(Response::ResponseRange(r)) => self.print_kvs(&r.kvs, false, false),
                Some(Response::ResponseDeleteRange(d)) => println!("{}", d.deleted),
                Some(Response::ResponseTxn(_)) | None => {}
            }
        }
        Ok(())
    }

    fn watch(&self, req: WatchCreateRequest) -> Outcome {
        let json = self.format == Format::Json;
        let mut canceled = None;
        self.client.watch(&req, |resp| {
            if json {
                println!("{}", resp.to_etcdctl_json());
            } else {
                // etcdctl's simple format: the event type, then key and value lines.
                for e in &resp.events {
                    println!("{}", if e.r#type == EventType::Delete as i32 { "DELETE" } else { "PUT" });
                    if let Some(prev) = &e.prev_kv {
                        self.print_kvs(std::slice::from_ref(prev), false, false);
                    }
                    if let Some(kv) = &e.kv {
                        self.print_kvs(std::slice::from_ref(kv), false, false);
                    }
                }
            }
            let _ = std::io::stdout().flush();
            if resp.canceled {
                canceled = Some(resp.compact_revision);
            }
            !resp.canceled
        })?;
        match canceled {
            Some(rev) if rev > 0 => Err(CtlError::from(raftkv::Error::Compacted)),
            _ => Ok(()),
        }
    }

    fn compaction(&self, revision: i64, physical: bool) -> Outcome {
        let resp = self.client.compact(&CompactionRequest { revision, physical })?;
        match self.format {
            Format::Json => self.print_json(&resp),
            _ => println!("compacted revision {revision}"),
        }
        Ok(())
    }

    /// Runs `f` against each endpoint on its own, as etcdctl's endpoint commands do.
    fn per_endpoint<T>(
        &self,
        endpoints: &[String],
        f: impl Fn(&Client) -> Result<T, CtlError>,
    ) -> Vec<(String, Result<T, CtlError>)> {
        endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(|e| {
                let client = Client::new(&[e.to_string()], Duration::from_secs(5)).and_then(|c| f(&c));
                (e.trim_start_matches("http://").to_string(), client)
            })
            .collect()
    }

    fn endpoint_status(&self, endpoints: &[String]) -> Outcome {
        let mut failed = None;
        let mut rows = Vec::new();
        for (endpoint, status) in self.per_endpoint(endpoints, Client::status) {
            match status {
                Ok(s) => {
                    if self.format == Format::Json {
                        println!("{}", s.to_etcdctl_json());
                        continue;
                    }
                    let header = s.header.unwrap_or_default();
                    rows.push(vec![
                        endpoint,
                        format!("{:x}", header.member_id),
                        s.version.clone(),
                        human_bytes(s.db_size),
                        (s.leader == header.member_id).to_string(),
                        s.is_learner.to_string(),
                        s.raft_term.to_string(),
                        s.raft_index.to_string(),
                        s.raft_applied_index.to_string(),
                        s.errors.join(", "),
                    ]);
                }
                Err(e) => {
                    eprintln!("Failed to get the status of endpoint {endpoint} (context deadline exceeded): {e}");
                    failed = Some(e);
                }
            }
        }
        let header = [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS",
        ];
        self.print_rows(&header, &rows);
        failed.map_or(Ok(()), Err)
    }

    fn endpoint_health(&self, endpoints: &[String]) -> Outcome {
        let mut unhealthy = false;
        for (endpoint, took) in self.per_endpoint(endpoints, |c| {
            let start = Instant::now();
            // etcdctl's probe: a linearizable read of a key nobody writes.
            c.range(&RangeRequest::key("health"))?;
            Ok(start.elapsed())
        }) {
            match took {
                Ok(took) => println!("{endpoint} is healthy: successfully committed proposal: took = {took:?}"),
                Err(e) => {
                    unhealthy = true;
                    eprintln!("{endpoint} is unhealthy: failed to commit proposal: {e}");
                }
            }
        }
        if unhealthy {
            return Err(CtlError::Usage("unhealthy cluster".into()));
        }
        Ok(())
    }

    fn lease(&self, command: LeaseCommand) -> Outcome {
        let json = self.format == Format::Json;
        match command {
            LeaseCommand::Grant { ttl } => {
                let r = self.client.lease_grant(&LeaseGrantRequest { ttl, id: 0 })?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("lease {:x} granted with TTL({}s)", r.id, r.ttl)
                }
            }
            LeaseCommand::Revoke { id } => {
                let r = self.client.lease_revoke(&LeaseRevokeRequest { id })?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("lease {id:x} revoked")
                }
            }
            LeaseCommand::Timetolive { id, keys } => {
                let r = self.client.lease_time_to_live(&LeaseTimeToLiveRequest { id, keys })?;
                if json {
                    self.print_json(&r)
                } else if r.ttl == -1 {
                    println!("lease {id:x} already expired")
                } else if keys {
                    let names: Vec<String> = r.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
                    println!(
                        "lease {id:x} granted with TTL({}s), remaining({}s), attached keys([{}])",
                        r.granted_ttl,
                        r.ttl,
                        names.join(" ")
                    )
                } else {
                    println!("lease {id:x} granted with TTL({}s), remaining({}s)", r.granted_ttl, r.ttl)
                }
            }
            LeaseCommand::List => {
                let r = self.client.lease_leases()?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("found {} leases", r.leases.len());
                    for l in &r.leases {
                        println!("{:x}", l.id);
                    }
                }
            }
            LeaseCommand::KeepAlive { id, once } => loop {
                let r = self.client.lease_keep_alive(&LeaseKeepAliveRequest { id })?;
                if r.ttl <= 0 {
                    println!("lease {id:x} expired or revoked.");
                    return Ok(());
                }
                println!("lease {id:x} keepalived with TTL({})", r.ttl);
                if once {
                    return Ok(());
                }
                // etcd's client renews at a third of the TTL.
                std::thread::sleep(Duration::from_secs((r.ttl as u64 / 3).max(1)));
            },
        }
        Ok(())
    }

    fn member_list(&self) -> Outcome {
        let resp = self.client.member_list()?;
        if self.format == Format::Json {
            self.print_json(&resp);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = resp
            .members
            .iter()
            .map(|m| {
                let state = if m.name.is_empty() { "unstarted" } else { "started" };
                vec![
                    format!("{:x}", m.id),
                    state.into(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    m.client_urls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect();
        self.print_rows(&["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], &rows);
        Ok(())
    }

    fn member(&self, command: MemberCommand) -> Outcome {
        let (verb, id, header) = match command {
            MemberCommand::List => return self.member_list(),
            MemberCommand::Add { name, peer_urls, learner } => {
                let req = MemberAddRequest { peer_urls: peer_urls.clone(), is_learner: learner };
                let resp = self.client.member_add(&req)?;
                if self.format == Format::Json {
                    self.print_json(&resp);
                    return Ok(());
                }
                let id = resp.member.as_ref().map_or(0, |m| m.id);
                let cluster_id = resp.header.as_ref().map_or(0, |h| h.cluster_id);
                println!("Member {id:16x} added to cluster {cluster_id:16x}");
                // etcdctl's hints for starting the new member.
                let initial: Vec<String> = resp
                    .members
                    .iter()
                    .flat_map(|m| {
                        let member_name = if m.id == id { name.clone() } else { m.name.clone() };
                        m.peer_urls.iter().map(move |u| format!("{member_name}={u}"))
                    })
                    .collect();
                println!();
                println!("ETCD_NAME={name:?}");
                println!("ETCD_INITIAL_CLUSTER={:?}", initial.join(","));
                println!("ETCD_INITIAL_ADVERTISE_PEER_URLS={:?}", peer_urls.join(","));
                println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
                return Ok(());
            }
            MemberCommand::Remove { id } => {
                let id = parse_member_id(&id)?;
                ("removed from", id, self.client.member_remove(&MemberRemoveRequest { id })?.header)
            }
            MemberCommand::Update { id, peer_urls } => {
                let id = parse_member_id(&id)?;
                ("updated in", id, self.client.member_update(&MemberUpdateRequest { id, peer_urls })?.header)
            }
            MemberCommand::Promote { id } => {
                let id = parse_member_id(&id)?;
                ("promoted in", id, self.client.member_promote(&MemberPromoteRequest { id })?.header)
            }
        };
        if self.format == Format::Json {
            self.print_json(&MemberListResponse { header, members: Vec::new() });
        } else {
            println!("Member {id:16x} {verb} cluster {:16x}", header.map_or(0, |h| h.cluster_id));
        }
        Ok(())
    }

    /// etcdctl's move-leader: finds the leader among the endpoints and asks it.
    fn move_leader(&self, endpoints: &[String], target: &str) -> Outcome {
        let target = parse_member_id(target)?;
        let leader = self.per_endpoint(endpoints, Client::status).into_iter().find_map(|(endpoint, status)| {
            let s = status.ok()?;
            (s.header.as_ref()?.member_id == s.leader).then_some((endpoint, s.leader))
        });
        let Some((endpoint, leader_id)) = leader else {
            return Err(CtlError::Usage(format!("no leader endpoint given at {endpoints:?}")));
        };
        let client = Client::new(&[endpoint], Duration::from_secs(30))?;
        let resp = client.move_leader(&MoveLeaderRequest { target_id: target })?;
        if self.format == Format::Json {
            self.print_json(&resp);
        } else {
            println!("Leadership transferred from {leader_id:x} to {target:x}");
        }
        Ok(())
    }

    fn print_rows(&self, header: &[&str], rows: &[Vec<String>]) {
        if self.format != Format::Table {
            for row in rows {
                println!("{}", row.join(", "));
            }
            return;
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = || println!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        let row = |cells: Vec<&str>| {
            let cells: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!(" {c:^w$} ")).collect();
            println!("|{}|", cells.join("|"));
        };
        line();
        row(header.to_vec());
        line();
        for r in rows {
            row(r.iter().map(String::as_str).collect());
        }
        line();
    }
}

fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1000.0 {
        return format!("{n} B");
    }
    let units = ["kB", "MB", "GB", "TB"];
    let mut v = n / 1000.0;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.0} {}", units[i])
}

/// Reads a txn in etcdctl's syntax: compares, a blank line, success ops, a blank line, failure
/// ops. With `interactive`, prompts as etcdctl does.
fn read_txn(interactive: bool) -> Result<TxnRequest, String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut section = |prompt: &str| -> Result<Vec<String>, String> {
        if interactive {
            print!("{prompt}");
            let _ = std::io::stdout().flush();
        }
        let mut out = Vec::new();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if line.trim().is_empty() {
                break;
            }
            out.push(line);
        }
        Ok(out)
    };
    let compares = section("compares:\n")?;
    let success = section("\nsuccess requests (get, put, del):\n")?;
    let failure = section("\nfailure requests (get, put, del):\n")?;
    if interactive {
        println!();
    }
    Ok(TxnRequest {
        compare: compares.iter().map(|l| parse_compare(l)).collect::<Result<_, _>>()?,
        success: success.iter().map(|l| parse_op(l)).collect::<Result<_, _>>()?,
        failure: failure.iter().map(|l| parse_op(l)).collect::<Result<_, _>>()?,
    })
}

/// Splits a line into words, honouring double quotes with backslash escapes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut started) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                started = false;
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `mod("key") > "5"`, `value("k") = "v"`, `ver("k") < "2"`, `create("k") != "0"`, `lease("k") = "0"`.
fn parse_compare(line: &str) -> Result<Compare, String> {
    let bad = || format!("malformed comparison: {line}");
    let open = line.find('(').ok_or_else(bad)?;
    let close = line.find(')').ok_or_else(bad)?;
    let target = line[..open].trim();
    let key = words(&line[open + 1..close]).pop().ok_or_else(bad)?;
    let rest = words(&line[close + 1..]);
    let [op, value] = rest.as_slice() else { return Err(bad()) };
    let result = match op.as_str() {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(bad()),
    };
    let int = || value.parse::<i64>().map_err(|_| bad());
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(int()?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(int()?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(int()?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.clone().into_bytes())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(parse_hex_or_dec(value)?)),
        _ => return Err(bad()),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        target_union: Some(union),
        range_end: Vec::new(),
    })
}

/// `put k v`, `get k [end] [--prefix]`, `del k [end] [--prefix]`.
fn parse_op(line: &str) -> Result<RequestOp, String> {
    let w = words(line);
    let prefix = w.iter().any(|a| a == "--prefix");
    let args: Vec<&String> = w.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
    let bad = || format!("malformed request: {line}");
    let key = args.first().ok_or_else(bad)?;
    let (key, range_end) = key_range(key, args.get(1).map(|s| s.to_string()), prefix, false);
    let request = match w.first().map(String::as_str) {
        Some("put") => Request::RequestPut(PutRequest {
            key,
            value: args.get(1).ok_or_else(bad)?.as_bytes().to_vec(),
            ..Default::default()
        }),
        Some("get") => Request::RequestRange(RangeRequest { key, range_end, ..Default::default() }),
        Some("del") | Some("delete") => {
            Request::RequestDeleteRange(DeleteRangeRequest { key, range_end, ..Default::default() })
        }
        _ => return Err(bad()),
    };
    Ok(RequestOp { request: Some(request) })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match Client::new(&cli.endpoints, cli.command_timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctl = Ctl { client, format: cli.write_out };
    let outcome = match cli.command {
        Command::Put { key, value, prev_kv, ignore_value, lease } => {
            let value = if ignore_value { Vec::new() } else { value.into_bytes() };
            ctl.put(PutRequest { key: key.into_bytes(), value, lease, prev_kv, ignore_value, ..Default::default() })
        }
        Command::Get {
            key,
            range_end,
            prefix,
            from_key,
            rev,
            limit,
            sort_by,
            order,
            keys_only,
            count_only,
            print_value_only,
            consistency,
        } => {
            let (key, range_end) = key_range(&key, range_end, prefix, from_key);
            let sort_target = match sort_by {
                Some(SortBy::Key) | None => SortTarget::Key,
                Some(SortBy::Version) => SortTarget::Version,
                Some(SortBy::Create) => SortTarget::Create,
                Some(SortBy::Modify) => SortTarget::Mod,
                Some(SortBy::Value) => SortTarget::Value,
            };
            let sort_order = match (order, sort_by) {
                (Some(Order::Descend), _) => SortOrder::Descend,
                (Some(Order::Ascend), _) | (None, Some(_)) => SortOrder::Ascend,
                (None, None) => SortOrder::None,
            };
            let req = RangeRequest {
                key,
                range_end,
                limit,
                revision: rev,
                sort_order: sort_order as i32,
                sort_target: sort_target as i32,
                serializable: consistency == "s",
                keys_only,
                count_only,
                ..Default::default()
            };
            ctl.get(req, print_value_only)
        }
        Command::Del { key, range_end, prefix, from_key, prev_kv } => {
            let (key, range_end) = key_range(&key, range_end, prefix, from_key);
            ctl.del(DeleteRangeRequest { key, range_end, prev_kv })
        }
        Command::Txn { interactive } => ctl.txn(interactive),
        Command::Watch { key, range_end, prefix, rev, prev_kv } => {
            let (key, range_end) = key_range(&key, range_end, prefix, false);
            ctl.watch(WatchCreateRequest { key, range_end, start_revision: rev, prev_kv, ..Default::default() })
        }
        Command::Compaction { revision, physical } => ctl.compaction(revision, physical),
        Command::Endpoint { command: EndpointCommand::Status } => ctl.endpoint_status(&cli.endpoints),
        Command::Endpoint { command: EndpointCommand::Health } => ctl.endpoint_health(&cli.endpoints),
        Command::Lease { command } => ctl.lease(command),
        Command::Bench { conns, clients, total, rate, json, target_leader, workload } => {
            let load = bench::Load {
                endpoints: cli.endpoints.clone(),
                conns,
                clients,
                total,
                rate,
                timeout: cli.command_timeout,
                target_leader,
                progress: !json,
            };
            let workload = match workload {
                BenchCommand::Put { key_size, val_size, sequential_keys, key_space_size } => {
                    bench::Workload::Put { key_size, val_size, sequential: sequential_keys, key_space: key_space_size }
                }
                BenchCommand::Range { key, end, consistency } => bench::Workload::Range {
                    key: key.into_bytes(),
                    range_end: end.map(String::into_bytes).unwrap_or_default(),
                    serializable: consistency == "s",
                },
                BenchCommand::TxnPut { key_size, val_size, key_space_size, txn_ops } => {
                    bench::Workload::TxnPut { key_size, val_size, key_space: key_space_size, ops: txn_ops }
                }
                BenchCommand::LeaseKeepalive => bench::Workload::LeaseKeepalive,
                BenchCommand::WatchLatency { watchers, key, val_size } => {
                    bench::Workload::WatchLatency { watchers, key: key.into_bytes(), val_size }
                }
            };
            bench::run(&load, &workload).map(|report| if json { report.print_json() } else { report.print() })
        }
        Command::Member { command } => ctl.member(command),
        Command::MoveLeader { target } => ctl.move_leader(&cli.endpoints, &target),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Usage problems found here are said plainly, as etcdctl says them.
        Err(CtlError::Usage(msg)) => {
            eprintln!("Error: {msg}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
