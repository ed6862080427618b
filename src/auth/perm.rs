//! etcd's range permission cache (`auth/range_perm_cache.go`): each user's read and write
//! permissions merged over their roles, and the checks of a key or a key range against them.
//!
//! Built by the apply thread with every change of the store (so a cached set never outlives
//! the auth revision it was built at) and read by client threads and the apply thread.
//!
//! The semantics are etcd's interval tree's, reproduced literally rather than by merging
//! intervals, because they differ at the edges: keys compare as etcd's `BytesAffineComparable`
//! (an empty key is +∞), a permission with `range_end` `"\0"` runs to +∞, one without
//! `range_end` is the point `[key, key + "\0")`; a single key is allowed when it meets one
//! permission (`Intersects`), a range when the permissions it meets cover it without a gap
//! (`Contains`).

use std::cmp::Ordering;

use crate::pb::{Permission, PermissionType, Role, User};

/// One permission as etcd's interval: `[begin, end)`, an empty bound meaning +∞.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

/// etcd's `BytesAffineComparable.Compare`: the empty key is above every other.
fn affine(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

impl Interval {
    fn point(key: &[u8]) -> Interval {
        Interval { begin: key.to_vec(), end: [key, &[0]].concat() }
    }

    /// A request's or a permission's range: `range_end` `"\0"` (from the key on) runs to +∞.
    fn range(key: &[u8], range_end: &[u8]) -> Interval {
        let end = if range_end == [0] { Vec::new() } else { range_end.to_vec() };
        Interval { begin: key.to_vec(), end }
    }

    fn of(perm: &Permission) -> Interval {
        if perm.range_end.is_empty() {
            Interval::point(&perm.key)
        } else {
            Interval::range(&perm.key, &perm.range_end)
        }
    }

    /// etcd's `Interval.Compare` as the tree's visit uses it: the two overlap.
    fn meets(&self, other: &Interval) -> bool {
        affine(&self.begin, &other.end) == Ordering::Less && affine(&other.begin, &self.end) == Ordering::Less
    }
}

/// Permissions of one kind, sorted by where they begin (the tree's visiting order).
#[derive(Debug, Default)]
struct Intervals(Vec<Interval>);

impl Intervals {
    fn insert(&mut self, ivl: Interval) {
        let at = self.0.partition_point(|i| affine(&i.begin, &ivl.begin) != Ordering::Greater);
        self.0.insert(at, ivl);
    }

    /// etcd's `IntervalTree.Intersects`.
    fn intersects(&self, ivl: &Interval) -> bool {
        self.0.iter().any(|i| i.meets(ivl))
    }

    /// etcd's `IntervalTree.Contains`: the permissions meeting `ivl`, in order, leave no gap
    /// and reach from its begin to its end.
    fn contains(&self, ivl: &Interval) -> bool {
        let mut met = self.0.iter().filter(|i| i.meets(ivl));
        let Some(first) = met.next() else { return false };
        let (min_begin, mut max_end) = (&first.begin, &first.end);
        for i in met {
            if affine(max_end, &i.begin) == Ordering::Less {
                return false;
            }
            if affine(&i.end, max_end) == Ordering::Greater {
                max_end = &i.end;
            }
        }
        affine(max_end, &ivl.end) != Ordering::Less && affine(min_begin, &ivl.begin) != Ordering::Greater
    }
}

/// One user's permissions over all its roles (etcd's `unifiedRangePermissions`).
#[derive(Debug, Default)]
pub struct UserPerms {
    read: Intervals,
    write: Intervals,
}

impl UserPerms {
    /// etcd's `getMergedPerms`; roles the user names but the store lacks give nothing.
    pub fn merged<'a>(user: &User, role: impl Fn(&str) -> Option<&'a Role>) -> UserPerms {
        let mut perms = UserPerms::default();
        for perm in user.roles.iter().filter_map(|name| role(name)).flat_map(|r| &r.key_permission) {
            let ivl = Interval::of(perm);
            match PermissionType::try_from(perm.perm_type) {
                Ok(PermissionType::Read) => perms.read.insert(ivl),
                Ok(PermissionType::Write) => perms.write.insert(ivl),
                Ok(PermissionType::Readwrite) => {
                    perms.read.insert(ivl.clone());
                    perms.write.insert(ivl);
                }
                Err(_) => {}
            }
        }
        perms
    }

    /// etcd's `isRangeOpPermitted`: a single key when `range_end` is empty, else the range.
    pub fn permits(&self, write: bool, key: &[u8], range_end: &[u8]) -> bool {
        let set = if write { &self.write } else { &self.read };
        if range_end.is_empty() {
            set.intersects(&Interval::point(key))
        } else {
            set.contains(&Interval::range(key, range_end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(list: &[(&str, &str, PermissionType)]) -> UserPerms {
        let role = Role {
            name: b"r".to_vec(),
            key_permission: list
                .iter()
                .map(|(k, e, t)| Permission {
                    perm_type: *t as i32,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                })
                .collect(),
        };
        let user = User { roles: vec!["r".into(), "missing".into()], ..Default::default() };
        UserPerms::merged(&user, |name| (name == "r").then_some(&role))
    }

    /// etcd's `TestRangePermission` and `TestKeyPermission` cases, plus the edges where a
    /// merge of intervals would answer otherwise than etcd's tree.
    #[test]
    fn ranges_and_keys_as_etcds_tree() {
        use PermissionType::*;
        let p = perms(&[("a", "c", Read), ("x", "z", Read), ("c", "f", Readwrite), ("k", "", Write)]);
        assert!(p.permits(false, b"a", b"f"));
        assert!(p.permits(false, b"b", b"e"));
        assert!(!p.permits(false, b"a", b"g"));
        assert!(!p.permits(false, b"e", b"y"));
        assert!(p.permits(false, b"x", b"z"));
        assert!(p.permits(false, b"a", b""));
        assert!(!p.permits(false, b"f", b""));
        assert!(p.permits(true, b"d", b""));
        assert!(!p.permits(true, b"a", b""));
        assert!(p.permits(true, b"k", b""));
        assert!(!p.permits(true, b"k", b"l"));
        assert!(!p.permits(false, b"k", b""));
        // From-key on both sides.
        let from = perms(&[("m", "\0", Read)]);
        assert!(from.permits(false, b"m", b"\0"));
        assert!(from.permits(false, b"zzz", b"\0"));
        assert!(from.permits(false, b"n", b"p"));
        assert!(!from.permits(false, b"a", b"\0"));
        assert!(!from.permits(false, b"l", b""));
        // The empty range at the seam of two adjacent permissions meets neither.
        let seam = perms(&[("a", "b", Read), ("b", "c", Read)]);
        assert!(seam.permits(false, b"a", b"c"));
        assert!(!seam.permits(false, b"b", b"b"));
        assert!(!UserPerms::default().permits(false, b"a", b""));
    }
}
