//! The header tables of RFC 7541 §2.3: the static table (Appendix A) and the dynamic table
//! a decoder keeps in step with its peer's encoder, in one index space.

use std::collections::VecDeque;

/// RFC 7541 Appendix A, index 1 first.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// RFC 7541 §4.1: an entry's size counts 32 bytes of overhead beside its name and value.
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

pub struct Table {
    /// Newest first: index `STATIC.len() + 1` is the front.
    dynamic: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The sum of the dynamic entries' sizes, never above `max_size`.
    size: usize,
    /// The bound the peer's encoder last set (RFC 7541 §4.2).
    max_size: usize,
}

impl Table {
    pub fn new(max_size: usize) -> Table {
        Table { dynamic: VecDeque::new(), size: 0, max_size }
    }

    /// The entry at a 1-based `index` (RFC 7541 §2.3.3); `None` for 0 or past both tables.
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let index = index.checked_sub(1)?;
        match STATIC.get(index) {
            Some(&entry) => Some(entry),
            None => self.dynamic.get(index - STATIC.len()).map(|(name, value)| (&name[..], &value[..])),
        }
    }

    /// RFC 7541 §4.4: evicts the oldest entries until the new one fits; an entry larger than
    /// the whole table leaves it empty.
    pub fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = entry_size(&name, &value);
        if size > self.max_size {
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.dynamic.push_front((name, value));
    }

    /// RFC 7541 §4.3: a dynamic table size update, evicting what no longer fits.
    pub fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some((name, value)) = self.dynamic.pop_back() else { break };
            self.size -= entry_size(&name, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_newest_entries_within_the_bound() {
        // Entries of 34 bytes: three fit in 102 bytes.
        let mut table = Table::new(102);
        for name in [b"a", b"b", b"c", b"d"] {
            table.insert(name.to_vec(), b"v".to_vec());
        }
        assert_eq!(table.get(62), Some((&b"d"[..], &b"v"[..])));
        assert_eq!(table.get(64), Some((&b"b"[..], &b"v"[..])));
        assert_eq!(table.get(65), None);
        table.resize(68);
        assert_eq!(table.get(63), Some((&b"c"[..], &b"v"[..])));
        assert_eq!(table.get(64), None);
        table.insert(vec![b'x'; 100], Vec::new());
        assert_eq!((table.get(62), table.size), (None, 0), "an entry larger than the table empties it");
        assert_eq!(table.get(0), None);
        assert_eq!(table.get(1), Some((&b":authority"[..], &b""[..])));
        assert_eq!(table.get(61), Some((&b"www-authenticate"[..], &b""[..])));
    }
}
