//! The token providers (etcd's `TokenProvider`), chosen by `--auth-token`: [`SimpleTokens`]
//! or JWTs (`jwt.rs`).
//!
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

use super::jwt::JwtTokens;
use super::AuthInfo;
use crate::{Error, Result};

/// etcd's `decomposeOpts`: `type,key=value,...`, each key once.
pub fn options(spec: &str) -> Result<(&str, HashMap<String, String>)> {
    let invalid = || Error::Config(format!("--auth-token {spec:?}: auth: invalid auth options"));
    let mut parts = spec.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options = HashMap::new();
    for part in parts {
        let (key, value) = part.split_once('=').filter(|(_, v)| !v.contains('=')).ok_or_else(invalid)?;
        if options.insert(key.to_string(), value.to_string()).is_some() {
            return Err(invalid());
        }
    }
    match kind {
        "simple" | "jwt" => Ok((kind, options)),
        _ => Err(Error::Config(format!("--auth-token {spec:?}: unknown token type {kind:?}"))),
    }
}

pub enum Provider {
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl Provider {
    /// etcd's `NewTokenProvider`: `simple` (whose tokens live `simple_ttl`) or `jwt,...`.
    pub fn new(spec: &str, simple_ttl: Duration) -> Result<Provider> {
        Ok(match options(spec)? {
            ("jwt", options) => Provider::Jwt(JwtTokens::new(&options)?),
            _ => {
                log::warn!("auth: simple token is not cryptographically signed");
                Provider::Simple(SimpleTokens::new(simple_ttl))
            }
        })
    }

    /// A new token for `user` (apply thread): a simple token from the proposer's `prefix`
    /// and the entry's `index`, or a JWT at auth revision `revision`.
    pub fn assign(&self, user: &str, prefix: &str, index: u64, revision: u64) -> Result<String> {
        match self {
            Provider::Simple(tokens) => Ok(tokens.assign(user, prefix, index)),
            Provider::Jwt(tokens) => tokens.assign(user, revision),
        }
    }

    /// Who a token names; a simple token at the store's `revision` now.
    pub fn info(&self, token: &str, revision: u64) -> Option<AuthInfo> {
        match self {
            Provider::Simple(tokens) => tokens.user(token).map(|username| AuthInfo { username, revision }),
            Provider::Jwt(tokens) => tokens.info(token),
        }
    }

    /// etcd's `invalidateUser`; a JWT stays valid until the revision it carries is old.
    pub fn invalidate_user(&self, user: &str) {
        if let Provider::Simple(tokens) = self {
            tokens.invalidate_user(user);
        }
    }

    /// etcd's `disable`.
    pub fn clear(&self) {
        if let Provider::Simple(tokens) = self {
            tokens.clear();
        }
    }
}

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
