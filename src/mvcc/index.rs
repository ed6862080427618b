//! [`TreeIndex`]: every key's [`KeyIndex`], ordered by key (etcd's `treeIndex`), answering
//! which revision of which key is live at a revision, for ranges, deletes, compaction and watch
//! catch-up.
//!
//! Plain data with no lock of its own: the [`super::Store`] keeps it under its `RwLock`, the
//! apply thread changing it (one operation per write-lock hold) and API reader threads ranging
//! over it under the read lock.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::key_index::{KeyAt, KeyIndex};
use super::revision::Revision;

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
            let found = self.keys.get_key_value(key).and_then(|(k, ki)| Some((k.as_slice(), ki.get(at)?)));
            let count = usize::from(found.is_some());
            return (found.into_iter().collect(), count);
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

    /// The revisions a compaction at `at` would keep, changing nothing (etcd's `Keep`, for
    /// hashing the store as of `at`).
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at, &mut available);
        }
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

    #[test]
    fn compaction_forgets_deleted_keys() {
        let mut tree = TreeIndex::default();
        tree.put(b"a", rev(2));
        tree.put(b"b", rev(3));
        assert!(tree.tombstone(b"a", rev(4)));
        assert!(!tree.tombstone(b"a", rev(5)), "deleting a deleted key");
        assert!(!tree.tombstone(b"zz", rev(5)), "deleting a key never written");
        assert_eq!(tree.keep(4), HashSet::from([rev(3)]));
        assert_eq!(tree.len(), 2, "keep changes nothing");
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
        let (found, count) = tree.range(b"a2", Some(b"a2"), 10, 0);
        assert_eq!((found.len(), count), (0, 0), "end equal to start is empty");
        let (_, count) = tree.range(b"a1", Some(b"b"), 3, 0);
        assert_eq!(count, 2, "at revision 3 only a1 and a2 existed");
    }

    #[test]
    fn single_key_reads() {
        let mut tree = TreeIndex::default();
        tree.put(b"a", rev(2));
        tree.put(b"ab", rev(3));
        let (found, count) = tree.range(b"a", None, 10, 0);
        assert_eq!((found, count), (vec![(&b"a"[..], tree.get(b"a", 10).unwrap())], 1), "not a prefix read");
        assert_eq!(tree.range(b"a", None, 1, 0), (Vec::new(), 0), "before it was written");
        assert_eq!(tree.range(b"nope", None, 10, 0), (Vec::new(), 0));
    }

    #[test]
    fn since_merges_keys_in_revision_order() {
        let mut tree = TreeIndex::default();
        tree.put(b"a", rev(2));
        tree.put(b"b", rev(3));
        tree.put(b"a", rev(4));
        assert!(tree.tombstone(b"b", rev(5)));
        tree.put(b"c", rev(6));
        assert_eq!(tree.since(b"a", Some(b"c"), 3), vec![rev(3), rev(4), rev(5)]);
        assert_eq!(tree.since(b"a", Some(&[]), 5), vec![rev(5), rev(6)]);
        assert_eq!(tree.since(b"a", None, 0), vec![rev(2), rev(4)]);
    }
}
