//! etcd's simple tokens (`auth/simple_token.go`): `<16 random letters>.<raft index>`, the
//! letters chosen by the member that takes the `Authenticate` call and the token assigned
//! when the entry is applied, on every member (so any member knows a token once it applied
//! that index).
//!
//! Tokens live in memory only, as etcd's: a restart forgets them. Each lasts
//! `--auth-token-ttl` from its last use (etcd's `resetSimpleToken` on every check). Instead of
//! etcd's keeper goroutine ticking every second, an expired token is dropped when it is
//! looked up, and the expired ones with every new assignment, so there is no thread and the
//! map never holds more than the tokens used within one TTL.
//!
//! Assigned and invalidated on the apply thread; looked up on the callers' threads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::{Error, Result};

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PREFIX_LEN: usize = 16;

/// The random part of a new token (etcd's `genTokenPrefix`).
pub fn prefix() -> Result<String> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(PREFIX_LEN);
    // 256 is not a multiple of 52: bytes above the last whole multiple are dropped, so the
    // letters stay uniform (as crypto/rand's `Int`).
    let limit = LETTERS.len() * (256 / LETTERS.len());
    loop {
        let mut bytes = [0u8; 2 * PREFIX_LEN];
        ring::rand::SecureRandom::fill(&rng, &mut bytes)
            .map_err(|_| Error::Config("no randomness for an auth token".into()))?;
        for b in bytes.into_iter().map(usize::from).filter(|b| *b < limit) {
            out.push(char::from(LETTERS[b % LETTERS.len()]));
            if out.len() == PREFIX_LEN {
                return Ok(out);
            }
        }
    }
}

struct Entry {
    user: String,
    expires: Instant,
}

pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Entry>>,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens { ttl, tokens: Mutex::new(HashMap::new()) }
    }

    /// Gives `user` the token `prefix.index` (apply thread).
    pub fn assign(&self, user: &str, prefix: &str, index: u64) -> String {
        let token = format!("{prefix}.{index}");
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, e| e.expires > now);
        tokens.insert(token.clone(), Entry { user: user.to_string(), expires: now + self.ttl });
        token
    }

    /// The user of a live token, whose life starts again (etcd's `info`).
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        let entry = tokens.get_mut(token)?;
        if entry.expires <= now {
            tokens.remove(token);
            return None;
        }
        entry.expires = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Forgets the tokens of `user` (deleted, or its password changed).
    pub fn invalidate_user(&self, user: &str) {
        self.tokens.lock().retain(|_, e| e.user != user);
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&self) {
        self.tokens.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_etcds_shape_expire_and_are_refreshed_by_use() {
        let p = prefix().unwrap();
        assert_eq!(p.len(), 16);
        assert!(p.bytes().all(|b| b.is_ascii_alphabetic()));
        let tokens = SimpleTokens::new(Duration::from_millis(300));
        let t = tokens.assign("alice", &p, 42);
        assert_eq!(t, format!("{p}.42"));
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(tokens.user(&t).as_deref(), Some("alice"));
        }
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(tokens.user(&t), None);
        let t = tokens.assign("bob", &p, 43);
        tokens.invalidate_user("bob");
        assert_eq!(tokens.user(&t), None);
        assert_eq!(tokens.user("garbage"), None);
    }
}
