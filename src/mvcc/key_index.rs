//! [`KeyIndex`]: the revision history of one key (etcd's `keyIndex`); [`super::TreeIndex`] holds
//! one per key.
//!
//! A key's history is a list of generations; a generation runs from the put that created the
//! key to the tombstone that deleted it (the last generation is open). Reads at any revision
//! not yet compacted find the version live at that revision. Plain data with no lock of its
//! own: the apply thread mutates it and API readers read it, both through the
//! [`super::Store`]'s lock.

use std::collections::HashSet;

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
        // Most keys have one generation of one revision: allocate exactly that (a first push
        // would reserve four), which halves the index's memory; later pushes grow as usual.
        if self.generations.is_empty() {
            self.generations.reserve_exact(1);
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("a generation exists");
        if g.revs.is_empty() {
            g.created = rev;
            g.revs.reserve_exact(1);
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Seeds a key whose earlier revisions were compacted away (restore from disk).
    pub(super) fn restore(created: Revision, modified: Revision, ver: i64) -> KeyIndex {
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
    pub(super) fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        // The tree never holds an index without a put; a bare default one has nothing to drop.
        if self.generations.is_empty() {
            return;
        }
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
        while gen_idx + 1 < self.generations.len() {
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

    /// Records in `available` the revisions a compaction at `at` would keep, changing nothing
    /// (etcd's `keep`: what a hash of the store at `at` covers).
    pub(super) fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at, available);
        let g = &self.generations[gen_idx];
        // The kept revision is a closed generation's tombstone: compaction would drop it.
        if rev_idx.is_some_and(|i| i + 1 == g.revs.len()) && gen_idx + 1 != self.generations.len() {
            available.remove(&g.revs[g.revs.len() - 1]);
        }
    }

    /// Only an empty open generation is left: the key is gone from history. (Only generations
    /// before the last can be non-empty-closed, so "all empty" is etcd's "one empty one".)
    pub(super) fn is_empty(&self) -> bool {
        self.generations.iter().all(Generation::is_empty)
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

#[cfg(test)]
mod tests {
    //! etcd's key_index_test.go cases, as tables over the same fixture.

    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    fn generation(created: i64, ver: i64, revs: &[Revision]) -> Generation {
        Generation { ver, created: rev(created), revs: revs.to_vec() }
    }

    fn set(revs: &[Revision]) -> HashSet<Revision> {
        revs.iter().copied().collect()
    }

    /// etcd's `newTestKeyIndex`: put 2, 4, delete 6; put 8, 10, delete 12; put 14, 14.1,
    /// delete 16; the open generation is empty.
    fn fixture() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(rev(2));
        ki.put(rev(4));
        assert!(ki.tombstone(rev(6)));
        ki.put(rev(8));
        ki.put(rev(10));
        assert!(ki.tombstone(rev(12)));
        ki.put(rev(14));
        ki.put(r(14, 1));
        assert!(ki.tombstone(rev(16)));
        ki
    }

    fn gen0() -> Generation {
        generation(2, 3, &[rev(2), rev(4), rev(6)])
    }
    fn gen1() -> Generation {
        generation(8, 3, &[rev(8), rev(10), rev(12)])
    }
    fn gen2() -> Generation {
        generation(14, 3, &[rev(14), r(14, 1), rev(16)])
    }

    #[test]
    fn put_opens_and_extends_a_generation() {
        let mut ki = KeyIndex::default();
        ki.put(rev(5));
        assert_eq!(ki, KeyIndex { modified: rev(5), generations: vec![generation(5, 1, &[rev(5)])] });
        ki.put(rev(7));
        assert_eq!(ki, KeyIndex { modified: rev(7), generations: vec![generation(5, 2, &[rev(5), rev(7)])] });
    }

    #[test]
    fn restore_seeds_one_generation() {
        let ki = KeyIndex::restore(rev(5), rev(7), 2);
        assert_eq!(ki, KeyIndex { modified: rev(7), generations: vec![generation(5, 2, &[rev(7)])] });
    }

    #[test]
    fn tombstone_closes_the_generation() {
        let mut ki = KeyIndex::default();
        ki.put(rev(5));
        assert!(ki.tombstone(rev(7)));
        let closed = generation(5, 2, &[rev(5), rev(7)]);
        assert_eq!(ki, KeyIndex { modified: rev(7), generations: vec![closed.clone(), Generation::default()] });
        ki.put(rev(8));
        ki.put(rev(9));
        assert!(ki.tombstone(rev(15)));
        let second = generation(8, 3, &[rev(8), rev(9), rev(15)]);
        assert_eq!(ki, KeyIndex { modified: rev(15), generations: vec![closed, second, Generation::default()] });
        assert!(!ki.tombstone(rev(16)), "a deleted key cannot be deleted again");
        assert_eq!(ki.modified, rev(15));
    }

    #[test]
    fn find_generation_skips_deleted_spans() {
        let ki = fixture();
        let created = |at| ki.find_generation(at).map(|g| g.created.main);
        let want = [
            (0, None),
            (1, None),
            (2, Some(2)),
            (5, Some(2)),
            (6, None),
            (7, None),
            (8, Some(8)),
            (11, Some(8)),
            (12, None),
            (13, None),
            (14, Some(14)),
            (15, Some(14)),
            (16, None),
            (17, None),
        ];
        for (at, want) in want {
            assert_eq!(created(at), want, "at {at}");
        }
    }

    #[test]
    fn get_after_compaction() {
        let mut ki = fixture();
        ki.compact(4, &mut HashSet::new());
        // (read at, Some((modified, created main, version)) if live)
        type Want = (i64, Option<(Revision, i64, i64)>);
        let want: [Want; 18] = [
            (17, None),
            (16, None),
            (15, Some((r(14, 1), 14, 2))),
            (14, Some((r(14, 1), 14, 2))),
            (13, None),
            (12, None),
            (11, Some((rev(10), 8, 2))),
            (10, Some((rev(10), 8, 2))),
            (9, Some((rev(8), 8, 1))),
            (8, Some((rev(8), 8, 1))),
            (7, None),
            (6, None),
            (5, Some((rev(4), 2, 2))),
            (4, Some((rev(4), 2, 2))),
            (3, None),
            (2, None),
            (1, None),
            (0, None),
        ];
        for (at, want) in want {
            let got = ki.get(at).map(|k| (k.modified, k.created.main, k.version));
            assert_eq!(got, want, "at {at}");
        }
    }

    #[test]
    fn since_after_compaction() {
        let mut ki = fixture();
        ki.compact(4, &mut HashSet::new());
        let all = [rev(4), rev(6), rev(8), rev(10), rev(12), r(14, 1), rev(16)];
        let want: [(i64, &[Revision]); 18] = [
            (17, &[]),
            (16, &all[6..]),
            (15, &all[6..]),
            (14, &all[5..]),
            (13, &all[5..]),
            (12, &all[4..]),
            (11, &all[4..]),
            (10, &all[3..]),
            (9, &all[3..]),
            (8, &all[2..]),
            (7, &all[2..]),
            (6, &all[1..]),
            (5, &all[1..]),
            (4, &all),
            (3, &all),
            (2, &all),
            (1, &all),
            (0, &all),
        ];
        for (at, want) in want {
            assert_eq!(ki.since(at), want, "since {at}");
        }
    }

    /// etcd's TestKeyIndexCompactAndKeep table: compact revision, the index left, the
    /// revisions kept.
    fn compaction_table() -> Vec<(i64, KeyIndex, HashSet<Revision>)> {
        let open = Generation::default;
        let ki = |generations: Vec<Generation>| KeyIndex { modified: rev(16), generations };
        let gen0_from4 = generation(2, 3, &[rev(4), rev(6)]);
        let gen1_from10 = generation(8, 3, &[rev(10), rev(12)]);
        let gen2_from14 = generation(14, 3, &[r(14, 1), rev(16)]);
        vec![
            (1, ki(vec![gen0(), gen1(), gen2(), open()]), set(&[])),
            (2, ki(vec![gen0(), gen1(), gen2(), open()]), set(&[rev(2)])),
            (3, ki(vec![gen0(), gen1(), gen2(), open()]), set(&[rev(2)])),
            (4, ki(vec![gen0_from4.clone(), gen1(), gen2(), open()]), set(&[rev(4)])),
            (5, ki(vec![gen0_from4, gen1(), gen2(), open()]), set(&[rev(4)])),
            (6, ki(vec![gen1(), gen2(), open()]), set(&[])),
            (7, ki(vec![gen1(), gen2(), open()]), set(&[])),
            (8, ki(vec![gen1(), gen2(), open()]), set(&[rev(8)])),
            (9, ki(vec![gen1(), gen2(), open()]), set(&[rev(8)])),
            (10, ki(vec![gen1_from10.clone(), gen2(), open()]), set(&[rev(10)])),
            (11, ki(vec![gen1_from10, gen2(), open()]), set(&[rev(10)])),
            (12, ki(vec![gen2(), open()]), set(&[])),
            (13, ki(vec![gen2(), open()]), set(&[])),
            (14, ki(vec![gen2_from14.clone(), open()]), set(&[r(14, 1)])),
            (15, ki(vec![gen2_from14, open()]), set(&[r(14, 1)])),
            (16, ki(vec![open()]), set(&[])),
        ]
    }

    /// `keep` reports what `compact` would keep without changing the index; then `compact`
    /// leaves the expected index and keeps the same revisions.
    fn keep_then_compact(ki: &mut KeyIndex, at: i64, want_ki: &KeyIndex, want_kept: &HashSet<Revision>) {
        let before = ki.clone();
        let mut kept = HashSet::new();
        ki.keep(at, &mut kept);
        assert_eq!(*ki, before, "keep({at}) changed the index");
        assert_eq!(kept, *want_kept, "keep({at})");
        let mut kept = HashSet::new();
        ki.compact(at, &mut kept);
        assert_eq!(*ki, *want_ki, "compact({at})");
        assert_eq!(kept, *want_kept, "compact({at})");
    }

    #[test]
    fn compact_and_keep_step_by_step() {
        let mut ki = fixture();
        for (at, want_ki, want_kept) in compaction_table() {
            keep_then_compact(&mut ki, at, &want_ki, &want_kept);
        }
        assert!(ki.is_empty(), "compacted past the last tombstone");
    }

    #[test]
    fn compact_and_keep_in_jumps() {
        let mut ki = fixture();
        for (i, (at, want_ki, want_kept)) in compaction_table().into_iter().enumerate() {
            if (i % 2 == 0 && i < 6) || (i % 2 == 1 && i > 6) {
                keep_then_compact(&mut ki, at, &want_ki, &want_kept);
            }
        }
    }

    #[test]
    fn compact_and_keep_once() {
        for (at, want_ki, want_kept) in compaction_table() {
            keep_then_compact(&mut fixture(), at, &want_ki, &want_kept);
        }
    }

    #[test]
    fn compact_past_the_last_change_keeps_it() {
        let mut ki = KeyIndex::default();
        ki.put(rev(1));
        ki.put(rev(2));
        let mut kept = HashSet::new();
        ki.compact(3, &mut kept);
        assert_eq!(ki, KeyIndex { modified: rev(2), generations: vec![generation(1, 2, &[rev(2)])] });
        assert_eq!(kept, set(&[rev(2)]));
        assert!(!ki.is_empty());
    }

    #[test]
    fn an_index_without_history_is_harmless() {
        let mut ki = KeyIndex::default();
        assert!(ki.is_empty());
        assert_eq!(ki.get(5), None);
        let mut kept = HashSet::new();
        ki.compact(5, &mut kept);
        ki.keep(5, &mut kept);
        assert!(kept.is_empty());
        assert!(!ki.tombstone(rev(3)));
    }
}
