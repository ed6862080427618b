//! etcd's JWT tokens (`auth/jwt.go`, `auth/options.go`): `--auth-token
//! jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`. A token carries etcd's claims
//! `username`, `revision` (the auth revision it was signed at, so any later change of the
//! store makes it old) and `exp`; nothing is kept in memory, so every member that has the
//! public key checks it. Signed on the apply thread (the Authenticate entry), checked on the
//! callers' threads.
//!
//! Built on `jsonwebtoken` with its `ring` backend (the crypto rustls uses here already). A
//! garbage, foreign or expired token is `invalid auth token`, logged without the token.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::AuthInfo;
use crate::{Error, Result};

/// etcd's `DefaultTTL` for JWTs.
const TTL_DEFAULT: Duration = Duration::from_secs(300);

pub struct JwtTokens {
    algorithm: Algorithm,
    /// `None` with a public key only: this member checks tokens but cannot sign them
    /// (etcd's verify-only mode).
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

fn invalid(what: &str) -> Error {
    Error::Config(format!("--auth-token jwt: {what}"))
}

impl JwtTokens {
    /// From etcd's options (`pub-key`, `priv-key`, `sign-method`, `ttl`), keys read now.
    pub fn new(options: &HashMap<String, String>) -> Result<JwtTokens> {
        let method = options.get("sign-method").map(String::as_str).unwrap_or_default();
        let algorithm: Algorithm = method.parse().map_err(|_| invalid("auth: invalid auth signature method"))?;
        let ttl = match options.get("ttl") {
            Some(ttl) => parse_go_duration(ttl).ok_or_else(|| invalid(&format!("ttl {ttl:?}: not a duration")))?,
            None => TTL_DEFAULT,
        };
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            let Some(path) = options.get(name).filter(|p| !p.is_empty()) else { return Ok(None) };
            std::fs::read(path).map(Some).map_err(|e| invalid(&format!("{name} {path}: {e}")))
        };
        let (public, private) = (read("pub-key")?, read("priv-key")?);
        let bad_key = |e: jsonwebtoken::errors::Error| invalid(&format!("key: {e}"));
        let (signing, verifying) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = private.ok_or_else(|| invalid("auth: missing key data"))?;
                (Some(EncodingKey::from_secret(&secret)), DecodingKey::from_secret(&secret))
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let public = public.ok_or_else(|| invalid("pub-key is needed to check tokens"))?;
                let signing = private.map(|k| EncodingKey::from_ec_pem(&k)).transpose().map_err(bad_key)?;
                (signing, DecodingKey::from_ec_pem(&public).map_err(bad_key)?)
            }
            Algorithm::EdDSA => return Err(invalid("auth: invalid auth signature method")),
            _ => {
                let public = public.ok_or_else(|| invalid("pub-key is needed to check tokens"))?;
                let signing = private.map(|k| EncodingKey::from_rsa_pem(&k)).transpose().map_err(bad_key)?;
                (signing, DecodingKey::from_rsa_pem(&public).map_err(bad_key)?)
            }
        };
        Ok(JwtTokens { algorithm, signing, verifying, ttl })
    }

    /// etcd's `assign`: a token for `username` at auth revision `revision`.
    pub fn assign(&self, username: &str, revision: u64) -> Result<String> {
        let key =
            self.signing.as_ref().ok_or(Error::Config("auth: token signing attempted with verify-only key".into()))?;
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let claims = serde_json::json!({ "username": username, "revision": revision, "exp": exp.as_secs() });
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| Error::Config(format!("signing a JWT: {e}")))
    }

    /// etcd's `info`: the user and revision a valid token of ours names.
    pub fn info(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        // jwt-go's rules: `exp` checked when present, to the second, nothing else required.
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<serde_json::Value>(token, &self.verifying, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                log::warn!("auth: failed to parse a JWT token: {e}");
                return None;
            }
        };
        let username = claims.get("username")?.as_str()?.to_string();
        let revision = claims.get("revision")?.as_f64()? as u64;
        Some(AuthInfo { username, revision })
    }
}

/// Go's `time.ParseDuration` for what a ttl is written as: decimal numbers with units
/// (`ns us µs ms s m h`), in sequence (`1h30m`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(secret: &str, dir: &std::path::Path) -> JwtTokens {
        let path = dir.join(format!("{secret}.key"));
        std::fs::write(&path, secret).unwrap();
        let options = [("sign-method", "HS256"), ("priv-key", path.to_str().unwrap()), ("ttl", "1m30s")];
        JwtTokens::new(&options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn tokens_carry_etcds_claims_and_other_keys_or_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (hs("ours", dir.path()), hs("theirs", dir.path()));
        assert_eq!(ours.ttl, Duration::from_secs(90));
        let token = ours.assign("amy", 7).unwrap();
        assert_eq!(ours.info(&token), Some(AuthInfo { username: "amy".into(), revision: 7 }));
        assert_eq!(theirs.info(&token), None);
        for garbage in ["", "a.b.c", "not a token", &"x".repeat(100_000), "\u{0}.\u{ff}."] {
            assert_eq!(ours.info(garbage), None);
        }
        let expired = serde_json::json!({ "username": "amy", "revision": 7, "exp": 1 });
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(b"ours"));
        assert_eq!(ours.info(&old.unwrap()), None);
        let none = [("sign-method", "none")];
        assert!(JwtTokens::new(&none.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).is_err());
    }

    #[test]
    fn durations_are_gos() {
        assert_eq!(parse_go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
