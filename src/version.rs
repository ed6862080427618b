//! The etcd versions raftkv answers as: what `/version`, `Status` and, later, the cluster
//! version negotiation report. Clients decide features from them (Kubernetes uses
//! `RequestProgress` only from 3.4.25), so they change only with the behaviour they name.

/// The etcd release whose API raftkv serves.
pub const ETCD_VERSION: &str = "3.4.23";
/// The cluster version (etcd reports major.minor.0).
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";
