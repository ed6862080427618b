//! raftkv: an etcd-compatible, Raft-replicated key-value store as a plain synchronous Rust
//! library (threads and channels, no async runtime) on RocksDB.
//!
//! A [`Node`] is one member. Start it from a [`Config`], call it from any thread with etcd's
//! request types (in [`pb`]), and stop it:
//!
//! ```
//! use raftkv::pb::{PutRequest, RangeRequest};
//! use raftkv::{Config, Node};
//!
//! # fn main() -> raftkv::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let node = Node::start(Config::new("example", dir.path().join("data")))?;
//!
//! let put = node.put(PutRequest::new("greeting", "hello"))?;
//! let got = node.range(RangeRequest::key("greeting"))?;
//! assert_eq!(got.kvs[0].value, b"hello");
//! assert_eq!(got.kvs[0].mod_revision, put.header.unwrap().revision);
//!
//! node.stop()?; // joins every thread of the member; calling it again is harmless
//! # Ok(())
//! # }
//! ```
//!
//! A caller that serves many requests from few threads (raftkv's own HTTP event loops do)
//! starts the hot calls without blocking: `put_then`, `delete_range_then`, `txn_then` and
//! `read_barrier_then` take a [`Reply`], a callback the apply or raft thread answers (keep it
//! short: hand the result to your own thread), and return a [`Ticket`] saying when to give up:
//!
//! ```
//! # use raftkv::pb::PutRequest;
//! # use raftkv::{Config, Node, Reply};
//! # fn main() -> raftkv::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let node = Node::start(Config::new("example", dir.path().join("data")))?;
//! let (tx, rx) = crossbeam::channel::bounded(1);
//! let ticket = node.put_then(PutRequest::new("k", "v"), Reply::new(move |outcome| {
//!     let _ = tx.try_send(outcome);
//! }));
//! match rx.recv_deadline(ticket.deadline()) {
//!     Ok(outcome) => assert!(outcome?.header.is_some()),
//!     Err(_) => return Err(ticket.expire()), // etcd's timeout error; the reply is forgotten
//! }
//! # node.stop()
//! # }
//! ```
//!
//! Every write is a raft log entry: it is durable (fsynced, batched with concurrent writes)
//! before it is applied, and a member restarted on the same data directory re-applies exactly
//! the entries its store had not yet recorded. Errors are [`Error`]s whose messages are etcd's.
//!
//! To serve etcd's clients as well, start an [`embed::Member`] instead: the same member with
//! the JSON gateway on each of `Config::listen_client_urls`, stopped listeners first.
//!
//! `ARCHITECTURE.md` in the repository maps the threads, channels and modules.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod compactor;
pub mod config;
pub mod embed;
pub mod error;
pub mod failpoint;
pub mod identity;
pub mod jsonpb;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod pb;
pub mod raft;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod thread;
pub mod tls;
pub mod transport;
pub mod version;
pub mod wait;
pub mod watch;

pub use client::Client;
pub use config::Config;
pub use error::{Error, Result};
pub use node::{Node, Ticket};
pub use server::Server;
pub use wait::Reply;
