//! [`KeyIndex`]: the revision history of one key, and [`TreeIndex`]: every key's, ordered by key
//! (etcd's `keyIndex` and `treeIndex`).
//!
//! A key's history is a list of generations; a generation runs from the put that created the
//! key to the tombstone that deleted it (the last generation is open). Reads at any revision
//! not yet compacted find the version live at that revision. Plain data: the [`super::Store`]
//! guards it with its lock.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::revision::Revision;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Generation {
    /// Number of puts in this generation, counting compacted ones.
    ver: i64,
    created: Revision,
    revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the last revision with `main <= at`, if any.
    fn last_at_or_before(&self, at: i64) -> Option<usize> {
        self.revs.iter().rposition(|r| r.main <= at)
    }
}

/// What a key looked like at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyIndex {
    modified: Revision,
    generations: Vec<Generation>,
}

impl KeyIndex {
    /// Records a put at `rev`, opening a generation if the key was absent.
    pub fn put(&mut self, rev: Revision) {
        debug_assert!(rev > self.modified, "put at {rev:?} after {:?}", self.modified);
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("a generation exists");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Seeds a key whose earlier revisions were compacted away (restore from disk).
    fn restore(created: Revision, modified: Revision, ver: i64) -> KeyIndex {
        KeyIndex { modified, generations: vec![Generation { ver, created, revs: vec![modified] }] }
    }

    /// Records a delete at `rev`; false if the key is not live.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return false,
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// The key as of revision `at`, if it was live then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let g = self.find_generation(at)?;
        let n = g.last_at_or_before(at)?;
        Some(KeyAt { modified: g.revs[n], created: g.created, version: g.ver - (g.revs.len() - n - 1) as i64 })
    }

    /// Revisions at or after `since` (one per main revision), for watchers catching up.
    pub fn since(&self, since: i64) -> Vec<Revision> {
        let since = Revision::new(since, 0);
        let mut gi = self.generations.len().saturating_sub(1);
        while gi > 0 {
            let g = &self.generations[gi];
            if !g.is_empty() && since > g.created {
                break;
            }
            gi -= 1;
        }
        let mut revs: Vec<Revision> = Vec::new();
        for g in &self.generations[gi..] {
            for &r in g.revs.iter().filter(|r| **r >= since) {
                match revs.last_mut() {
                    Some(last) if last.main == r.main => *last = r,
                    _ => revs.push(r),
                }
            }
        }
        revs
    }

    /// Drops history before `at`, keeping the revision live at `at`; records the revisions
    /// still needed in `available`.
    fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        let (gen_idx, rev_idx) = self.do_compact(at, available);
        let mut gen_idx = gen_idx;
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            // A generation reduced to its tombstone is history nobody can read any more.
            if g.revs.len() == 1 && gen_idx != last {
                available.remove(&g.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
    }

    fn do_compact(&self, at: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let g = &self.generations[gen_idx];
            if g.revs.last().is_some_and(|tomb| tomb.main > at) {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.last_at_or_before(at);
        if let Some(i) = rev_idx {
            available.insert(g.revs[i]);
        }
        (gen_idx, rev_idx)
    }

    /// Only an empty open generation is left: the key is gone from history.
    fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(tomb)) = (g.revs.first(), g.revs.last()) else { continue };
            // A closed generation whose tombstone is at or before `at`: the key was deleted.
            if i != last && tomb.main <= at {
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }
}

/// Every key's history, ordered by key.
#[derive(Default)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.keys.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.keys.insert(key.to_vec(), ki);
            }
        }
    }

    /// Records a delete; false if the key was not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Seeds `key` from its oldest surviving record, or continues its history (restore).
    pub fn restore(&mut self, key: &[u8], rev: Revision, created: i64, version: i64, tombstone: bool) -> bool {
        match self.keys.get_mut(key) {
            Some(ki) if tombstone => ki.tombstone(rev),
            Some(ki) => {
                ki.put(rev);
                true
            }
            // A tombstone first means its puts were compacted: nothing to remember.
            None if tombstone => false,
            None => {
                self.keys.insert(key.to_vec(), KeyIndex::restore(Revision::new(created, 0), rev, version));
                true
            }
        }
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.keys.get(key)?.get(at)
    }

    /// Keys in range live at `at`, with their state: the first `limit` (0 = all) and the
    /// total count.
    pub fn range(&self, key: &[u8], end: Option<&[u8]>, at: i64, limit: usize) -> (Vec<(&[u8], KeyAt)>, usize) {
        let Some(end) = end else {
            return match self.get(key, at) {
                Some(k) => (vec![(self.keys.get_key_value(key).expect("key present").0.as_slice(), k)], 1),
                None => (Vec::new(), 0),
            };
        };
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        if !end.is_empty() && end <= key {
            return (Vec::new(), 0);
        }
        let mut found = Vec::new();
        let mut count = 0;
        for (k, ki) in self.keys.range::<[u8], _>((Bound::Included(key), upper)) {
            if let Some(state) = ki.get(at) {
                count += 1;
                if limit == 0 || found.len() < limit {
                    found.push((k.as_slice(), state));
                }
            }
        }
        (found, count)
    }

    /// Compacts every key at `at`; returns the revisions that must stay on disk.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.keys.retain(|_, ki| {
            ki.compact(at, &mut available);
            !ki.is_empty()
        });
        available
    }

    /// Revisions of keys in range at or after `since`, in revision order (watch catch-up).
    pub fn since(&self, key: &[u8], end: Option<&[u8]>, since: i64) -> Vec<Revision> {
        let mut revs: Vec<Revision> = match end {
            None => self.keys.get(key).map(|ki| ki.since(since)).unwrap_or_default(),
            Some(end) => {
                let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
                if !end.is_empty() && end <= key {
                    return Vec::new();
                }
                self.keys.range::<[u8], _>((Bound::Included(key), upper)).flat_map(|(_, ki)| ki.since(since)).collect()
            }
        };
        revs.sort_unstable();
        revs
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// etcd's key_index_test fixture: foo put at 2, 4, deleted at 6, put at 8, 10, deleted at
    /// 12, put at 14, 14.1, 16.
    fn fixture() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(rev(2));
        ki.put(rev(4));
        assert!(ki.tombstone(rev(6)));
        ki.put(rev(8));
        ki.put(rev(10));
        assert!(ki.tombstone(rev(12)));
        ki.put(rev(14));
        ki.put(Revision::new(14, 1));
        ki.put(rev(16));
        ki
    }

    #[test]
    fn get_follows_generations() {
        let ki = fixture();
        let modified = |at| ki.get(at).map(|k| (k.modified, k.created.main, k.version));
        assert_eq!(modified(1), None);
        assert_eq!(modified(2), Some((rev(2), 2, 1)));
        assert_eq!(modified(5), Some((rev(4), 2, 2)));
        assert_eq!(modified(6), None, "deleted at 6");
        assert_eq!(modified(7), None);
        assert_eq!(modified(9), Some((rev(8), 8, 1)));
        assert_eq!(modified(12), None);
        assert_eq!(modified(14), Some((Revision::new(14, 1), 14, 2)));
        assert_eq!(modified(100), Some((rev(16), 14, 3)));
    }

    #[test]
    fn since_returns_one_revision_per_main() {
        let ki = fixture();
        assert_eq!(ki.since(13), vec![Revision::new(14, 1), rev(16)]);
        assert_eq!(ki.since(1).len(), 8);
        assert_eq!(ki.since(7), vec![rev(8), rev(10), rev(12), Revision::new(14, 1), rev(16)]);
    }

    #[test]
    fn compact_keeps_what_is_readable() {
        let mut ki = fixture();
        let mut available = HashSet::new();
        ki.compact(5, &mut available);
        assert_eq!(available, HashSet::from([rev(4)]));
        assert_eq!(ki.get(5).unwrap().modified, rev(4));
        let mut available = HashSet::new();
        ki.compact(7, &mut available);
        assert!(available.is_empty(), "the tombstoned generation is dropped: {available:?}");
        assert_eq!(ki.get(9).unwrap().modified, rev(8));
        let mut available = HashSet::new();
        ki.compact(13, &mut available);
        assert!(available.is_empty());
        assert_eq!(ki.generations.len(), 1);
        let mut available = HashSet::new();
        ki.compact(15, &mut available);
        assert_eq!(available, HashSet::from([Revision::new(14, 1)]));
        assert_eq!(ki.get(100).unwrap().version, 3, "versions survive compaction");
    }

    #[test]
    fn tree_compaction_forgets_deleted_keys() {
        let mut tree = TreeIndex::default();
        tree.put(b"a", rev(2));
        tree.put(b"b", rev(3));
        assert!(tree.tombstone(b"a", rev(4)));
        assert!(!tree.tombstone(b"a", rev(5)), "deleting a deleted key");
        let available = tree.compact(4);
        assert_eq!(available, HashSet::from([rev(3)]));
        assert_eq!(tree.len(), 1);
        let (found, count) = tree.range(b"a", Some(&[]), 10, 0);
        assert_eq!((found.len(), count), (1, 1));
    }

    #[test]
    fn range_limits_but_counts_all() {
        let mut tree = TreeIndex::default();
        for (i, k) in [b"a1", b"a2", b"a3", b"b1"].iter().enumerate() {
            tree.put(*k, rev(2 + i as i64));
        }
        let (found, count) = tree.range(b"a", Some(b"b"), 10, 2);
        assert_eq!((found.len(), count), (2, 3));
        let (found, count) = tree.range(b"a2", Some(b"a1"), 10, 0);
        assert_eq!((found.len(), count), (0, 0), "end before start is empty");
        let (_, count) = tree.range(b"a1", Some(b"b"), 3, 0);
        assert_eq!(count, 2, "at revision 3 only a1 and a2 existed");
    }
}
