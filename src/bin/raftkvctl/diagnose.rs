//! `raftkvctl diagnose`: reads each endpoint's `/metrics` twice, `--interval` apart, and says
//! why the member is slow, each verdict with the numbers it rests on, e.g. "fsync p99 820 ms
//! on the data dir: the disk is the bottleneck". What changed between the two scrapes is the
//! evidence; for rare events (leader changes) the member's whole life counts too. etcd has no
//! such command: this is the reading an operator does by hand with the etcd mixin's
//! dashboard, written down once.
//!
//! Runs on the calling thread; one HTTP/1.1 request per endpoint and scrape.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use super::CtlError;

/// One scrape: every sample by its name, with its labels (in the exposition's order) and value.
#[derive(Default)]
pub(crate) struct Scrape {
    samples: HashMap<String, Vec<(String, f64)>>,
}

impl Scrape {
    /// Parses Prometheus' text exposition; lines it cannot read are skipped, as a scraper does.
    pub(crate) fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = match line.rsplit_once(' ') {
                Some((series, value)) => (series.trim(), value),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            scrape.samples.entry(name.to_string()).or_default().push((labels.to_string(), value));
        }
        scrape
    }

    /// The sum of every series of `name` whose labels contain `filter` (e.g. `stage="fsync"`).
    fn sum(&self, name: &str, filter: &str) -> Option<f64> {
        let series = self.samples.get(name)?;
        Some(series.iter().filter(|(labels, _)| labels.contains(filter)).map(|(_, v)| v).sum())
    }

    /// Per value of label `key`, the sum of `name`'s series with it.
    fn by_label(&self, name: &str, key: &str) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        for (labels, v) in self.samples.get(name).into_iter().flatten() {
            let Some(value) = label(labels, key) else { continue };
            match out.iter_mut().find(|(k, _)| *k == value) {
                Some((_, total)) => *total += v,
                None => out.push((value, *v)),
            }
        }
        out
    }

    /// Histogram `name`'s cumulative buckets (upper bound, count), summed over the series whose
    /// labels contain `filter`, in bound order.
    fn buckets(&self, name: &str, filter: &str) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (labels, v) in self.samples.get(&format!("{name}_bucket")).into_iter().flatten() {
            if !labels.contains(filter) {
                continue;
            }
            let Some(le) =
                label(labels, "le").and_then(|b| if b == "+Inf" { Some(f64::INFINITY) } else { b.parse().ok() })
            else {
                continue;
            };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += v,
                None => out.push((le, *v)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// What happened between two scrapes of one member.
struct Window<'a> {
    before: &'a Scrape,
    after: &'a Scrape,
}

impl Window<'_> {
    fn delta(&self, name: &str, filter: &str) -> f64 {
        let after = self.after.sum(name, filter).unwrap_or(0.0);
        (after - self.before.sum(name, filter).unwrap_or(0.0)).max(0.0)
    }

    /// Per value of label `key`, the increase of `name`'s series with it.
    fn delta_by_label(&self, name: &str, key: &str) -> Vec<(String, f64)> {
        let before = self.before.by_label(name, key);
        self.after
            .by_label(name, key)
            .into_iter()
            .map(|(k, v)| {
                let was = before.iter().find(|(b, _)| *b == k).map_or(0.0, |(_, n)| *n);
                (k, (v - was).max(0.0))
            })
            .collect()
    }

    /// Histogram `name`'s observations in the window: (count, mean, p99), or `None` if none.
    fn histogram(&self, name: &str, filter: &str) -> Option<(f64, f64, f64)> {
        let count = self.delta(&format!("{name}_count"), filter);
        if count < 1.0 {
            return None;
        }
        let mean = self.delta(&format!("{name}_sum"), filter) / count;
        let before = self.before.buckets(name, filter);
        let buckets: Vec<(f64, f64)> = self
            .after
            .buckets(name, filter)
            .into_iter()
            .map(|(le, n)| (le, n - before.iter().find(|(b, _)| *b == le).map_or(0.0, |(_, m)| *m)))
            .collect();
        Some((count, mean, quantile(0.99, &buckets)))
    }
}

/// Prometheus' `histogram_quantile`: linear within the bucket the rank falls in; the largest
/// finite bound when it falls in `+Inf`'s.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let Some(&(_, total)) = buckets.last() else { return f64::NAN };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let width = n - lower.1;
            return if width > 0.0 { lower.0 + (le - lower.0) * (rank - lower.1) / width } else { le };
        }
        lower = (le, n);
    }
    lower.0
}

fn ms(seconds: f64) -> String {
    format!("{:.0} ms", seconds * 1000.0)
}

/// The verdicts for one member, worst first; empty when nothing is slow.
pub(crate) fn verdicts(before: &Scrape, after: &Scrape, interval: Duration) -> Vec<String> {
    let w = Window { before, after };
    let secs = interval.as_secs_f64().max(0.001);
    let mut found = Vec::new();
    if after.sum("etcd_server_has_leader", "") == Some(0.0) {
        found.push(
            "no leader: this member serves no writes and no linearizable reads (etcd_server_has_leader 0)".into(),
        );
    }
    if let Some((n, _, p99)) = w.histogram("etcd_disk_wal_fsync_duration_seconds", "") {
        if p99 >= 0.1 {
            found.push(format!(
                "fsync p99 {} on the data dir ({n:.0} syncs in {secs:.0} s; etcd wants under 10 ms): the disk is the bottleneck",
                ms(p99)
            ));
        }
    }
    if let Some((n, _, p99)) = w.histogram("etcd_disk_backend_commit_duration_seconds", "") {
        if p99 >= 0.25 {
            found.push(format!(
                "apply batch commit p99 {} ({n:.0} commits): the disk, or large writes (big deletes, txns)",
                ms(p99)
            ));
        }
    }
    let slow_applies = w.delta("etcd_server_slow_apply_total", "");
    if slow_applies > 0.0 {
        found.push(format!(
            "{slow_applies:.0} requests took longer than --experimental-warning-apply-duration to apply: \
             large deletes, large txns or compactions (see \"apply request took too long\" in the log)"
        ));
    }
    let late = w.delta("etcd_server_heartbeat_send_failures_total", "");
    if late > 0.0 {
        found.push(format!(
            "heartbeats sent late {late:.0} times: the leader is overloaded, most likely by a slow disk or CPU"
        ));
    }
    let changes = w.delta("etcd_server_leader_changes_seen_total", "");
    let lifetime = after.sum("etcd_server_leader_changes_seen_total", "").unwrap_or(0.0);
    let up_min = match (
        after.sum("process_start_time_seconds", ""),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH),
    ) {
        (Some(start), Ok(now)) if start > 0.0 => ((now.as_secs_f64() - start) / 60.0).max(1.0),
        _ => f64::NAN,
    };
    if changes > 0.0 {
        found.push(format!("leader changed {changes:.0} times in {secs:.0} s: check the network and CPU"));
    } else if lifetime > 1.0 && lifetime / up_min * 15.0 >= 3.0 {
        // The first election is not a change worth a word; three an hour and more are.
        found.push(format!("leader changed {lifetime:.0} times in {up_min:.0} min: check the network and CPU"));
    }
    for (peer, failures) in w.delta_by_label("etcd_network_peer_sent_failures_total", "To") {
        if failures > 0.0 {
            found.push(format!("{failures:.0} messages to peer {peer} failed: it is down, partitioned or overloaded"));
        }
    }
    if let Some((_, _, p99)) = w.histogram("etcd_network_peer_round_trip_time_seconds", "") {
        if p99 >= 0.1 {
            found.push(format!("peer round trip p99 {}: the network between members is slow", ms(p99)));
        }
    }
    let failed = w.delta("etcd_server_proposals_failed_total", "");
    if failed > 0.0 {
        found.push(format!("{failed:.0} proposals failed: leader changes or a lost quorum"));
    }
    let pending = after.sum("etcd_server_proposals_pending", "").unwrap_or(0.0);
    if pending >= 1000.0 {
        found.push(format!("{pending:.0} proposals pending: the member takes writes faster than it commits them"));
    }
    if let (Some(used), Some(quota)) =
        (after.sum("etcd_mvcc_db_total_size_in_use_in_bytes", ""), after.sum("etcd_server_quota_backend_bytes", ""))
    {
        if quota > 0.0 && used / quota >= 0.8 {
            found.push(format!(
                "the database is at {:.0}% of --quota-backend-bytes: NOSPACE soon; compact and defragment",
                100.0 * used / quota
            ));
        }
    }
    let slow_reads = w.delta("etcd_server_slow_read_indexes_total", "");
    if slow_reads > 0.0 {
        found.push(format!(
            "{slow_reads:.0} linearizable reads waited long for their read index: a slow or busy leader"
        ));
    }
    found
}

/// Where a write's time went in the window, from the request stages, as one line.
pub(crate) fn stages(before: &Scrape, after: &Scrape) -> Option<String> {
    let w = Window { before, after };
    let name = "raftkv_request_stage_duration_seconds";
    let mut parts = Vec::new();
    for stage in ["queue", "propose", "fsync", "commit", "apply", "reply"] {
        if let Some((_, mean, p99)) = w.histogram(name, &format!("stage=\"{stage}\"")) {
            parts.push(format!("{stage} {:.2}/{:.2}", mean * 1000.0, p99 * 1000.0));
        }
    }
    (!parts.is_empty()).then(|| format!("write stages, mean/p99 ms: {}", parts.join(", ")))
}

/// `/metrics` of `endpoint` over HTTP/1.1 (the client port serves it, as etcd's does).
pub(crate) fn fetch(endpoint: &str) -> std::io::Result<String> {
    let host = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("{host}: /metrics did not answer 200"))),
    }
}

/// Every endpoint's verdicts; fails (exit 1) when one found something or could not be read.
pub(crate) fn diagnose(endpoints: &[String], interval: Duration) -> Result<(), CtlError> {
    let first: Vec<_> = endpoints.iter().map(|e| fetch(e)).collect();
    std::thread::sleep(interval);
    let mut healthy = true;
    for (endpoint, before) in endpoints.iter().zip(first) {
        let (before, after) = match (before, fetch(endpoint)) {
            (Ok(b), Ok(a)) => (Scrape::parse(&b), Scrape::parse(&a)),
            (Err(e), _) | (_, Err(e)) => {
                println!("{endpoint}: cannot read its metrics: {e}");
                healthy = false;
                continue;
            }
        };
        let found = verdicts(&before, &after, interval);
        if found.is_empty() {
            println!("{endpoint}: healthy: nothing slow in {:.0} s", interval.as_secs_f64());
        }
        for verdict in &found {
            println!("{endpoint}: {verdict}");
        }
        if let Some(line) = stages(&before, &after) {
            println!("{endpoint}: {line}");
        }
        healthy &= found.is_empty();
    }
    if healthy {
        Ok(())
    } else {
        Err(CtlError::Usage("diagnose found problems".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(fsync_slow: u64, leader_changes: u64) -> Scrape {
        let fast = 1000 - fsync_slow;
        Scrape::parse(&format!(
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"0.001\"}} {fast}
etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"0.512\"}} {fast}
etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"1.024\"}} 1000
etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"+Inf\"}} 1000
etcd_disk_wal_fsync_duration_seconds_sum {}
etcd_disk_wal_fsync_duration_seconds_count 1000
etcd_server_has_leader 1
etcd_server_leader_changes_seen_total {leader_changes}
etcd_network_peer_sent_failures_total{{To=\"8211f1d0f64f3269\"}} {leader_changes}
",
            fsync_slow as f64 * 0.8
        ))
    }

    #[test]
    fn quantiles_interpolate_as_prometheus_does() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((quantile(0.5, &buckets) - 0.1).abs() < 1e-9);
        assert!((quantile(0.75, &buckets) - 0.15).abs() < 1e-9);
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 10.0)]), 0.1);
    }

    #[test]
    fn the_verdict_names_the_cause_with_its_numbers() {
        let quiet = scrape(0, 1);
        assert!(verdicts(&quiet, &scrape(0, 1), Duration::from_secs(5)).is_empty());
        let before = Scrape::parse("");
        let found = verdicts(&before, &scrape(50, 1), Duration::from_secs(5));
        assert!(found[0].starts_with("fsync p99 922 ms on the data dir (1000 syncs in 5 s"), "{found:?}");
        let found = verdicts(&scrape(0, 1), &scrape(0, 4), Duration::from_secs(5));
        assert!(found.iter().any(|f| f == "leader changed 3 times in 5 s: check the network and CPU"), "{found:?}");
        assert!(found.iter().any(|f| f.starts_with("3 messages to peer 8211f1d0f64f3269 failed")), "{found:?}");
    }
}
