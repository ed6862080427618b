//! raft node (wip)
pub mod storage;
