//! The integration tests, one binary over one harness (`tests/harness/`): real members on
//! real RocksDB in temp dirs, real TCP on 127.0.0.1, real processes killed with SIGKILL.
//! Tests that need the whole process to themselves (thread census, process-wide fault
//! points) live in binaries of their own: `tests/threads.rs`, `tests/fatal.rs`. The history
//! checker (`tests/history/`) is test support too, with its own unit tests in this binary.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../history/mod.rs"]
mod history;

mod alarm;
mod auth;
mod bounds;
mod cli;
mod cluster;
mod compaction;
mod corrupt;
mod crash;
mod debug_control;
mod deploy;
mod diagnose;
mod disk_full;
mod election;
mod etcd_snapshot;
mod etcdctl_compat;
mod failover;
mod grpc;
mod grpc_client;
mod grpc_cluster;
mod h2_abuse;
mod history_check;
mod http;
mod kv_semantics;
mod lease;
mod limits;
mod lock;
mod lock_compat;
mod metrics;
mod mirror;
mod mixin;
mod package;
mod peer_tls;
mod restart;
mod restore;
mod soak;
mod tidy;
mod tls;
mod watch;
