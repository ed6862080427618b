//! raftkvctl's command line: etcdctl's global flags, verbs and their flags (clap).

use std::path::PathBuf;

use super::*;

#[derive(Parser)]
#[command(name = "raftkvctl", version, about = "A command line client for raftkv (etcdctl's verbs)")]
pub(crate) struct Cli {
    /// Endpoints (comma-separated), spoken to over gRPC (or the gateway with --gateway).
    #[arg(long, global = true, env = "RAFTKVCTL_ENDPOINTS", default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pub(crate) endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", global = true, default_value = "simple")]
    pub(crate) write_out: Format,
    /// Timeout of each request.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub(crate) command_timeout: Duration,
    /// Dial timeout for client connections.
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub(crate) dial_timeout: Duration,
    /// Keepalive time for client connections: a ping after this long without a frame.
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub(crate) keepalive_time: Duration,
    /// Keepalive timeout for client connections: closed when a ping is unanswered this long.
    #[arg(long, global = true, default_value = "6s", value_parser = parse_duration)]
    pub(crate) keepalive_timeout: Duration,
    /// Print byte strings as hex encoded strings.
    #[arg(long, global = true)]
    pub(crate) hex: bool,
    /// Speak the JSON gateway (HTTP/1.1) instead of gRPC.
    #[arg(long, global = true, env = "RAFTKVCTL_GATEWAY")]
    pub(crate) gateway: bool,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long = "cacert", id = "tls_cacert", global = true, env = "ETCDCTL_CACERT")]
    pub(crate) cacert: Option<PathBuf>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long = "cert", id = "tls_cert", global = true, env = "ETCDCTL_CERT")]
    pub(crate) cert: Option<PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long = "key", id = "tls_key", global = true, env = "ETCDCTL_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// Skip server certificate verification (CAUTION: this option should be enabled only for
    /// testing purposes).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY")]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Username[:password] for authentication (prompt if password is not supplied).
    #[arg(long = "user", id = "auth_user", global = true, env = "ETCDCTL_USER")]
    pub(crate) user: Option<String>,
    /// Password for authentication (if this option is used, --user option shouldn't include
    /// password).
    #[arg(long = "password", id = "auth_password", global = true, env = "ETCDCTL_PASSWORD")]
    pub(crate) password: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Simple,
    Json,
    Table,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(crate) enum SortBy {
    Key,
    Version,
    Create,
    Modify,
    Value,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(crate) enum Order {
    Ascend,
    Descend,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION (any case, as etcdctl).
        #[arg(long, ignore_case = true)]
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
    /// Enable or disable authentication.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// User related commands.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Role related commands.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Alarm related commands.
    Alarm {
        #[command(subcommand)]
        command: AlarmCommand,
    },
    /// Defragments the storage of the etcd members with given endpoints.
    Defrag,
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
    /// Reads each endpoint's metrics twice, --interval apart, and says why it is slow (raftkv's
    /// own; etcdctl has no such command). Exits 1 when it found something.
    Diagnose {
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Commands for checking properties of the etcd cluster.
    Check {
        #[command(subcommand)]
        command: CheckCommand,
    },
    /// Makes a mirror at the destination etcd cluster.
    MakeMirror {
        destination: String,
        /// Key-value prefix to mirror.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Destination prefix to mirror a prefix to a different prefix in the destination cluster.
        #[arg(long)]
        dest_prefix: Option<String>,
        /// Mirror key-values to the root of the destination cluster.
        #[arg(long)]
        no_dest_prefix: bool,
    },
    /// Acquires a named lock (etcdctl's `lock <lockname> [exec-command arg1 arg2 ...]`).
    Lock {
        /// Timeout for session.
        #[arg(long, default_value_t = 10)]
        ttl: i64,
        /// The lock's name, then the command to run while holding it (after `--` if it has
        /// flags of its own, as with etcdctl).
        args: Vec<String>,
    },
    /// Observes and participates in leader election (`elect <election-name> [proposal]`).
    Elect {
        /// Observation mode.
        #[arg(short = 'l', long)]
        listen: bool,
        args: Vec<String>,
    },
    /// Manages etcd node snapshots.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum CheckCommand {
    /// Check the performance of the etcd cluster.
    Perf {
        /// The performance check's workload model. Accepted workloads: s(small), m(medium),
        /// l(large), xl(xLarge).
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the performance check's keys.
        #[arg(long, default_value = "/etcdctl-check-perf/")]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long)]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long)]
        auto_defrag: bool,
    },
    /// Check the memory usage of holding data for different workloads on a given server endpoint.
    Datascale {
        /// The datascale check's workload model. Accepted workloads: s(small), m(medium),
        /// l(large), xl(xLarge).
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the datascale check's keys.
        #[arg(long, default_value = "/etcdctl-check-datascale/")]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long)]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long)]
        auto_defrag: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file.
    Save { filename: PathBuf },
    /// Gets backend snapshot status of a given file (hash, revision, total keys, total size).
    Status { filename: PathBuf },
    /// Restores an etcd member snapshot (raftkv's or etcd's) to a new data directory.
    Restore {
        filename: PathBuf,
        /// Path to the data directory (default: <name>.raftkv).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
        initial_advertise_peer_urls: Vec<String>,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory).
        #[arg(long)]
        skip_hash_check: bool,
        /// How much to increase the latest revision after restore.
        #[arg(long, default_value_t = 0)]
        bump_revision: u64,
        /// Mark the latest revision after restore as the point of scheduled compaction
        /// (required if --bump-revision > 0, disallowed otherwise).
        #[arg(long)]
        mark_compacted: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum AlarmCommand {
    /// Lists all alarms.
    List,
    /// Disarms all alarms.
    Disarm,
}

#[derive(Subcommand)]
pub(crate) enum EndpointCommand {
    /// Prints out the status of the endpoints.
    Status,
    /// Checks the healthiness of the endpoints.
    Health,
    /// Prints the KV history hash for each endpoint in --endpoints.
    Hashkv {
        /// Maximum revision to hash (default: all revisions).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
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
        /// The key watched and put (`--key` is the TLS key file, as in etcd's benchmark).
        #[arg(long = "watch-key", default_value = "watchkey")]
        key: String,
        #[arg(long, default_value_t = 32)]
        val_size: usize,
    },
}

#[derive(Subcommand)]
pub(crate) enum AuthCommand {
    /// Enables authentication.
    Enable,
    /// Disables authentication.
    Disable,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Adds a new user (`name[:password]`; without one, the password is read from stdin).
    Add {
        user: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        interactive: bool,
        /// Supply password from the command line flag.
        #[arg(long)]
        new_user_password: Option<String>,
        /// Create a user without password (CN based auth only).
        #[arg(long)]
        no_password: bool,
    },
    /// Deletes a user.
    Delete { name: String },
    /// Gets detailed information of a user.
    Get {
        name: String,
        /// Show permissions of roles granted to the user.
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users.
    List,
    /// Changes the password of a user (read from stdin).
    Passwd {
        name: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user.
    GrantRole { user: String, role: String },
    /// Revokes a role from a user.
    RevokeRole { user: String, role: String },
}

#[derive(Subcommand)]
pub(crate) enum RoleCommand {
    /// Adds a new role.
    Add { name: String },
    /// Deletes a role.
    Delete { name: String },
    /// Gets detailed information of a role.
    Get { name: String },
    /// Lists all roles.
    List,
    /// Grants a key to a role (`read`, `write` or `readwrite`).
    GrantPermission {
        role: String,
        perm_type: String,
        key: String,
        range_end: Option<String>,
        /// Grant a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Grant a permission of keys that are greater than or equal to the given key.
        #[arg(long)]
        from_key: bool,
    },
    /// Revokes a key from a role.
    RevokePermission {
        role: String,
        key: String,
        range_end: Option<String>,
        /// Revoke a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Revoke a permission of keys that are greater than or equal to the given key.
        #[arg(long)]
        from_key: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum LeaseCommand {
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
pub(crate) enum MemberCommand {
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
pub(crate) fn parse_member_id(s: &str) -> Result<u64, CtlError> {
    u64::from_str_radix(s, 16).map_err(|e| CtlError::Usage(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
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

pub(crate) fn parse_hex_or_dec(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    i64::from_str_radix(s, 16).or_else(|_| s.parse()).map_err(|_| format!("bad lease ID {s:?}"))
}

/// etcdctl's key range arguments → (key, range_end).
pub(crate) fn key_range(key: &str, range_end: Option<String>, prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
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
