//! What the raft thread observes, under etcd's names: the synced log write (etcd's WAL
//! fsync), leader changes, late heartbeats, slow ReadIndex rounds and the round trip to each
//! peer; and the propose, fsync and commit stages of a write. Only the raft thread updates
//! these (the handles are shared with the registry, which reads them at a scrape).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::logging::GoDuration;
use crate::metrics::{self, Histogram, HistogramVec, IntCounter, Registry, Stages};

/// A heartbeat unanswered this long is no round trip to time (the peer is down or cut off;
/// etcd's prober gives up after its 5 s read timeout too): the next heartbeat starts afresh.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RaftMetrics {
    wal_fsync: Histogram,
    leader_changes: IntCounter,
    heartbeat_send_failures: IntCounter,
    slow_read_indexes: IntCounter,
    peer_rtt: HistogramVec,
    stages: Stages,
    /// Per peer: the last heartbeat sent, and the heartbeat whose answer is awaited.
    peers: HashMap<u64, PeerTimes>,
    /// When the first proposal of the coming Ready was taken off the queue.
    proposing_since: Option<Instant>,
    /// On a leader, (last index, when persisted) of each Ready's entries not yet committed.
    persisted: VecDeque<(u64, Instant)>,
}

struct PeerTimes {
    rtt: Histogram,
    last_heartbeat: Option<Instant>,
    probe: Option<Instant>,
}

impl RaftMetrics {
    pub fn new(registry: &Registry, stages: Stages) -> RaftMetrics {
        let m = RaftMetrics {
            wal_fsync: metrics::histogram(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                metrics::disk_buckets(),
            ),
            leader_changes: metrics::counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            heartbeat_send_failures: metrics::counter(
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            slow_read_indexes: metrics::counter(
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            ),
            peer_rtt: metrics::histogram_vec(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                &["To"],
                metrics::exponential(0.0001, 2.0, 16),
            ),
            stages,
            peers: HashMap::new(),
            proposing_since: None,
            persisted: VecDeque::new(),
        };
        registry.register(m.wal_fsync.clone());
        registry.register(m.leader_changes.clone());
        registry.register(m.heartbeat_send_failures.clone());
        registry.register(m.slow_read_indexes.clone());
        registry.register(m.peer_rtt.clone());
        m
    }

    /// A synced log write that began at `started` and, when it carried entries, ended with
    /// `last_index`. The failpoint that stands for a stalled disk sits inside the span, as a
    /// slow disk would.
    pub fn synced(&mut self, started: Instant, last_index: Option<u64>) {
        let now = Instant::now();
        self.wal_fsync.observe((now - started).as_secs_f64());
        self.stages.fsync.observe((now - started).as_secs_f64());
        if let Some(since) = self.proposing_since.take() {
            self.stages.propose.observe(started.saturating_duration_since(since).as_secs_f64());
        }
        if let Some(last_index) = last_index {
            self.persisted.push_back((last_index, now));
        }
    }

    /// A proposal taken off the request queue, where it waited since `queued`.
    pub fn proposal_taken(&mut self, queued: Instant) {
        let now = Instant::now();
        self.stages.queue.observe(now.saturating_duration_since(queued).as_secs_f64());
        self.proposing_since.get_or_insert(now);
    }

    /// Entries up to `index` are known committed.
    pub fn committed(&mut self, index: u64) {
        let now = Instant::now();
        while let Some(&(last, persisted)) = self.persisted.front() {
            if last > index {
                break;
            }
            self.persisted.pop_front();
            self.stages.commit.observe((now - persisted).as_secs_f64());
        }
    }

    /// etcd counts a change to a known leader (not the loss of one).
    pub fn leader_changed(&mut self, leader_id: u64) {
        if leader_id != 0 {
            self.leader_changes.inc();
        }
        // A new leader's heartbeats start afresh, and entries of the old term may never commit
        // at their index.
        self.peers.values_mut().for_each(|p| (p.last_heartbeat, p.probe) = (None, None));
        self.persisted.clear();
    }

    /// A heartbeat to `to` leaves now. Late by more than twice the interval counts as etcd's
    /// `heartbeat_send_failures` (a leader too busy, mostly with a slow disk, to keep time).
    /// The first heartbeat with none awaited starts a round-trip probe.
    pub fn heartbeat_sent(&mut self, to: u64, interval: Duration) {
        let now = Instant::now();
        let peer = self.peer(to);
        if let Some(exceeded) = peer.last_heartbeat.map(|last| now - last).filter(|d| *d > 2 * interval) {
            // etcd's words and fields, which runbooks grep for.
            log::warn!(
                to = format!("{to:x}"), "heartbeat-interval":% = GoDuration(interval),
                "expected-duration":% = GoDuration(2 * interval), "exceeded-duration":% = GoDuration(exceeded - 2 * interval);
                "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk"
            );
            self.heartbeat_send_failures.inc();
        }
        let peer = self.peer(to);
        peer.last_heartbeat = Some(now);
        if peer.probe.is_none_or(|sent| now - sent > PROBE_TIMEOUT) {
            peer.probe = Some(now);
        }
    }

    /// A ReadIndex round got no answer in time and goes again (etcd's slow read index).
    pub fn read_index_retried(&self) {
        self.slow_read_indexes.inc();
    }

    /// `from` answered a heartbeat: the round trip of the probe, if one is out.
    pub fn heartbeat_answered(&mut self, from: u64) {
        let peer = self.peer(from);
        if let Some(sent) = peer.probe.take() {
            peer.rtt.observe(sent.elapsed().as_secs_f64());
        }
    }

    fn peer(&mut self, id: u64) -> &mut PeerTimes {
        let rtt = &self.peer_rtt;
        self.peers.entry(id).or_insert_with(|| PeerTimes {
            rtt: rtt.with_label_values(&[&format!("{id:x}")]),
            last_heartbeat: None,
            probe: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> (Registry, RaftMetrics) {
        let registry = Registry::default();
        let stages = Stages::new(&registry);
        let m = RaftMetrics::new(&registry, stages);
        (registry, m)
    }

    #[test]
    fn a_late_heartbeat_counts_and_an_answer_times_the_first_one_out() {
        let (registry, mut m) = metrics();
        let interval = Duration::from_millis(10);
        m.heartbeat_sent(7, interval);
        m.heartbeat_sent(7, interval);
        assert_eq!(m.heartbeat_send_failures.get(), 0, "on time");
        std::thread::sleep(3 * interval);
        m.heartbeat_sent(7, interval);
        assert_eq!(m.heartbeat_send_failures.get(), 1, "later than twice the interval");
        m.heartbeat_answered(7);
        m.heartbeat_answered(7);
        let rtt = m.peer_rtt.with_label_values(&["7"]);
        assert_eq!(rtt.get_sample_count(), 1, "one probe out, one round trip");
        assert!(rtt.get_sample_sum() >= (3 * interval).as_secs_f64(), "timed from the first heartbeat");
        // A new leader starts afresh: its first heartbeat is never late.
        m.leader_changed(9);
        std::thread::sleep(3 * interval);
        m.heartbeat_sent(7, interval);
        assert_eq!(m.heartbeat_send_failures.get(), 1);
        assert!(registry.text().contains("etcd_server_leader_changes_seen_total 1"));
    }

    #[test]
    fn commits_are_timed_from_their_persist_and_losing_the_leader_is_no_change() {
        let (registry, mut m) = metrics();
        m.synced(Instant::now(), Some(5));
        m.synced(Instant::now(), Some(8));
        m.committed(6);
        m.committed(8);
        m.leader_changed(0);
        let text = registry.text();
        assert!(text.contains("raftkv_request_stage_duration_seconds_count{stage=\"commit\"} 2"), "{text}");
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_count 2"));
        assert!(text.contains("etcd_server_leader_changes_seen_total 0"));
    }
}
