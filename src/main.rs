//! `raftkv`: one member as a process, configured with etcd's flag names (or `RAFTKV_*`
//! environment variables, as etcd reads `ETCD_*`).
//!
//! The process main thread runs the member's loop ([`raftkv::embed::Member::run`]). A
//! `raftkv-signals` thread turns SIGINT/SIGTERM into [`raftkv::embed::Member::stop`]: the client
//! listeners stop, then the member, every thread is joined, and the process exits 0. A start-up problem (port in use, unusable data dir, bad
//! flag) is one error line and exit code 1.
//!
//! Under systemd (`Type=notify`, `contrib/raftkv.service`) it says `READY=1` once the member
//! has a leader and so serves requests (etcd notifies once its server is ready), from a
//! `raftkv-notify` thread, and `STOPPING=1` when a signal stops it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use raftkv::compactor::AutoCompaction;
use raftkv::config::ClusterState;
use raftkv::Config;

#[derive(Parser, Debug)]
#[command(name = "raftkv", version, about = "An etcd-compatible, Raft-replicated key-value store")]
struct Args {
    /// Human-readable name for this member.
    #[arg(long, env = "RAFTKV_NAME", default_value = "default")]
    name: String,
    /// Path to the data directory [default: <name>.raftkv].
    #[arg(long, env = "RAFTKV_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (comma-separated; https ones serve TLS).
    #[arg(long, env = "RAFTKV_LISTEN_CLIENT_URLS", default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    listen_client_urls: Vec<String>,
    /// URLs to listen on for /metrics and the health probes only (comma-separated; http only).
    #[arg(long, env = "RAFTKV_LISTEN_METRICS_URLS", value_delimiter = ',')]
    listen_metrics_urls: Vec<String>,
    /// Client URLs advertised to the rest of the cluster [default: the listen URLs].
    #[arg(long, env = "RAFTKV_ADVERTISE_CLIENT_URLS", value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    /// URL to listen on for peer traffic (the first is used).
    #[arg(long, env = "RAFTKV_LISTEN_PEER_URLS", default_value = "http://127.0.0.1:2380", value_delimiter = ',')]
    listen_peer_urls: Vec<String>,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "RAFTKV_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration for bootstrapping (name=peer-url,...).
    #[arg(long, env = "RAFTKV_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "RAFTKV_INITIAL_CLUSTER_STATE", default_value = "new")]
    initial_cluster_state: String,
    /// Initial cluster token, which makes cluster and member ids unique.
    #[arg(long, env = "RAFTKV_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Number of committed transactions between two snapshots.
    #[arg(long, env = "RAFTKV_SNAPSHOT_COUNT", default_value_t = 10_000)]
    snapshot_count: u64,
    /// Entries kept behind a snapshot for slow followers.
    #[arg(long, env = "RAFTKV_SNAPSHOT_CATCHUP_ENTRIES", default_value_t = 5_000)]
    snapshot_catchup_entries: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "RAFTKV_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "RAFTKV_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "RAFTKV_MAX_REQUEST_BYTES", default_value_t = raftkv::config::DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "RAFTKV_MAX_TXN_OPS", default_value_t = 128)]
    max_txn_ops: usize,
    /// Interpret --auto-compaction-retention as a duration ('periodic') or a number of
    /// revisions ('revision').
    #[arg(long, env = "RAFTKV_AUTO_COMPACTION_MODE", default_value = "periodic")]
    auto_compaction_mode: String,
    /// Auto compaction retention: 0 keeps all history; '1h', '30m', or hours for periodic.
    #[arg(long, env = "RAFTKV_AUTO_COMPACTION_RETENTION", default_value = "0")]
    auto_compaction_retention: String,
    /// Rows looked at per batch when removing compacted revisions.
    #[arg(long, env = "RAFTKV_EXPERIMENTAL_COMPACTION_BATCH_LIMIT", default_value_t = 1000)]
    experimental_compaction_batch_limit: usize,
    /// Pause between two batches removing compacted revisions.
    #[arg(long, env = "RAFTKV_EXPERIMENTAL_COMPACTION_SLEEP_INTERVAL", default_value = "10ms", value_parser = duration)]
    experimental_compaction_sleep_interval: Duration,
    /// Minimum interval a client should wait before pinging the server (gRPC keepalive).
    #[arg(long, env = "RAFTKV_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = duration)]
    grpc_keepalive_min_time: Duration,
    /// Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).
    #[arg(long, env = "RAFTKV_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = duration)]
    grpc_keepalive_interval: Duration,
    /// Additional duration of wait before closing a non-responsive connection (0 to disable).
    #[arg(long, env = "RAFTKV_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = duration)]
    grpc_keepalive_timeout: Duration,
    /// Duration of periodic watch progress notifications.
    #[arg(long, env = "RAFTKV_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = duration)]
    experimental_watch_progress_notify_interval: Duration,
    /// Raise alarms when backend size exceeds the given quota. 0 means use the default quota.
    #[arg(long, env = "RAFTKV_QUOTA_BACKEND_BYTES", default_value_t = 0, allow_negative_numbers = true)]
    quota_backend_bytes: i64,
    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(
        long,
        env = "RAFTKV_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        // Go's boolean flag: bare for true, or `=true`/`=false`.
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true"
    )]
    experimental_initial_corrupt_check: bool,
    /// Duration of time between cluster corruption check passes (0s: never).
    #[arg(long, env = "RAFTKV_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = duration)]
    experimental_corrupt_check_time: Duration,
    /// bcrypt algorithm cost / strength for hashing auth passwords. Valid values are between 4
    /// and 31.
    #[arg(long, env = "RAFTKV_BCRYPT_COST", default_value_t = raftkv::auth::BCRYPT_COST_DEFAULT)]
    bcrypt_cost: u32,
    /// Specify auth token specific options.
    #[arg(long, env = "RAFTKV_AUTH_TOKEN", default_value = "simple")]
    auth_token: String,
    /// The lifetime in seconds of the auth token.
    #[arg(long, env = "RAFTKV_AUTH_TOKEN_TTL", default_value_t = 300)]
    auth_token_ttl: u64,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "RAFTKV_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "RAFTKV_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, env = "RAFTKV_CLIENT_CERT_AUTH", action = clap::ArgAction::Set, num_args = 0..=1,
        require_equals = true, default_value_t = false, default_missing_value = "true")]
    client_cert_auth: bool,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "RAFTKV_TRUSTED_CA_FILE")]
    trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long, env = "RAFTKV_AUTO_TLS", action = clap::ArgAction::Set, num_args = 0..=1,
        require_equals = true, default_value_t = false, default_missing_value = "true")]
    auto_tls: bool,
    /// The validity period of the client and peer certificates that are automatically
    /// generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year.
    #[arg(long, env = "RAFTKV_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    self_signed_cert_validity: u32,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "RAFTKV_PEER_CERT_FILE")]
    peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "RAFTKV_PEER_KEY_FILE")]
    peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, env = "RAFTKV_PEER_CLIENT_CERT_AUTH", action = clap::ArgAction::Set, num_args = 0..=1,
        require_equals = true, default_value_t = false, default_missing_value = "true")]
    peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "RAFTKV_PEER_TRUSTED_CA_FILE")]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "RAFTKV_PEER_AUTO_TLS", action = clap::ArgAction::Set, num_args = 0..=1,
        require_equals = true, default_value_t = false, default_missing_value = "true")]
    peer_auto_tls: bool,
    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long, env = "RAFTKV_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", action = clap::ArgAction::Set,
        num_args = 0..=1, require_equals = true, default_value_t = false, default_missing_value = "true")]
    experimental_peer_skip_client_san_verification: bool,
    /// Allowed CN for inter peer authentication.
    #[arg(long, env = "RAFTKV_PEER_CERT_ALLOWED_CN")]
    peer_cert_allowed_cn: Option<String>,
    /// Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.
    #[arg(long, env = "RAFTKV_TLS_MIN_VERSION", default_value = "TLS1.2")]
    tls_min_version: String,
    /// Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to
    /// the newest).
    #[arg(long, env = "RAFTKV_TLS_MAX_VERSION", default_value = "")]
    tls_max_version: String,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (empty: the TLS library's).
    #[arg(long, env = "RAFTKV_CIPHER_SUITES", value_delimiter = ',')]
    cipher_suites: Vec<String>,
    /// Log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "RAFTKV_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// 'zap' or 'capnslog', etcd 3.4's two loggers: zap's lines are JSON unless --log-format
    /// says otherwise.
    #[arg(long, env = "RAFTKV_LOGGER", default_value = "capnslog")]
    logger: String,
    /// 'json' (etcd's zap lines) or 'console' (readable text) [default: json with
    /// --logger=zap, else console].
    #[arg(long, env = "RAFTKV_LOG_FORMAT")]
    log_format: Option<String>,
    /// Where to write logs: 'default' or 'stderr', 'stdout', or file paths (comma-separated;
    /// every one gets every line).
    #[arg(long, env = "RAFTKV_LOG_OUTPUTS", default_value = "default", value_delimiter = ',')]
    log_outputs: Vec<String>,
    /// Time duration after which a warning is generated if request takes more time (also
    /// --warning-apply-duration, the name etcd 3.6 gives it).
    #[arg(long, alias = "warning-apply-duration", env = "RAFTKV_EXPERIMENTAL_WARNING_APPLY_DURATION",
        default_value = "100ms", value_parser = duration)]
    experimental_warning_apply_duration: Duration,
    /// Path to the server configuration file (etcd's YAML). Note that if a configuration file is
    /// provided, other command line flags and environment variables will be ignored.
    #[arg(long, env = "RAFTKV_CONFIG_FILE")]
    config_file: Option<PathBuf>,
}

/// A Go duration as etcd's flags take them (`5s`, `1m30s`, `100ms`).
fn duration(s: &str) -> Result<Duration, String> {
    raftkv::compactor::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration such as 5s or 10m"))
}

/// `RAFTKV_DEBUG_CONTROL=1` turns on the test fault control endpoints
/// ([`Config::debug_control`]). An environment variable rather than a flag, as
/// `RAFTKV_FAILPOINTS` is: only tests set it. A value other than 1 or 0 fails the start, so a
/// test never runs believing the endpoints there when they are not.
fn debug_control() -> Result<bool, String> {
    match std::env::var("RAFTKV_DEBUG_CONTROL").as_deref() {
        Err(_) | Ok("0") => Ok(false),
        Ok("1") => Ok(true),
        Ok(other) => Err(format!("RAFTKV_DEBUG_CONTROL={other:?}: want 1 (on) or 0")),
    }
}

impl Args {
    /// The client port's TLS, with the settings etcd shares between client and peer ports.
    fn client_tls(&self) -> Result<raftkv::tls::TlsInfo, String> {
        use raftkv::tls::{TlsInfo, TlsVersion};
        Ok(TlsInfo {
            cert_file: self.cert_file.clone().unwrap_or_default(),
            key_file: self.key_file.clone().unwrap_or_default(),
            trusted_ca_file: self.trusted_ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
            client_cert_auth: self.client_cert_auth,
            auto_tls: self.auto_tls,
            self_signed_cert_validity_years: self.self_signed_cert_validity,
            min_version: TlsVersion::parse(&self.tls_min_version)?.unwrap_or(TlsVersion::Tls12),
            max_version: TlsVersion::parse(&self.tls_max_version)?,
            cipher_suites: self.cipher_suites.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..TlsInfo::default()
        })
    }

    /// The peer port's TLS: the `--peer-*` files with the shared settings.
    fn peer_tls(&self) -> Result<raftkv::tls::TlsInfo, String> {
        let shared = self.client_tls()?;
        Ok(raftkv::tls::TlsInfo {
            cert_file: self.peer_cert_file.clone().unwrap_or_default(),
            key_file: self.peer_key_file.clone().unwrap_or_default(),
            trusted_ca_file: self.peer_trusted_ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
            client_cert_auth: self.peer_client_cert_auth,
            auto_tls: self.peer_auto_tls,
            allowed_cn: self.peer_cert_allowed_cn.clone().filter(|cn| !cn.is_empty()),
            skip_client_san_verify: self.experimental_peer_skip_client_san_verification,
            ..shared
        })
    }

    fn config(&self) -> Result<Config, String> {
        let initial_cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => return Err(format!("--initial-cluster-state {other:?}: must be 'new' or 'existing'")),
        };
        let mut cfg = Config::new(
            self.name.clone(),
            self.data_dir.clone().unwrap_or_else(|| format!("{}.raftkv", self.name).into()),
        );
        cfg.initial_advertise_peer_urls = self.initial_advertise_peer_urls.clone();
        cfg.advertise_client_urls = if self.advertise_client_urls.is_empty() {
            self.listen_client_urls.clone()
        } else {
            self.advertise_client_urls.clone()
        };
        cfg.initial_cluster_token = self.initial_cluster_token.clone();
        cfg.initial_cluster = self.initial_cluster.clone().unwrap_or_default();
        cfg.initial_cluster_state = initial_cluster_state;
        cfg.listen_peer_urls = self.listen_peer_urls.clone();
        cfg.listen_client_urls = self.listen_client_urls.clone();
        cfg.listen_metrics_urls = self.listen_metrics_urls.clone();
        cfg.auto_compaction = AutoCompaction::parse(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        cfg.snapshot_count = self.snapshot_count;
        cfg.compaction_batch_limit = self.experimental_compaction_batch_limit;
        cfg.compaction_sleep_interval = self.experimental_compaction_sleep_interval;
        cfg.snapshot_catchup_entries = self.snapshot_catchup_entries;
        cfg.heartbeat_interval_ms = self.heartbeat_interval;
        cfg.election_timeout_ms = self.election_timeout;
        cfg.max_request_bytes = self.max_request_bytes;
        cfg.max_txn_ops = self.max_txn_ops;
        cfg.grpc_keepalive_min_time = self.grpc_keepalive_min_time;
        cfg.grpc_keepalive_interval = self.grpc_keepalive_interval;
        cfg.grpc_keepalive_timeout = self.grpc_keepalive_timeout;
        cfg.watch_progress_notify_interval = self.experimental_watch_progress_notify_interval;
        cfg.bcrypt_cost = self.bcrypt_cost;
        cfg.warning_apply_duration = self.experimental_warning_apply_duration;
        cfg.auth_token = self.auth_token.clone();
        cfg.auth_token_ttl = Duration::from_secs(self.auth_token_ttl);
        cfg.quota_backend_bytes = self.quota_backend_bytes;
        cfg.initial_corrupt_check = self.experimental_initial_corrupt_check;
        cfg.corrupt_check_time = self.experimental_corrupt_check_time;
        cfg.debug_control = debug_control()?;
        cfg.client_tls = self.client_tls()?;
        cfg.peer_tls = self.peer_tls()?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

/// Raises the soft open-file limit to the hard one, as Go's runtime does at start for every
/// Go program since 1.19 (so for etcd 3.4.23): each client connection is a descriptor, and the
/// usual soft limit of 1,024 would refuse clients long before [`raftkv::api::net::CONNECTIONS_MAX`].
/// Past the limit, accepting fails, is logged and retried, and the member keeps serving.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process, with a valid struct.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
            && limit.rlim_cur < limit.rlim_max
            && libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: limit.rlim_max, ..limit }) == 0
    };
    if raised {
        log::debug!("raftkv: open-file limit raised from {} to {}", limit.rlim_cur, limit.rlim_max);
    }
}

/// Tells systemd (`$NOTIFY_SOCKET`, a unix datagram socket; `@` for the abstract namespace)
/// a state such as `READY=1`: sd_notify(3)'s protocol, one datagram, no library needed. Nothing
/// happens when not started by systemd; a failed send is logged, never fatal.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(&path)?,
        };
        socket.send_to_addr(state.as_bytes(), &addr).map(|_| ())
    })();
    if let Err(e) = sent {
        log::warn!("raftkv: could not notify systemd of {state}: {e}");
    }
}

/// `READY=1` for systemd once the member has a leader (at most one `raftkv-notify` thread,
/// and only under systemd). Polled: readiness comes once, and nothing else waits for it.
fn notify_ready(member: &raftkv::embed::Member) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let member = member.clone();
    let spawned = raftkv::thread::spawn_named("raftkv-notify", move || {
        while member.node().leader_id() == 0 {
            if member.node().is_stopped() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        notify_systemd("READY=1");
    });
    if let Err(e) = spawned {
        log::warn!("raftkv: no systemd readiness notice: {e}");
    }
}

fn run(args: Args) -> Result<(), String> {
    raise_open_file_limit();
    let cfg = args.config()?;
    let data_dir = cfg.data_dir.clone();
    let member = raftkv::embed::Member::open(cfg).map_err(|e| e.to_string())?;
    log::info!("raftkv: member {:x} ({}) data in {}", member.node().member_id(), args.name, data_dir.display());

    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("install signal handlers: {e}"))?;
    let signal_handle = signals.handle();
    let stopper = member.clone();
    let signal_thread = raftkv::thread::spawn_named("raftkv-signals", move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("raftkv: received signal {signal}, stopping");
            notify_systemd("STOPPING=1");
            let _ = stopper.stop();
        }
    })
    .map_err(|e| e.to_string())?;

    notify_ready(&member);
    // The run loop, on the process main thread, until a signal or a fatal error stops it.
    let outcome = member.run();
    signal_handle.close();
    let _ = signal_thread.join();
    outcome.map_err(|e| e.to_string())?;
    log::info!("raftkv: stopped cleanly");
    Ok(())
}

/// A line for the log, kept until the logger exists: reading the environment and the config
/// file comes before it, since they say how to log.
type Note = (log::Level, String);

/// etcd reads every flag from `ETCD_<FLAG>` too (`pkg/flags.SetFlagsFromEnv`), so existing
/// unit files and manifests work unchanged: each one that is set, not empty, and not already
/// given as `RAFTKV_<FLAG>` is adopted as that. Other `ETCD_` variables are reported, as etcd
/// does. A flag on the command line still wins over either (etcd refuses the conflict).
fn adopt_etcd_env(cmd: &clap::Command, notes: &mut Vec<Note>) {
    let mut known = std::collections::HashSet::new();
    for arg in cmd.get_arguments() {
        let Some(ours) = arg.get_env().and_then(|e| e.to_str()) else { continue };
        let Some(flag) = ours.strip_prefix("RAFTKV_") else { continue };
        let etcd = format!("ETCD_{flag}");
        match std::env::var_os(&etcd) {
            Some(value) if !value.is_empty() && std::env::var_os(ours).is_none() => {
                notes.push((log::Level::Info, format!("recognized and used environment variable {etcd}={value:?}")));
                // SAFETY of set_var: main's first step, before any other thread exists.
                std::env::set_var(ours, value);
            }
            _ => {}
        }
        known.insert(etcd);
    }
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("ETCD_") && !known.contains(name.as_ref()) {
            notes.push((log::Level::Warn, format!("unrecognized environment variable {name}={value:?}")));
        }
    }
}

/// etcd's settings that mean nothing here, quietly passed over in a config file: the raft
/// log lives in RocksDB (no WAL or snapshot files to cap) and the v2 proxy does not exist.
const CONFIG_KEYS_WITHOUT_EFFECT: &[&str] = &[
    "max-snapshots",
    "max-wals",
    "proxy",
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    "discovery-fallback",
];

/// The flags of etcd's `--config-file`: as etcd does, the file replaces every other flag and
/// environment variable. A key that is not a raftkv flag is reported and passed over, unless
/// it is empty or off or in [`CONFIG_KEYS_WITHOUT_EFFECT`].
fn args_from_config_file(path: &std::path::Path, notes: &mut Vec<Note>) -> Result<Args, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config-file {}: {e}", path.display()))?;
    let flags = raftkv::config::file::flags_from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // Without env: the file replaces the environment as well as the command line.
    let cmd = Args::command().mut_args(|a| a.env(None));
    let mut argv = vec![std::env::args_os().next().unwrap_or_else(|| "raftkv".into())];
    for (flag, value) in flags {
        if flag != "config-file" && cmd.get_arguments().any(|a| a.get_long() == Some(flag.as_str())) {
            argv.push(format!("--{flag}={value}").into());
        } else if !(CONFIG_KEYS_WITHOUT_EFFECT.contains(&flag.as_str()) || ["", "false", "0"].contains(&value.as_str()))
        {
            notes.push((
                log::Level::Warn,
                format!("config file {}: {flag}: not a raftkv setting, ignored", path.display()),
            ));
        }
    }
    notes.push((
        log::Level::Info,
        format!(
            "loaded server configuration from {}, other configuration command line flags and environment variables will be ignored if provided",
            path.display()
        ),
    ));
    let matches = cmd.try_get_matches_from(argv).map_err(|e| format!("{}: {e}", path.display()))?;
    Args::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// The flags, from the command line and the environment, or from a config file.
fn args(notes: &mut Vec<Note>) -> Result<Args, String> {
    adopt_etcd_env(&Args::command(), notes);
    // Built again: clap reads each flag's variable when the command is built.
    let args = Args::from_arg_matches(&Args::command().get_matches()).map_err(|e| e.to_string())?;
    match &args.config_file {
        Some(path) => {
            // etcd does not read the environment at all when there is a file.
            notes.clear();
            args_from_config_file(path, notes)
        }
        None => Ok(args),
    }
}

fn init_logs(args: &Args) -> Result<(), String> {
    let format = match (args.log_format.as_deref(), args.logger.as_str()) {
        (Some(format), _) => raftkv::logging::Format::parse(format)?,
        (None, "zap") => raftkv::logging::Format::Json,
        (None, "capnslog") => raftkv::logging::Format::Console,
        (None, other) => return Err(format!("--logger {other:?}: want 'zap' or 'capnslog'")),
    };
    raftkv::logging::init(&args.log_level, format, &args.log_outputs)
}

fn main() -> ExitCode {
    let mut notes = Vec::new();
    let started = args(&mut notes).and_then(|args| init_logs(&args).map(|()| args));
    let args = match started {
        Ok(args) => args,
        Err(e) => {
            // No logger yet: the one line goes to stderr, as a bad flag's does.
            eprintln!("raftkv: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (level, note) in notes {
        log::log!(level, "{note}");
    }
    if let Err(e) = raftkv::failpoint::init_from_env() {
        log::error!("raftkv: {e}");
        return ExitCode::FAILURE;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("raftkv: {e}");
            ExitCode::FAILURE
        }
    }
}
