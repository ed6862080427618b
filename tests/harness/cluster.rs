//! In-process clusters: several [`Node`]s in this process, each on its own RocksDB in a temp
//! dir, talking over real TCP on 127.0.0.1. Members can be stopped, restarted on their data,
//! added, and cut off from each other with the transport's test switch.

use std::path::Path;
use std::time::{Duration, Instant};

use raftkv::transport::Direction;
use raftkv::{Config, Node};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub cfgs: Vec<Config>,
    pub nodes: Vec<Option<Node>>,
}

/// Member `name`'s config: peers on `port`, in `initial_cluster`, data under `dir`.
pub fn member_config(dir: &Path, name: &str, port: u16, initial_cluster: &str) -> Config {
    let url = format!("http://127.0.0.1:{port}");
    let mut cfg = Config::new(name, dir.join(name));
    cfg.initial_advertise_peer_urls = vec![url.clone()];
    cfg.listen_peer_urls = vec![url];
    cfg.advertise_client_urls = vec![format!("http://{name}.invalid:2379")];
    cfg.initial_cluster = initial_cluster.to_string();
    cfg.request_timeout_ms = 3_000;
    cfg
}

impl Cluster {
    /// `n` members `m0..`, each config adjusted by `tune`, started and agreed on a leader.
    pub fn start(n: usize, tune: impl Fn(&mut Config)) -> Cluster {
        super::init_logs();
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..n).map(|_| super::free_port()).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                let mut cfg = member_config(dir.path(), &format!("m{i}"), ports[i], &initial.join(","));
                tune(&mut cfg);
                cfg
            })
            .collect();
        let nodes = cfgs.iter().map(|cfg| Some(Node::start(cfg.clone()).expect("start member"))).collect();
        let cluster = Cluster { dir, cfgs, nodes };
        cluster.wait_for_leader(Duration::from_secs(10));
        cluster
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("member running")
    }

    pub fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Waits until every running member agrees on one leader; returns its index.
    pub fn wait_for_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders: Vec<u64> = self.running().map(|(_, n)| n.leader_id()).collect();
            if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                if let Some((i, _)) = self.running().find(|(_, n)| n.member_id() == leaders[0]) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {within:?}: {leaders:x?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("member running");
        node.stop().expect("clean stop");
    }

    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        self.nodes[i] = Some(Node::start(self.cfgs[i].clone()).expect("restart member"));
    }

    /// Cuts member `i` off from every other member, both ways, as a network partition would.
    pub fn isolate(&self, i: usize) {
        let id = self.node(i).member_id();
        let others: Vec<u64> = self.running().filter(|(j, _)| *j != i).map(|(_, n)| n.member_id()).collect();
        self.node(i).partition_from(&others, Direction::Both);
        for (_, node) in self.running().filter(|(j, _)| *j != i) {
            node.partition_from(&[id], Direction::Both);
        }
    }

    pub fn heal(&self) {
        for (_, node) in self.running() {
            node.heal_partition();
        }
    }

    /// Waits until every running member has applied the same index and holds the same data.
    pub fn wait_converged(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let applied: Vec<u64> = self.running().map(|(_, n)| n.applied_index()).collect();
            let hashes: Vec<u32> = self.running().map(|(_, n)| n.hash().unwrap().hash).collect();
            let revisions: Vec<i64> = self.running().map(|(_, n)| n.revision()).collect();
            if applied.iter().all(|a| *a == applied[0]) && hashes.iter().all(|h| *h == hashes[0]) {
                assert!(revisions.iter().all(|r| *r == revisions[0]), "{revisions:?}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members did not converge: applied {applied:?} hashes {hashes:x?} revisions {revisions:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            let _ = node.stop();
        }
    }
}
