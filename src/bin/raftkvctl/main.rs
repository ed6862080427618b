//! `raftkvctl`: etcdctl's verbs and output for raftkv (and etcd) members, over gRPC (or the
//! JSON gateway with `--gateway`) with the blocking [`raftkv::Client`]. Errors print as `Error: <message>` and exit 1, as
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

mod auth;
mod bench;
mod check;
mod cli;
mod concurrency;
mod diagnose;
mod endpoint;
mod kv;
mod lease;
mod member;
mod mirror;
mod snapshot;
mod txn_parse;

use cli::*;
use txn_parse::read_txn;

#[derive(Clone)]
struct Ctl {
    client: Client,
    format: Format,
    gateway: bool,
    hex: bool,
    dial_timeout: Duration,
}

type Outcome = Result<(), CtlError>;

/// etcdctl's `ExitBadArgs`.
const EXIT_BAD_ARGS: i32 = 128;

/// etcdctl's `ExitWithError(ExitBadArgs, ...)`.
fn bad_args(msg: &str) -> ! {
    eprintln!("Error: {msg}");
    std::process::exit(EXIT_BAD_ARGS)
}

impl Ctl {
    fn print_json(&self, resp: &impl ToJson) {
        println!("{}", resp.to_etcdctl_json());
    }
}

/// The TLS flags (`--cacert --cert --key --insecure-skip-tls-verify`), set once in `main`
/// when any is given. Global flags of the process, as etcdctl's are: every client a verb dials
/// (per endpoint, per bench connection) uses them, so they are kept here rather than passed
/// through each verb.
static TLS: std::sync::OnceLock<raftkv::tls::ClientTlsInfo> = std::sync::OnceLock::new();
/// `--user` and `--password` as etcdctl reads them: every client a verb dials authenticates.
static CREDENTIALS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
/// `--keepalive-time` and `--keepalive-timeout`, for every gRPC connection the command makes.
static KEEPALIVE: std::sync::OnceLock<(Duration, Duration)> = std::sync::OnceLock::new();

/// A client over gRPC (connections dialed within `dial_timeout`), or the gateway when asked.
fn dial(endpoints: &[String], timeout: Duration, dial_timeout: Duration, gateway: bool) -> Result<Client, CtlError> {
    let client = if gateway {
        Client::gateway(endpoints, timeout)?
    } else {
        let client = Client::with_dial_timeout(endpoints, timeout, dial_timeout)?;
        match KEEPALIVE.get() {
            Some((time, timeout)) => client.with_keepalive(*time, *timeout),
            None => client,
        }
    };
    let client = match TLS.get() {
        Some(tls) => client.with_tls(tls)?,
        None => client,
    };
    match CREDENTIALS.get() {
        Some((user, password)) => client.with_credentials(user, password),
        None => Ok(client),
    }
}

/// etcdctl's `authCfgFromCmd`: `--user name:password`, or `--user name --password p`. A user
/// without a password makes no credentials: etcdctl asks a terminal for one (raftkvctl does
/// not prompt, and prints the prompt as etcdctl does when stdin is no terminal), and clientv3
/// authenticates only with both.
fn credentials(user: Option<&str>, password: Option<&str>) -> Option<(String, String)> {
    let (name, password) = match password.filter(|p| !p.is_empty()) {
        Some(password) => (user?, password),
        None => user?.split_once(':').or_else(|| {
            println!("Password: ");
            None
        })?,
    };
    (!name.is_empty() && !password.is_empty()).then(|| (name.to_string(), password.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = KEEPALIVE.set((cli.keepalive_time, cli.keepalive_timeout));
    if cli.cacert.is_some() || cli.cert.is_some() || cli.key.is_some() || cli.insecure_skip_tls_verify {
        let _ = TLS.set(raftkv::tls::ClientTlsInfo {
            ca_file: cli.cacert.clone(),
            cert_file: cli.cert.clone(),
            key_file: cli.key.clone(),
            insecure_skip_verify: cli.insecure_skip_tls_verify,
        });
    }
    if let Some(credentials) = credentials(cli.user.as_deref(), cli.password.as_deref()) {
        let _ = CREDENTIALS.set(credentials);
    }
    let client = match dial(&cli.endpoints, cli.command_timeout, cli.dial_timeout, cli.gateway) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            // etcdctl's `ExitBadConnection` when the server refused to authenticate it.
            let refused = matches!(e, CtlError::Server { .. });
            return if refused { ExitCode::from(2) } else { ExitCode::FAILURE };
        }
    };
    let ctl = Ctl { client, format: cli.write_out, gateway: cli.gateway, hex: cli.hex, dial_timeout: cli.dial_timeout };
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
        Command::Auth { command } => ctl.auth(command),
        Command::User { command } => ctl.user(command),
        Command::Role { command } => ctl.role(command),
        Command::Alarm { command } => ctl.alarm(command),
        Command::Defrag => ctl.defrag(&cli.endpoints),
        Command::Endpoint { command: EndpointCommand::Status } => ctl.endpoint_status(&cli.endpoints),
        Command::Endpoint { command: EndpointCommand::Health } => ctl.endpoint_health(&cli.endpoints),
        Command::Endpoint { command: EndpointCommand::Hashkv { rev } } => {
            ctl.endpoint_hashkv(&cli.endpoints, rev, cli.command_timeout)
        }
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
                gateway: cli.gateway,
            };
            let workload = match workload {
                BenchCommand::Put { key_size, val_size, sequential_keys, key_space_size } => bench::Workload::Put {
                    key_size,
                    val_size,
                    sequential: sequential_keys,
                    key_space: key_space_size,
                    prefix: Vec::new(),
                },
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
        Command::Snapshot { command } => ctl.snapshot(&cli.endpoints, command),
        Command::Check { command: CheckCommand::Perf { load, prefix, auto_compact, auto_defrag } } => ctl
            .check_perf(&check::Check { endpoints: &cli.endpoints, prefix: &prefix, auto_compact, auto_defrag }, &load),
        Command::Check { command: CheckCommand::Datascale { load, prefix, auto_compact, auto_defrag } } => {
            let check = check::Check { endpoints: &cli.endpoints, prefix: &prefix, auto_compact, auto_defrag };
            ctl.check_datascale(&check, &load)
        }
        Command::MakeMirror { destination, prefix, dest_prefix, no_dest_prefix } => {
            ctl.make_mirror(&destination, &prefix, dest_prefix.as_deref(), no_dest_prefix)
        }
        Command::Diagnose { interval } => diagnose::diagnose(&cli.endpoints, interval),
        Command::Lock { ttl, args } => ctl.lock(&args, ttl),
        Command::Elect { listen, args } => ctl.elect(&args, listen),
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
