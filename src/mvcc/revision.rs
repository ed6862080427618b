//! [`Revision`]: a position in the store's history, and its on-disk key encoding.
//!
//! `main` counts write transactions (one per txn that changes anything); `sub` orders the
//! changes inside one. The `kv` column family is keyed by the encoding, so iterating it walks
//! history in order — which compaction, restore and watch catch-up rely on. A plain value,
//! shared by the apply thread, API readers and the watch sync thread alike.

/// 8 bytes main (BE), `_`, 8 bytes sub (BE): etcd's bolt key layout.
pub const REVISION_KEY_LEN: usize = 17;
/// A tombstone's key is the revision key followed by this marker.
pub const TOMBSTONE_MARK: u8 = b't';

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    /// The `kv` family key of this revision; `tombstone` appends the marker.
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut key = Vec::with_capacity(REVISION_KEY_LEN + 1);
        key.extend_from_slice(&(self.main as u64).to_be_bytes());
        key.push(b'_');
        key.extend_from_slice(&(self.sub as u64).to_be_bytes());
        if tombstone {
            key.push(TOMBSTONE_MARK);
        }
        key
    }

    /// Decodes a `kv` family key into the revision and whether it marks a tombstone.
    pub fn from_key(key: &[u8]) -> Option<(Revision, bool)> {
        let tombstone = match key.len() {
            REVISION_KEY_LEN => false,
            n if n == REVISION_KEY_LEN + 1 && key[REVISION_KEY_LEN] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        let main = u64::from_be_bytes(key[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(key[9..17].try_into().ok()?) as i64;
        Some((Revision { main, sub }, tombstone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_revision() {
        let a = Revision::new(2, 0);
        let b = Revision::new(2, 1);
        let c = Revision::new(300, 0);
        assert!(a.to_key(false) < b.to_key(true) && b.to_key(true) < c.to_key(false));
        assert_eq!(Revision::from_key(&b.to_key(true)), Some((b, true)));
        assert_eq!(Revision::from_key(&c.to_key(false)), Some((c, false)));
        assert_eq!(Revision::from_key(b"short"), None);
    }
}
