//! [`Config`]: everything a member needs to start, as plain data, plus [`Config::validate`].
//!
//! Defaults are etcd's: a fresh `Config::default()` starts a working single-member cluster named
//! `default` with its data in `default.raftkv`. Field names follow etcd's flags with the unit last.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsInfo;
use crate::{Error, Result};

/// etcd's `--config-file`, read into flags.
pub mod file;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// What etcd's gRPC server allows a received message beyond `--max-request-bytes`
/// (`v3rpc/grpc.go`'s `grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// How a member is set up. Build one with `Config::default()` or [`Config::new`] and adjust fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// Human-readable member name (`--name`).
    pub name: String,
    /// Directory holding the member's RocksDB (`--data-dir`).
    pub data_dir: PathBuf,
    /// URLs peers reach this member at (`--initial-advertise-peer-urls`); with the cluster token
    /// they determine the member id, as in etcd.
    pub initial_advertise_peer_urls: Vec<String>,
    /// URLs clients reach this member at (`--advertise-client-urls`), as member list shows them.
    pub advertise_client_urls: Vec<String>,
    /// The members a new cluster starts with, as etcd's `--initial-cluster`:
    /// `name=peer-url,...` (a name may repeat for several URLs). Empty means this member alone.
    /// Ignored once the data dir holds a member.
    pub initial_cluster: String,
    /// Whether this member bootstraps a new cluster or joins an existing one
    /// (`--initial-cluster-state`).
    pub initial_cluster_state: ClusterState,
    /// Where to accept peer connections (`--listen-peer-urls`). Empty: no peer listener, which
    /// suits an embedded single member that will never have peers.
    pub listen_peer_urls: Vec<String>,
    /// Where [`crate::embed::Member`] serves clients (`--listen-client-urls`). Empty: no client
    /// listener; a [`crate::Node`] started on its own never opens one.
    pub listen_client_urls: Vec<String>,
    /// Where [`crate::embed::Member`] serves `/metrics` and the health probes only
    /// (`--listen-metrics-urls`, `http://` only). Empty: none besides the client port.
    pub listen_metrics_urls: Vec<String>,
    /// Token that makes the ids of distinct clusters with the same URLs distinct
    /// (`--initial-cluster-token`).
    pub initial_cluster_token: String,
    /// Raft tick (`--heartbeat-interval`): leaders heartbeat once per tick.
    pub heartbeat_interval_ms: u64,
    /// Time without a leader before a follower campaigns (`--election-timeout`).
    pub election_timeout_ms: u64,
    /// Applied entries between two snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Entries kept in the raft log behind a snapshot for slow followers
    /// (`--snapshot-catchup-entries`).
    pub snapshot_catchup_entries: u64,
    /// Largest encoded client request accepted (`--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Most operations in one txn branch (`--max-txn-ops`).
    pub max_txn_ops: usize,
    /// How often the leader records each lease's remaining TTL through raft, so a restart or a
    /// new leader resumes the countdown; a lease can outlive its TTL by at most this much.
    pub lease_checkpoint_interval_ms: u64,
    /// Automatic compaction of old revisions on the leader (`--auto-compaction-mode` and
    /// `--auto-compaction-retention`); `None` keeps all history, etcd's default.
    pub auto_compaction: Option<crate::compactor::AutoCompaction>,
    /// Rows the removal of compacted revisions looks at per batch
    /// (`--experimental-compaction-batch-limit`, etcd's 1000).
    pub compaction_batch_limit: usize,
    /// Pause between two such batches (`--experimental-compaction-sleep-interval`, etcd 3.6's
    /// name; 10 ms as etcd 3.4's fixed pause).
    pub compaction_sleep_interval: std::time::Duration,
    /// How long a client call waits for its proposal to be applied before
    /// `etcdserver: request timed out`. etcd uses 5 s plus two election timeouts.
    pub request_timeout_ms: u64,
    /// The least time between a gRPC client's keepalive pings (`--grpc-keepalive-min-time`);
    /// clients that ping more often are sent away with `too_many_pings`.
    pub grpc_keepalive_min_time: std::time::Duration,
    /// How long a gRPC connection may go with nothing read before the member pings its client
    /// (`--grpc-keepalive-interval`, 2 h)...
    pub grpc_keepalive_interval: std::time::Duration,
    /// ...and how long it then waits for anything before closing it (`--grpc-keepalive-timeout`,
    /// 20 s). Either at 0 means grpc-go's defaults, which are those, as in etcd.
    pub grpc_keepalive_timeout: std::time::Duration,
    /// How often watchers created with `progress_notify` hear the current revision when
    /// nothing else was sent to them (`--experimental-watch-progress-notify-interval`).
    pub watch_progress_notify_interval: std::time::Duration,
    /// bcrypt's cost for hashing user passwords (`--bcrypt-cost`); outside 4..=31 etcd's
    /// default (10) is used instead, with a warning, as etcd does.
    pub bcrypt_cost: u32,
    /// A request that takes longer to apply (or a read to serve) is logged as etcd logs it,
    /// "apply request took too long" (`--experimental-warning-apply-duration`, 100 ms).
    pub warning_apply_duration: Duration,
    /// The token provider (`--auth-token`): etcd's `simple` (the default) or
    /// `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`.
    pub auth_token: String,
    /// How long a simple token lives after its last use (`--auth-token-ttl`, 300 s).
    pub auth_token_ttl: std::time::Duration,
    /// The database size at which NOSPACE is raised (`--quota-backend-bytes`): 0 is etcd's
    /// 2 GiB default, a negative value disables the quota.
    pub quota_backend_bytes: i64,
    /// Before a member that has data serves anyone, compare its HashKV with every peer's at
    /// its own revision and refuse to start on a difference
    /// (`--experimental-initial-corrupt-check`, off by default as in etcd).
    pub initial_corrupt_check: bool,
    /// How often the leader compares every member's HashKV with its own and raises CORRUPT on
    /// a difference (`--experimental-corrupt-check-time`); zero, etcd's default, never.
    pub corrupt_check_time: Duration,
    /// Serves the fault control endpoints (`/debug/failpoints`, `/debug/partition`) on the
    /// client port, for tests of real processes (the `raftkv` binary sets it from
    /// `RAFTKV_DEBUG_CONTROL=1`). Off by default, and never for production: whoever reaches
    /// the port can stall, cut off or crash the member.
    pub debug_control: bool,
    /// TLS of the `https://` client URLs (`--cert-file --key-file --trusted-ca-file
    /// --client-cert-auth --auto-tls`, with the shared `--tls-min-version --tls-max-version
    /// --cipher-suites --self-signed-cert-validity`). `http://` URLs ignore it, as in etcd.
    pub client_tls: TlsInfo,
    /// TLS of the peer port and of this member's connections to `https://` peer URLs
    /// (`--peer-cert-file --peer-key-file --peer-trusted-ca-file --peer-client-cert-auth
    /// --peer-auto-tls --peer-cert-allowed-cn`, and the shared settings).
    pub peer_tls: TlsInfo,
}

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap the cluster from `--initial-cluster`.
    #[default]
    New,
    /// Join a running cluster that already added this member (`member add`).
    Existing,
}

impl Default for Config {
    fn default() -> Self {
        Config::new("default", "default.raftkv")
    }
}

impl Config {
    /// A single-member configuration with etcd's defaults.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            name: name.into(),
            data_dir: data_dir.into(),
            initial_advertise_peer_urls: vec!["http://localhost:2380".to_string()],
            advertise_client_urls: vec!["http://localhost:2379".to_string()],
            initial_cluster: String::new(),
            initial_cluster_state: ClusterState::New,
            listen_peer_urls: Vec::new(),
            listen_client_urls: Vec::new(),
            listen_metrics_urls: Vec::new(),
            initial_cluster_token: "etcd-cluster".to_string(),
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: 10_000,
            snapshot_catchup_entries: 5_000,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: 128,
            request_timeout_ms: 7_000,
            lease_checkpoint_interval_ms: 60_000,
            auto_compaction: None,
            compaction_batch_limit: 1000,
            compaction_sleep_interval: std::time::Duration::from_millis(10),
            grpc_keepalive_min_time: std::time::Duration::from_secs(5),
            grpc_keepalive_interval: std::time::Duration::from_secs(2 * 3600),
            grpc_keepalive_timeout: std::time::Duration::from_secs(20),
            watch_progress_notify_interval: std::time::Duration::from_secs(600),
            bcrypt_cost: crate::auth::BCRYPT_COST_DEFAULT,
            warning_apply_duration: Duration::from_millis(100),
            auth_token: "simple".into(),
            auth_token_ttl: crate::auth::TOKEN_TTL_DEFAULT,
            quota_backend_bytes: 0,
            initial_corrupt_check: false,
            corrupt_check_time: Duration::ZERO,
            debug_control: false,
            client_tls: TlsInfo::default(),
            peer_tls: TlsInfo::default(),
        }
    }

    /// The bcrypt cost passwords are hashed with: `--bcrypt-cost` when bcrypt takes it.
    pub fn bcrypt_cost(&self) -> u32 {
        if crate::auth::BCRYPT_COST_RANGE.contains(&self.bcrypt_cost) {
            self.bcrypt_cost
        } else {
            crate::auth::BCRYPT_COST_DEFAULT
        }
    }

    /// The largest gRPC message the client port takes, as etcd sets grpc-go's
    /// `MaxRecvMsgSize`; the gateway hits the same limit.
    pub fn grpc_message_max(&self) -> usize {
        self.max_request_bytes + GRPC_OVERHEAD_BYTES
    }

    /// Checks every rule a working member needs; the message names the setting.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(msg));
        if self.name.is_empty() {
            return fail("--name must not be empty".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return fail("--data-dir must not be empty".into());
        }
        if self.initial_advertise_peer_urls.is_empty() {
            return fail("--initial-advertise-peer-urls needs at least one URL".into());
        }
        for (name, urls) in self.initial_cluster() {
            if name.is_empty() || urls.iter().any(|u| u.is_empty()) {
                return fail(format!("--initial-cluster {:?}: want name=url,...", self.initial_cluster));
            }
        }
        if self.initial_cluster_state == ClusterState::Existing && self.initial_cluster.is_empty() {
            return fail("--initial-cluster-state existing needs --initial-cluster to find the cluster".into());
        }
        crate::auth::token::options(&self.auth_token)?;
        if self.heartbeat_interval_ms == 0 {
            return fail("--heartbeat-interval must be > 0".into());
        }
        // etcd's rule: a follower must miss several heartbeats before it may campaign.
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms {
            return fail(format!(
                "--election-timeout[{}ms] should be at least 5 times --heartbeat-interval[{}ms]",
                self.election_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.election_timeout_ms > 50_000 {
            return fail(format!(
                "--election-timeout[{}ms] is too long, and should be set less than 50000ms",
                self.election_timeout_ms
            ));
        }
        if self.snapshot_count == 0 {
            return fail("--snapshot-count must be > 0".into());
        }
        if self.max_request_bytes == 0 {
            return fail("--max-request-bytes must be > 0".into());
        }
        if self.max_txn_ops == 0 {
            return fail("--max-txn-ops must be > 0".into());
        }
        if self.lease_checkpoint_interval_ms == 0 {
            return fail("lease checkpoint interval must be > 0".into());
        }
        if self.request_timeout_ms == 0 {
            return fail("request timeout must be > 0".into());
        }
        if self.compaction_batch_limit == 0 {
            return fail("--experimental-compaction-batch-limit must be > 0".into());
        }
        self.client_tls.validate("--").map_err(Error::Config)?;
        self.peer_tls.validate("--peer-").map_err(Error::Config)?;
        let peer = &self.peer_tls;
        if let Some(url) = self.listen_peer_urls.iter().find(|u| u.starts_with("https://")) {
            if peer.is_empty() && !peer.auto_tls {
                return fail(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {url} with HTTPS scheme"
                ));
            }
        }
        if let Some(url) = self.listen_metrics_urls.iter().find(|u| u.starts_with("https://")) {
            return fail(format!("--listen-metrics-urls {url}: only http:// is supported (see docs/compat.md)"));
        }
        let tls = &self.client_tls;
        if let Some(url) = self.listen_client_urls.iter().find(|u| u.starts_with("https://")) {
            if tls.is_empty() && !tls.auto_tls {
                return fail(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
                ));
            }
        }
        Ok(())
    }

    /// raft-rs's configuration for member `id`, resuming after `applied`. Every field is set
    /// here, on purpose, rather than left to raft-rs's defaults.
    pub fn raft_config(&self, id: u64, applied: u64) -> raft::Config {
        let election_tick = self.election_ticks();
        raft::Config {
            id,
            election_tick,
            // One tick per heartbeat interval: the ticker runs at `--heartbeat-interval`.
            heartbeat_tick: 1,
            applied,
            // etcd's `maxSizePerMsg` and `maxInflightMsgs`.
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader that loses its quorum steps down, and a partitioned member cannot
            // disrupt the cluster when it comes back (etcd sets both).
            check_quorum: true,
            pre_vote: true,
            // Randomized election timeouts in [election, 2 × election), raft's default range.
            min_election_tick: election_tick,
            max_election_tick: 2 * election_tick,
            // ReadIndex confirmed by a heartbeat round, not by the leader's lease on time.
            read_only_option: raft::ReadOnlyOption::Safe,
            skip_bcast_commit: false,
            batch_append: false,
            priority: 0,
            // Uncommitted entries are bounded by the raft request queue and admission control.
            max_uncommitted_size: u64::MAX,
            // Bounds one Apply (and so one apply batch) to 64 MiB of entries.
            max_committed_size_per_ready: 64 << 20,
        }
    }

    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Election timeout in ticks, as raft-rs counts it.
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout_ms / self.heartbeat_interval_ms) as usize
    }

    /// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
    pub fn min_lease_ttl(&self) -> i64 {
        (3 * self.election_ticks() as u64 * self.heartbeat_interval_ms / 2).div_ceil(1000) as i64
    }

    pub fn lease_checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.lease_checkpoint_interval_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `--initial-cluster` as (name, sorted peer URLs) in order of first appearance; this
    /// member alone when it is empty.
    pub fn initial_cluster(&self) -> Vec<(String, Vec<String>)> {
        if self.initial_cluster.is_empty() {
            let mut urls = self.initial_advertise_peer_urls.clone();
            urls.sort();
            return vec![(self.name.clone(), urls)];
        }
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for item in self.initial_cluster.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, url) = item.split_once('=').unwrap_or(("", item));
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => members.push((name.to_string(), vec![url.to_string()])),
            }
        }
        for (_, urls) in &mut members {
            urls.sort();
        }
        members
    }

    /// This member's id in a cluster bootstrapped from `--initial-cluster`.
    pub fn member_id(&self) -> u64 {
        Config::member_id_for(&self.initial_advertise_peer_urls, &self.initial_cluster_token)
    }

    /// etcd's `computeMemberId`: the first 8 bytes (big endian) of the SHA-1 of the sorted peer
    /// URLs and the cluster token, so defaults give etcd's well-known ids. Members added later
    /// pass a token that includes the time, as etcd does, so a re-added member gets a new id.
    pub fn member_id_for(peer_urls: &[String], token: &str) -> u64 {
        let mut urls = peer_urls.to_vec();
        urls.sort();
        let mut input = urls.concat().into_bytes();
        input.extend_from_slice(token.as_bytes());
        sha1_prefix(&input)
    }

    /// The cluster id of a cluster made of `member_ids`: etcd's `genID` over the sorted ids.
    pub fn cluster_id(member_ids: &[u64]) -> u64 {
        let mut ids = member_ids.to_vec();
        ids.sort_unstable();
        let input: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
        sha1_prefix(&input)
    }
}

fn sha1_prefix(input: &[u8]) -> u64 {
    let digest = sha1_smol::Sha1::from(input).digest().bytes();
    u64::from_be_bytes(digest[..8].try_into().expect("sha1 digest is 20 bytes"))
}

/// `http://host:port` (or `https://`, for dialing) → socket addresses.
pub fn url_addr(url: &str) -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).unwrap_or(url);
    rest.trim_end_matches('/').to_socket_addrs()
}

/// A listener for `url` given to `flag`: `http://host:port`, or `https://` (the caller serves
/// TLS on it).
pub fn bind(flag: &str, url: &str) -> Result<TcpListener> {
    let addr = (url.starts_with("http://") || url.starts_with("https://"))
        .then(|| url_addr(url).ok()?.next())
        .flatten()
        .ok_or_else(|| Error::Config(format!("{flag} {url:?}: want http://host:port or https://host:port")))?;
    TcpListener::bind(addr).map_err(|e| Error::Config(format!("listen tcp {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_etcds() {
        // A default `etcd` (peer URL http://localhost:2380, token etcd-cluster) reports
        // member_id 8e9e05c52164694d and cluster_id cdf818194e3a8c32.
        let cfg = Config::default();
        assert_eq!(cfg.member_id(), 0x8e9e05c52164694d);
        assert_eq!(Config::cluster_id(&[cfg.member_id()]), 0xcdf818194e3a8c32);
        assert_eq!(cfg.min_lease_ttl(), 2, "etcd raises TTL 1 to 2 with default timing");
    }

    /// One case per rule of `validate`: the setting it breaks, and what the error names.
    #[test]
    fn each_validate_rule_names_its_setting() {
        assert!(Config::default().validate().is_ok());
        type Breaks = fn(&mut Config);
        let cases: Vec<(Breaks, &str)> = vec![
            (|c| c.name.clear(), "--name"),
            (|c| c.data_dir = PathBuf::new(), "--data-dir"),
            (|c| c.initial_advertise_peer_urls.clear(), "--initial-advertise-peer-urls"),
            (|c| c.initial_cluster = "=http://127.0.0.1:2380".into(), "--initial-cluster"),
            (|c| c.initial_cluster_state = ClusterState::Existing, "--initial-cluster-state existing"),
            (|c| c.heartbeat_interval_ms = 0, "--heartbeat-interval must be > 0"),
            (|c| c.election_timeout_ms = 300, "should be at least 5 times --heartbeat-interval"),
            (|c| c.election_timeout_ms = 60_000, "less than 50000ms"),
            (|c| c.snapshot_count = 0, "--snapshot-count"),
            (|c| c.max_request_bytes = 0, "--max-request-bytes"),
            (|c| c.max_txn_ops = 0, "--max-txn-ops"),
            (|c| c.lease_checkpoint_interval_ms = 0, "lease checkpoint interval"),
            (|c| c.request_timeout_ms = 0, "request timeout"),
            (|c| c.compaction_batch_limit = 0, "--experimental-compaction-batch-limit"),
            (|c| c.listen_client_urls = vec!["https://127.0.0.1:2379".into()], "must be provided for client url"),
            (|c| c.client_tls.client_cert_auth = true, "--client-cert-auth needs --trusted-ca-file"),
            (|c| c.listen_peer_urls = vec!["https://127.0.0.1:2380".into()], "--peer-cert-file, --peer-key-file"),
            (|c| c.peer_tls.allowed_cn = Some("m".into()), "--peer-cert-allowed-cn needs --peer-trusted-ca-file"),
        ];
        for (breaks, names) in cases {
            let mut cfg = Config::default();
            breaks(&mut cfg);
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(names), "{names}: {err}");
        }
    }

    #[test]
    fn the_raft_config_is_valid_and_etcds() {
        let cfg = Config::default();
        let raft = cfg.raft_config(7, 42);
        raft.validate().unwrap();
        assert_eq!((raft.id, raft.applied, raft.election_tick, raft.heartbeat_tick), (7, 42, 10, 1));
        assert!(raft.check_quorum && raft.pre_vote);
        assert_eq!(raft.read_only_option, raft::ReadOnlyOption::Safe);
    }
}
