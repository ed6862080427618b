//! etcd's `--config-file`: a YAML file whose keys are etcd's flag names (`name`, `data-dir`,
//! `listen-client-urls: http://a,http://b`, `client-transport-security: {cert-file: ...}`),
//! turned into the flags they stand for, so that one set of flags (the binary's) decides what
//! each means. Read once, on the main thread, before the member starts.
//!
//! The file's types are etcd's: URLs are one comma-separated string, `log-outputs` and
//! `cipher-suites` lists, durations nanoseconds (etcd unmarshals them into Go's
//! `time.Duration`; a Go duration string is taken too), the two `*-transport-security` maps
//! the TLS flags of their side.

use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::logging::GoDuration;

/// The keys of etcd's config file whose value is a `time.Duration` (nanoseconds in YAML).
const DURATION_KEYS: &[&str] = &[
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "backend-batch-interval",
    "experimental-corrupt-check-time",
    "experimental-watch-progress-notify-interval",
    "experimental-warning-apply-duration",
    "experimental-compaction-sleep-interval",
];

/// The flags a config file sets, as `(flag name, value)` in the file's order. Keys with a
/// null value are left out, as etcd leaves their defaults.
pub fn flags_from_yaml(text: &str) -> Result<Vec<(String, String)>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("config file: {e}"))?;
    let mut flags = Vec::new();
    let Some(doc) = docs.into_iter().next() else { return Ok(flags) };
    let top = match doc {
        Yaml::Hash(top) => top,
        Yaml::Null => return Ok(flags),
        _ => return Err("config file: want a map of etcd's flag names to values".into()),
    };
    for (key, value) in top {
        let key = scalar(&key).ok_or("config file: a key that is not a name")?;
        match (key.as_str(), value) {
            ("client-transport-security", Yaml::Hash(tls)) => tls_flags(&tls, "", &mut flags)?,
            ("peer-transport-security", Yaml::Hash(tls)) => tls_flags(&tls, "peer-", &mut flags)?,
            (_, Yaml::Null) => {}
            (_, value) => flags.push((key.clone(), value_text(&key, &value)?)),
        }
    }
    Ok(flags)
}

/// A `*-transport-security` map: its keys are the TLS flags of the side, `peer-` prefixed for
/// peers (`allowed-cn` is `--peer-cert-allowed-cn`, as etcd 3.5's file names it).
fn tls_flags(tls: &yaml_rust2::yaml::Hash, prefix: &str, flags: &mut Vec<(String, String)>) -> Result<(), String> {
    for (key, value) in tls {
        let key = scalar(key).ok_or("config file: a key that is not a name")?;
        if matches!(value, Yaml::Null) {
            continue;
        }
        let flag = match key.as_str() {
            "allowed-cn" => format!("{prefix}cert-allowed-cn"),
            _ => format!("{prefix}{key}"),
        };
        flags.push((flag.clone(), value_text(&flag, value)?));
    }
    Ok(())
}

fn value_text(key: &str, value: &Yaml) -> Result<String, String> {
    if let (true, Yaml::Integer(ns)) = (DURATION_KEYS.contains(&key), value) {
        let ns = u64::try_from(*ns).map_err(|_| format!("config file: {key}: {ns} is not a duration"))?;
        return Ok(GoDuration(Duration::from_nanos(ns)).to_string());
    }
    match value {
        Yaml::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(scalar).collect();
            items.map(|i| i.join(",")).ok_or_else(|| format!("config file: {key}: a list of maps or lists"))
        }
        other => scalar(other).ok_or_else(|| format!("config file: {key}: want a value, not a map")),
    }
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_file_shapes_become_flags() {
        let text = "\
name: 'm1'
data-dir: /var/lib/etcd
heartbeat-interval: 100
quota-backend-bytes: 0
listen-client-urls: http://127.0.0.1:2379,http://127.0.0.1:22379
discovery:
log-outputs: [stderr, /var/log/etcd.log]
grpc-keepalive-min-time: 5000000000
experimental-watch-progress-notify-interval: 10m
client-transport-security:
  cert-file: /c.pem
  client-cert-auth: false
  auto-tls:
peer-transport-security:
  trusted-ca-file: /ca.pem
  allowed-cn: m
";
        let flags = flags_from_yaml(text).unwrap();
        let want = [
            ("name", "m1"),
            ("data-dir", "/var/lib/etcd"),
            ("heartbeat-interval", "100"),
            ("quota-backend-bytes", "0"),
            ("listen-client-urls", "http://127.0.0.1:2379,http://127.0.0.1:22379"),
            ("log-outputs", "stderr,/var/log/etcd.log"),
            ("grpc-keepalive-min-time", "5s"),
            ("experimental-watch-progress-notify-interval", "10m"),
            ("cert-file", "/c.pem"),
            ("client-cert-auth", "false"),
            ("peer-trusted-ca-file", "/ca.pem"),
            ("peer-cert-allowed-cn", "m"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(flags, want);
    }

    #[test]
    fn what_is_not_a_flag_map_is_refused() {
        assert!(flags_from_yaml("- a\n- b\n").is_err());
        assert!(flags_from_yaml("name: {a: 1}\n").is_err());
        assert!(flags_from_yaml("name: [1, [2]]\n").is_err());
        assert!(flags_from_yaml("grpc-keepalive-min-time: -1\n").is_err());
        assert!(flags_from_yaml("name: 'unterminated\n").is_err());
        assert_eq!(flags_from_yaml("").unwrap(), vec![]);
    }
}
