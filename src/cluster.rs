//! Cluster membership: the members (ids, names, URLs, learners), the ids of removed members,
//! how ids are derived, and the rules a membership change must pass (etcd's
//! `membership.RaftCluster`).
//!
//! One [`Membership`] per member, shared behind a lock. Only the apply thread
//! changes it (conf change entries, member attribute and update entries, installed snapshots),
//! and it writes the new record in the same `WriteBatch` as the applied index. Any thread may
//! read it: member list, the peer transport's address book, request checks.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use rocksdb::WriteBatch;

use crate::config::Config;
use crate::pb::{Member, MembershipRecord};
use crate::storage::{Cf, Db};
use crate::{Error, Result};

/// `meta` key of the encoded [`MembershipRecord`].
pub const MEMBERS_KEY: &[u8] = b"members";

/// etcd's limit: one learner at a time keeps a slow learner from mattering to quorum math.
const MAX_LEARNERS: usize = 1;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Membership {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

/// What a raft configuration change does to the membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    AddVoter,
    AddLearner,
    /// A learner becomes a voter (raft's AddNode for an existing learner).
    Promote,
    Remove,
}

impl Membership {
    /// The members a new cluster starts with, from `--initial-cluster` (every member's name and
    /// peer URLs) or, when that is empty, this member alone.
    pub fn initial(cfg: &Config) -> Result<Membership> {
        let mut membership = Membership::default();
        let initial = cfg.initial_cluster();
        let mut found_self = false;
        for (name, peer_urls) in &initial {
            let id = Config::member_id_for(peer_urls, &cfg.initial_cluster_token);
            if *name == cfg.name {
                let mut mine = cfg.initial_advertise_peer_urls.clone();
                mine.sort();
                if mine != *peer_urls {
                    return Err(Error::Config(format!(
                        "--initial-cluster has {name}={} but --initial-advertise-peer-urls is {}",
                        peer_urls.join(","),
                        cfg.initial_advertise_peer_urls.join(",")
                    )));
                }
                found_self = true;
            }
            if membership.members.contains_key(&id) {
                return Err(Error::Config(format!("--initial-cluster: member {name} duplicates another's peer URLs")));
            }
            let member = Member { id, name: name.clone(), peer_urls: peer_urls.clone(), ..Default::default() };
            membership.members.insert(id, member);
        }
        if !found_self {
            return Err(Error::Config(format!(
                "--initial-cluster must include this member ({}) with its --initial-advertise-peer-urls",
                cfg.name
            )));
        }
        Ok(membership)
    }

    /// The membership recorded in `db` (empty for a member that has not joined yet).
    pub fn load(db: &Db) -> Result<Membership> {
        match db.get(Cf::Meta, MEMBERS_KEY)? {
            None => Ok(Membership::default()),
            Some(bytes) => {
                let record = MembershipRecord::decode(&bytes[..])
                    .map_err(|e| Error::Decode { what: "membership record", detail: e.to_string() })?;
                Ok(Membership::from_record(record))
            }
        }
    }

    pub fn from_record(record: MembershipRecord) -> Membership {
        Membership {
            members: record.members.into_iter().map(|m| (m.id, m)).collect(),
            removed: record.removed.into_iter().collect(),
        }
    }

    pub fn record(&self) -> MembershipRecord {
        MembershipRecord {
            members: self.members.values().cloned().collect(),
            removed: self.removed.iter().copied().collect(),
        }
    }

    /// Stages writing this membership into `batch`.
    pub fn save(&self, db: &Db, batch: &mut WriteBatch) {
        batch.put_cf(db.cf(Cf::Meta), MEMBERS_KEY, self.record().encode_to_vec());
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Voting members' ids.
    pub fn voters(&self) -> Vec<u64> {
        self.members.values().filter(|m| !m.is_learner).map(|m| m.id).collect()
    }

    /// etcd's `ValidateConfigurationChange`: whether `change` of `member` is allowed now. Checked
    /// before proposing, and again when the entry is applied (the membership may have moved on).
    pub fn check(&self, change: Change, member: &Member) -> Result<()> {
        if self.removed.contains(&member.id) {
            return Err(Error::MemberNotFound);
        }
        match change {
            Change::AddVoter | Change::AddLearner => {
                if self.members.contains_key(&member.id) {
                    return Err(Error::MemberExists);
                }
                self.check_urls_unused(member.id, &member.peer_urls)?;
                let learners = self.members.values().filter(|m| m.is_learner).count();
                if change == Change::AddLearner && learners >= MAX_LEARNERS {
                    return Err(Error::TooManyLearners);
                }
            }
            Change::Promote => match self.members.get(&member.id) {
                None => return Err(Error::MemberNotFound),
                Some(m) if !m.is_learner => return Err(Error::MemberNotLearner),
                Some(_) => {}
            },
            Change::Remove => {
                if !self.members.contains_key(&member.id) {
                    return Err(Error::MemberNotFound);
                }
            }
        }
        Ok(())
    }

    /// Checks a peer-URL update of member `id` (no raft change: only the record moves).
    pub fn check_update(&self, id: u64, peer_urls: &[String]) -> Result<()> {
        if !self.members.contains_key(&id) {
            return Err(Error::MemberNotFound);
        }
        check_urls(peer_urls)?;
        self.check_urls_unused(id, peer_urls)
    }

    fn check_urls_unused(&self, id: u64, peer_urls: &[String]) -> Result<()> {
        let taken = self.members.values().filter(|m| m.id != id).flat_map(|m| m.peer_urls.iter());
        for url in taken {
            if peer_urls.contains(url) {
                return Err(Error::PeerUrlExists);
            }
        }
        Ok(())
    }

    /// Applies a change that passed [`Membership::check`].
    pub fn apply(&mut self, change: Change, member: Member) {
        match change {
            Change::AddVoter | Change::AddLearner => {
                let is_learner = change == Change::AddLearner;
                self.members.insert(member.id, Member { is_learner, ..member });
            }
            Change::Promote => {
                if let Some(m) = self.members.get_mut(&member.id) {
                    m.is_learner = false;
                }
            }
            Change::Remove => {
                self.members.remove(&member.id);
                self.removed.insert(member.id);
            }
        }
    }

    pub fn update_peer_urls(&mut self, id: u64, peer_urls: Vec<String>) {
        if let Some(m) = self.members.get_mut(&id) {
            m.peer_urls = peer_urls;
        }
    }

    /// Records the name and client URLs a member published about itself.
    pub fn set_attributes(&mut self, id: u64, name: String, client_urls: Vec<String>) {
        if let Some(m) = self.members.get_mut(&id) {
            m.name = name;
            m.client_urls = client_urls;
        }
    }
}

/// etcd's URL rules for members: `http://host:port`, nothing after the port.
pub fn check_urls(urls: &[String]) -> Result<()> {
    if urls.is_empty() {
        return Err(Error::MemberBadUrls);
    }
    for url in urls {
        let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
            return Err(Error::MemberBadUrls);
        };
        let host_port = rest.trim_end_matches('/');
        let valid_port =
            host_port.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid_port || host_port.contains('/') {
            return Err(Error::MemberBadUrls);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str) -> Member {
        Member { id, name: format!("m{id}"), peer_urls: vec![url.into()], ..Default::default() }
    }

    #[test]
    fn initial_cluster_ids_are_etcds() {
        let mut cfg = Config::new("infra1", "x");
        cfg.initial_advertise_peer_urls = vec!["http://127.0.0.1:2380".into()];
        cfg.initial_cluster = "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380".into();
        let m = Membership::initial(&cfg).unwrap();
        assert_eq!(m.voters().len(), 2);
        assert!(m.members().iter().any(|m| m.name == "infra2" && m.peer_urls == ["http://127.0.0.1:22380"]));
        cfg.initial_advertise_peer_urls = vec!["http://127.0.0.1:9999".into()];
        let err = Membership::initial(&cfg).unwrap_err().to_string();
        assert!(err.contains("--initial-advertise-peer-urls"), "{err}");
    }

    #[test]
    fn changes_follow_etcds_rules() {
        let mut m = Membership::default();
        m.apply(Change::AddVoter, member(1, "http://a:1"));
        assert!(matches!(m.check(Change::AddVoter, &member(1, "http://b:1")), Err(Error::MemberExists)));
        assert!(matches!(m.check(Change::AddVoter, &member(2, "http://a:1")), Err(Error::PeerUrlExists)));
        assert!(matches!(m.check(Change::Promote, &member(1, "")), Err(Error::MemberNotLearner)));
        m.apply(Change::AddLearner, member(2, "http://b:1"));
        assert!(matches!(m.check(Change::AddLearner, &member(3, "http://c:1")), Err(Error::TooManyLearners)));
        m.apply(Change::Promote, member(2, ""));
        assert_eq!(m.voters(), [1, 2]);
        m.apply(Change::Remove, member(2, ""));
        assert!(matches!(m.check(Change::AddVoter, &member(2, "http://b:1")), Err(Error::MemberNotFound)));
        assert!(matches!(m.check(Change::Remove, &member(9, "")), Err(Error::MemberNotFound)));
        assert_eq!(Membership::from_record(m.record()), m);
    }

    #[test]
    fn member_urls_must_be_host_and_port() {
        assert!(check_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        for bad in ["127.0.0.1:2380", "http://127.0.0.1", "http://:80", "http://h:80/path", "unix://x:1"] {
            assert!(matches!(check_urls(&[bad.into()]), Err(Error::MemberBadUrls)), "{bad}");
        }
        assert!(check_urls(&[]).is_err());
    }
}
