//! The member's log lines as etcd writes them: `--log-format console` (readable text, the
//! default, as etcd 3.4's) or `json` (etcd's zap logger: one object a line with `level`, `ts`,
//! `caller`, `msg` and the record's fields), to every one of `--log-outputs` (`stderr`,
//! `stdout`, file paths).
//!
//! Owns the process's one `log` logger, installed by the `raftkv` binary ([`init`]); a program
//! that embeds raftkv installs its own and still gets the fields, since they travel as `log`'s
//! key-values. Runs on whichever thread logs. A line is formatted whole and written with one
//! write under env_logger's lock, so the lines of two threads never interleave.
//!
//! The events operators grep for carry etcd's `msg` strings and field names (`"apply request
//! took too long"` with `took` and `expected-duration`, `"slow fdatasync"`, ...): alert rules
//! and runbooks written for etcd find them. Durations are written as Go prints them
//! ([`GoDuration`]), since etcd's fields are Go durations.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::Duration;

use crate::jsonpb::write::push_quoted;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Console,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "console" => Ok(Format::Console),
            "json" => Ok(Format::Json),
            other => Err(format!("--log-format {other:?}: want 'json' or 'console'")),
        }
    }
}

/// Installs the process logger: `level` (etcd's `--log-level`), `format`, and `outputs`
/// (etcd's `--log-outputs`: `default` and `stderr` are standard error, `stdout` standard out,
/// anything else a file, appended to). `RUST_LOG` still refines the filter, for debugging.
pub fn init(level: &str, format: Format, outputs: &[String]) -> Result<(), String> {
    let level = match level {
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warn" => log::LevelFilter::Warn,
        "error" | "dpanic" | "panic" | "fatal" => log::LevelFilter::Error,
        other => return Err(format!("--log-level {other:?}: want debug, info, warn, error, panic or fatal")),
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        // raft-rs logs every vote and state change at info; keep it one level quieter.
        .filter_module("raft::", level.min(log::LevelFilter::Warn))
        .parse_default_env();
    if format == Format::Json {
        builder.format(|buf, record| {
            let line = json_line(record, &Timestamp::now());
            buf.write_all(line.as_bytes())
        });
    }
    match outputs {
        [] => {}
        [one] if one == "default" || one == "stderr" => {}
        [one] if one == "stdout" => {
            builder.target(env_logger::Target::Stdout);
        }
        many => {
            let sinks = many.iter().map(|o| open_output(o)).collect::<Result<Vec<_>, _>>()?;
            builder.target(env_logger::Target::Pipe(Box::new(Tee(sinks))));
        }
    }
    builder.try_init().map_err(|e| format!("install the logger: {e}"))
}

fn open_output(name: &str) -> Result<Box<dyn std::io::Write + Send>, String> {
    Ok(match name {
        "default" | "stderr" => Box::new(std::io::stderr()),
        "stdout" => Box::new(std::io::stdout()),
        path => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--log-outputs {path}: {e}"))?,
        ),
    })
}

/// Every `--log-outputs` destination gets every line.
struct Tee(Vec<Box<dyn std::io::Write + Send>>);

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for sink in &mut self.0 {
            sink.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
}

/// One record as etcd's zap encoder writes it: `level`, `ts`, `caller`, `msg`, then the
/// record's key-values, numbers and booleans as JSON's, the rest as strings.
fn json_line(record: &log::Record, ts: &Timestamp) -> String {
    let mut line = String::with_capacity(160);
    line.push_str("{\"level\":");
    push_quoted(&mut line, level_name(record.level()));
    let _ = write!(line, ",\"ts\":\"{ts}\"");
    if let (Some(file), Some(n)) = (record.file(), record.line()) {
        line.push_str(",\"caller\":");
        push_quoted(&mut line, &format!("{}:{n}", short_caller(file)));
    }
    // etcd names the raft library's logger; raft-rs's records are this crate's `raft::` target.
    if record.target() == "raft" || record.target().starts_with("raft::") {
        line.push_str(",\"logger\":\"raft\"");
    }
    line.push_str(",\"msg\":");
    push_quoted(&mut line, &record.args().to_string());
    let _ = record.key_values().visit(&mut JsonFields(&mut line));
    line.push_str("}\n");
    line
}

fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug | log::Level::Trace => "debug",
    }
}

/// zap's short caller: the file's directory and name (`apply/mod.rs`), not the whole path.
fn short_caller(file: &str) -> &str {
    match file.rmatch_indices('/').nth(1) {
        Some((i, _)) => &file[i + 1..],
        None => file,
    }
}

struct JsonFields<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: log::kv::Key<'kvs>, value: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push(',');
        push_quoted(self.0, key.as_str());
        self.0.push(':');
        if let Some(b) = value.to_bool() {
            let _ = write!(self.0, "{b}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(x) = value.to_f64().filter(|x| x.is_finite()) {
            let _ = write!(self.0, "{x}");
        } else {
            push_quoted(self.0, &value.to_string());
        }
        Ok(())
    }
}

/// RFC 3339 in UTC with microseconds, as etcd's log lines stamp time.
struct Timestamp(time::OffsetDateTime);

impl Timestamp {
    fn now() -> Timestamp {
        Timestamp(time::OffsetDateTime::now_utc())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

/// A duration printed as Go's `time.Duration.String` prints it (`1.5s`, `120.5ms`, `2m0s`):
/// etcd's `took` and `expected-duration` fields read so, and so do the tools that parse them.
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        const US: u128 = 1_000;
        const MS: u128 = 1_000_000;
        const S: u128 = 1_000_000_000;
        match ns {
            0 => f.write_str("0s"),
            n if n < US => write!(f, "{n}ns"),
            n if n < MS => decimal(f, n, US, "µs"),
            n if n < S => decimal(f, n, MS, "ms"),
            n => {
                let (hours, minutes) = (n / (3_600 * S), n / (60 * S) % 60);
                if hours > 0 {
                    write!(f, "{hours}h")?;
                }
                if hours > 0 || minutes > 0 {
                    write!(f, "{minutes}m")?;
                }
                decimal(f, n % (60 * S), S, "s")
            }
        }
    }
}

/// `n / unit` with the fraction's trailing zeros dropped, then `suffix`.
fn decimal(f: &mut fmt::Formatter<'_>, n: u128, unit: u128, suffix: &str) -> fmt::Result {
    write!(f, "{}", n / unit)?;
    let rest = n % unit;
    if rest > 0 {
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    f.write_str(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(120_500), "120.5ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_millis(3_723_250), "1h2m3.25s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(GoDuration(d).to_string(), want, "{d:?}");
        }
    }

    #[test]
    fn a_json_line_has_zaps_keys_and_the_records_fields() {
        let took = GoDuration(Duration::from_millis(150));
        let args = format_args!("apply request took too long");
        let kvs: [(&str, log::kv::Value); 3] =
            [("took", log::kv::Value::from_display(&took)), ("count", 3i64.into()), ("request", "key:\"a<b\"".into())];
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .target("raftkv::apply")
            .file(Some("/src/raftkv/src/apply/mod.rs"))
            .line(Some(42))
            .args(args)
            .key_values(&kvs)
            .build();
        let ts = Timestamp(time::OffsetDateTime::from_unix_timestamp_nanos(1_764_711_000_123_456_789).unwrap());
        assert_eq!(
            json_line(&record, &ts),
            "{\"level\":\"warn\",\"ts\":\"2025-12-02T21:30:00.123456Z\",\"caller\":\"apply/mod.rs:42\",\
             \"msg\":\"apply request took too long\",\"took\":\"150ms\",\"count\":3,\
             \"request\":\"key:\\\"a\\u003cb\\\"\"}\n"
        );
    }
}
