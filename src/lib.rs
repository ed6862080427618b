//! raftkv (crate docs written later)
pub mod error;
pub mod pb;
pub mod storage;
pub mod raft;
pub use error::{Error, Result};
