//! A read-only reader of etcd's backend file (a bbolt database), so that raftkv can restore
//! from what `etcdctl snapshot save` wrote and report what `etcdctl snapshot status` reports.
//!
//! No crate reads bbolt, so this is our own reader of the few pieces of the format it needs,
//! learnt from bbolt 1.3.6 (`page.go`, `db.go`, `bucket.go`, `node.go`). Every number is
//! little-endian (bbolt writes its structs in the machine's order; etcd runs on little-endian
//! machines), and every length, offset and page id taken from the file is checked before it
//! is used: a damaged or hostile file gives [`storage::Error::Corrupt`], never a panic, an
//! allocation beyond the file's size (or 256 MiB for one page) or an endless walk.
//!
//! - **Pages.** The file is an array of pages of the meta page's `page_size` bytes; page `n`
//!   starts at `n × page_size`. A page starts with a 16-byte header: `id` u64 (its own page
//!   number, checked), `flags` u16 (0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist),
//!   `count` u16 (elements), `overflow` u32 (how many pages after this one it also spans: a
//!   page with a large value is `overflow + 1` pages long).
//! - **Meta pages.** Pages 0 and 1; after the header: `magic` u32 (0xED0CDAED), `version` u32
//!   (2), `page_size` u32, `flags` u32, the root bucket's header (16 bytes, below), `freelist`
//!   u64, `pgid` u64 (the high-water mark: pages in use, so the database is `pgid × page_size`
//!   bytes, what etcd reports as its size), `txid` u64, `checksum` u64 (FNV-1a 64 of the 56
//!   bytes from `magic` to `txid`). As bbolt, the page size comes from page 0 and the valid
//!   meta with the higher `txid` is the current one; when page 0 is damaged, page 1 is looked
//!   for at each page size a meta page there may claim.
//! - **Branch pages**: `count` elements of 16 bytes after the header, `pos` u32, `ksize` u32,
//!   `pgid` u64 (the child page). Only `pgid` is used: the children are walked in order.
//! - **Leaf pages**: `count` elements of 16 bytes, `flags` u32 (0x01: the value is a nested
//!   bucket), `pos` u32, `ksize` u32, `vsize` u32; the key is `ksize` bytes at `pos` bytes
//!   after the start of its element, the value follows the key.
//! - **Buckets.** A bucket is a B+tree of branch and leaf pages; walking it depth-first in
//!   element order gives its keys in bbolt's cursor order. Its header (the value of its key
//!   in the parent bucket, 16 bytes) is `root` u64 (the root page) and `sequence` u64. A
//!   `root` of 0 marks an inline bucket: its only page (a leaf, header and elements) follows
//!   the header inside the value. The meta page's root bucket holds the top-level buckets.
//!
//! The walk marks each page it reads and refuses one reached twice (in a sound file every
//! page has one parent), so a cycle ends at once; the depth of branch pages is bounded too.
//!
//! etcd's buckets read by [`read_etcd`] (etcd 3.4's `mvcc/kvstore.go`, `lease/lessor.go`,
//! `auth/store.go`; 3.5 keeps them): `key` (revision keys → `mvccpb.KeyValue`), `lease`
//! (lease id, u64 BE → `leasepb.Lease`), `meta` (`scheduledCompactRev` and
//! `finishedCompactRev`, 17-byte revision keys, and `consistent_index`, u64 BE; the rest, such
//! as 3.5's `term` and `confState`, describe the old cluster's raft log), `auth`
//! (`authRevision` u64 BE, `authEnabled` one byte), `authUsers` and `authRoles` (name →
//! `authpb.User` / `authpb.Role`). `members`, `members_removed`, `cluster` and `alarm` are not
//! read: a restore starts a new cluster. [`etcd_status`] reads every bucket.
//!
//! A file `etcdctl snapshot save` wrote ends with the SHA-256 of the database (its size is
//! then 32 more than a multiple of 512); [`read_etcd`] checks it, as `etcdctl snapshot
//! restore` does, and a file without one (a data dir's `member/snap/db`) is read as it is.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;

use super::{corrupt, io_error, FileStatus, RowSink};
use crate::auth;
use crate::mvcc::revision::REVISION_KEY_LEN;
use crate::mvcc::Revision;
use crate::pb::{KeyValue, LeaseRecord, Role, User};
use crate::storage::{self, meta, Cf};
use crate::{Error, Result};

const PAGE_HEADER_BYTES: usize = 16;
/// Branch and leaf elements have the same size.
const ELEMENT_BYTES: usize = 16;
const BUCKET_HEADER_BYTES: usize = 16;
/// The page header and the meta fields up to and including the checksum.
const META_PAGE_BYTES: usize = PAGE_HEADER_BYTES + 64;
/// The checksummed meta fields: `magic` up to `txid`.
const META_CHECKSUMMED: std::ops::Range<usize> = PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
/// A leaf element's flag: its value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;

/// Page sizes a meta page may claim: powers of two from 512 bytes (the smallest disk sector)
/// to 64 KiB (the largest memory page of the machines etcd runs on, where bbolt's default
/// page size is the memory page size).
const PAGE_BYTES_MIN: u32 = 512;
const PAGE_BYTES_MAX: u32 = 64 << 10;

/// Largest page with its overflow pages. bbolt puts a value too big for a page on a page that
/// spans as many pages as it needs, so this bounds a value: etcd refuses requests above
/// `--max-request-bytes` (1.5 MiB unless raised; it warns above 10 MiB), so no file of etcd's
/// comes near it, while it bounds what a corrupt `overflow` makes the reader allocate.
const PAGE_SPAN_BYTES_MAX: u64 = 256 << 20;

/// Deepest nesting of branch pages. A bbolt page holds at least two elements, so a tree of
/// this depth would have 2^32 pages; a deeper one is damaged, and the bound keeps the
/// recursion's stack small.
const DEPTH_MAX: usize = 32;

/// Most top-level buckets read. etcd 3.4 and 3.5 make about ten; this bounds what a damaged
/// root bucket makes us keep in memory (each entry holds at most an inline page).
const BUCKETS_MAX: usize = 1024;

const SHA256_BYTES: u64 = 32;

/// What [`read_etcd`] learnt from the file besides the rows it handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EtcdInfo {
    /// etcd's `consistent_index`: the old cluster's last applied raft index (0 if absent).
    pub consistent_index: u64,
    /// Whether authentication was enabled (`auth/authEnabled`).
    pub auth_enabled: bool,
    /// The newest main revision in the `key` bucket, which the restored store continues from
    /// (0 for an empty one).
    pub revision: i64,
}

/// True if `path` starts with a bbolt meta page (etcd's backend file).
///
/// Only the page header's meta flag and the magic number are looked at, so that a bbolt file
/// with a damaged meta page is still recognised and [`read_etcd`] reports the damage.
pub fn is_bbolt(path: &Path) -> Result<bool> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut first = [0u8; META_PAGE_BYTES];
    match file.read_exact_at(&mut first, 0) {
        Ok(()) => Ok(u16_at(&first, 8) & META_PAGE != 0 && u32_at(&first, PAGE_HEADER_BYTES) == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Reads an etcd backend file and hands every row of the state raftkv restores to `row`,
/// already in raftkv's layout (`crate::storage`'s table):
///
/// | etcd bucket | raftkv family | key, value |
/// |---|---|---|
/// | `key` | `kv` | unchanged (the same revision keys and `mvccpb.KeyValue`) |
/// | `lease` | `lease` | unchanged (`leasepb.Lease` is [`LeaseRecord`]) |
/// | `meta` | `meta` | `scheduledCompactRev` → [`meta::SCHEDULED_COMPACT_REVISION`], `finishedCompactRev` → [`meta::COMPACT_REVISION`], main revision as u64 BE |
/// | `auth` | `auth` | `authRevision` → `revision`, unchanged |
/// | `authUsers`, `authRoles` | `auth` | `user/` + name, `role/` + name; unchanged |
///
/// Keys and values are checked to be what raftkv's loaders expect. Rows come in the file's
/// order. The SHA-256 trailer is the caller's to check (restore does, with etcd's rules and
/// `--skip-hash-check`); damage it does not cover is found only where it is read, so an error
/// may come after some rows were handed out: the caller keeps them aside until this returns
/// `Ok`.
pub fn read_etcd(path: &Path, row: &mut RowSink<'_>) -> Result<EtcdInfo> {
    let mut db = Bolt::open(path)?;
    let mut info = EtcdInfo::default();
    for (name, bucket) in db.buckets()? {
        let Some(restored) = Restored::named(&name) else { continue };
        db.for_each(&bucket, &mut |key, entry| match entry {
            Entry::Value(value) => restored.row(path, key, value, &mut info, row),
            Entry::Bucket(_) => Err(corrupt(path, format!("bucket {} holds a nested bucket", show(&name)))),
        })?;
    }
    Ok(info)
}

/// What `etcdctl snapshot status` prints for this file, computed exactly as etcd 3.4 does
/// (`clientv3/snapshot`'s `Status`): the CRC-32C of every top-level bucket's name followed by
/// its keys and values in bbolt's order (a nested bucket adds its key only), the main
/// revision of the last key of `key`, every key of every bucket counted, and the size of the
/// database its meta page describes (`Tx.Size`: pages in use × page size, without the
/// SHA-256 trailer). etcd does not check the trailer here, so neither does this.
pub fn etcd_status(path: &Path) -> Result<FileStatus> {
    let mut db = Bolt::open(path)?;
    let mut status = FileStatus { hash: 0, revision: 0, total_keys: 0, total_size: db.high_water * db.page_bytes };
    let mut crc = !0;
    for (name, bucket) in db.buckets()? {
        crc = storage::crc32c_update(crc, &name);
        let key_bucket = name == b"key";
        db.for_each(&bucket, &mut |key, entry| {
            crc = storage::crc32c_update(crc, key);
            if let Entry::Value(value) = entry {
                crc = storage::crc32c_update(crc, value);
            }
            if key_bucket {
                // etcd's `bytesToRev`: the first 8 bytes of any key of 17 bytes or more.
                if key.len() < REVISION_KEY_LEN {
                    return Err(corrupt(path, format!("key bucket key {} is not a revision", show(key))));
                }
                status.revision = u64_be(&key[..8]) as i64;
            }
            status.total_keys += 1;
            Ok(())
        })?;
    }
    status.hash = !crc;
    Ok(status)
}

/// etcd's buckets that hold state raftkv restores.
#[derive(Clone, Copy)]
enum Restored {
    Key,
    Lease,
    Meta,
    Auth,
    AuthUsers,
    AuthRoles,
}

impl Restored {
    fn named(name: &[u8]) -> Option<Restored> {
        Some(match name {
            b"key" => Restored::Key,
            b"lease" => Restored::Lease,
            b"meta" => Restored::Meta,
            b"auth" => Restored::Auth,
            b"authUsers" => Restored::AuthUsers,
            b"authRoles" => Restored::AuthRoles,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Restored::Key => "key",
            Restored::Lease => "lease",
            Restored::Meta => "meta",
            Restored::Auth => "auth",
            Restored::AuthUsers => "authUsers",
            Restored::AuthRoles => "authRoles",
        }
    }

    /// One row of this bucket, checked and handed to `row` in raftkv's layout.
    fn row(self, path: &Path, key: &[u8], value: &[u8], info: &mut EtcdInfo, row: &mut RowSink<'_>) -> Result<()> {
        let bad = |what: &str| corrupt(path, format!("bucket {} key {}: {what}", self.name(), show(key)));
        match self {
            Restored::Key => {
                let (rev, _) = Revision::from_key(key).ok_or_else(|| bad("not a revision"))?;
                KeyValue::decode(value).map_err(|e| bad(&format!("not an mvccpb.KeyValue: {e}")))?;
                info.revision = info.revision.max(rev.main);
                row(Cf::Kv, key, value)
            }
            Restored::Lease => {
                let id: [u8; 8] = key.try_into().map_err(|_| bad("not a lease id"))?;
                let lease = LeaseRecord::decode(value).map_err(|e| bad(&format!("not a leasepb.Lease: {e}")))?;
                if lease.id != i64::from_be_bytes(id) {
                    return Err(bad(&format!("holds lease {}", lease.id)));
                }
                row(Cf::Lease, key, value)
            }
            Restored::Meta => {
                let compaction = match key {
                    b"scheduledCompactRev" => meta::SCHEDULED_COMPACT_REVISION,
                    b"finishedCompactRev" => meta::COMPACT_REVISION,
                    b"consistent_index" => {
                        info.consistent_index = storage::decode_u64(value).ok_or_else(|| bad("not a u64"))?;
                        return Ok(());
                    }
                    _ => return Ok(()),
                };
                match Revision::from_key(value) {
                    Some((rev, false)) if rev.main >= 0 => row(Cf::Meta, compaction, &(rev.main as u64).to_be_bytes()),
                    _ => Err(bad(&format!("value {} is not a revision", show(value)))),
                }
            }
            Restored::Auth => match key {
                b"authRevision" => {
                    storage::decode_u64(value).ok_or_else(|| bad("not a u64"))?;
                    row(Cf::Auth, auth::REVISION_KEY, value)
                }
                // etcd writes 1 when enabling and 0 when disabling, and reads anything but 1 as off.
                b"authEnabled" => {
                    info.auth_enabled = value == [1];
                    row(Cf::Auth, auth::ENABLED_KEY, &[u8::from(info.auth_enabled)])
                }
                _ => Ok(()),
            },
            Restored::AuthUsers => {
                User::decode(value).map_err(|e| bad(&format!("not an authpb.User: {e}")))?;
                row(Cf::Auth, &[auth::USER_PREFIX, key].concat(), value)
            }
            Restored::AuthRoles => {
                Role::decode(value).map_err(|e| bad(&format!("not an authpb.Role: {e}")))?;
                row(Cf::Auth, &[auth::ROLE_PREFIX, key].concat(), value)
            }
        }
    }
}

/// One entry of a bucket.
enum Entry<'a> {
    Value(&'a [u8]),
    /// A nested bucket: its header, and its page if it is inline.
    Bucket(&'a [u8]),
}

/// The valid meta page the reader follows.
struct MetaPage {
    page_bytes: u32,
    root: u64,
    high_water: u64,
    txid: u64,
}

/// An open bbolt file and the pages read so far.
struct Bolt {
    file: File,
    path: PathBuf,
    page_bytes: u64,
    /// The meta page's `pgid`: pages 0..high_water are in use.
    high_water: u64,
    root: u64,
    /// One bit per page below `high_water`: set once the walk has read it.
    visited: Vec<u64>,
}

impl Bolt {
    fn open(path: &Path) -> Result<Bolt> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let file_bytes = file.metadata().map_err(|e| io_error(path, e))?.len();
        // etcd's `hasChecksum`: a database is whole pages, so 32 bytes more is the trailer.
        let trailer = file_bytes % 512 == SHA256_BYTES;
        let data_bytes = if trailer { file_bytes - SHA256_BYTES } else { file_bytes };
        let mut db =
            Bolt { file, path: path.to_path_buf(), page_bytes: 0, high_water: 0, root: 0, visited: Vec::new() };
        let meta = db.current_meta()?;
        db.page_bytes = u64::from(meta.page_bytes);
        if meta.high_water < 2 || meta.root < 2 || meta.root >= meta.high_water {
            return Err(db.corrupt(format!("meta page: root page {} outside 2..{}", meta.root, meta.high_water)));
        }
        match meta.high_water.checked_mul(db.page_bytes) {
            Some(need) if need <= data_bytes => {}
            _ => {
                return Err(db.corrupt(format!(
                    "truncated: {} pages of {} bytes in use, {data_bytes} bytes in the file",
                    meta.high_water, db.page_bytes
                )))
            }
        }
        db.high_water = meta.high_water;
        db.root = meta.root;
        // At most one bit per page of the file, which is there.
        db.visited = vec![0; meta.high_water.div_ceil(64) as usize];
        Ok(db)
    }

    /// The meta page bbolt would use: the page size from page 0, then the valid one of pages 0
    /// and 1 with the higher transaction id.
    fn current_meta(&self) -> Result<MetaPage> {
        let meta0 = self.meta_at(0);
        let page_bytes = match &meta0 {
            Ok(m) => m.page_bytes,
            // bbolt would guess the machine's page size; page 1 can tell us instead.
            Err(_) => (PAGE_BYTES_MIN.trailing_zeros()..=PAGE_BYTES_MAX.trailing_zeros())
                .map(|shift| 1u32 << shift)
                .find(|&size| self.meta_at(u64::from(size)).is_ok_and(|m| m.page_bytes == size))
                .unwrap_or(0),
        };
        let meta1 = if page_bytes == 0 { Err("not found".to_string()) } else { self.meta_at(u64::from(page_bytes)) };
        let chosen = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e0), Err(e1)) => return Err(self.corrupt(format!("no valid meta page: page 0 {e0}, page 1 {e1}"))),
        };
        if chosen.page_bytes != page_bytes {
            return Err(
                self.corrupt(format!("meta pages disagree on the page size: {page_bytes} and {}", chosen.page_bytes))
            );
        }
        Ok(chosen)
    }

    /// The meta page at byte `offset`, or why it is not a valid one.
    fn meta_at(&self, offset: u64) -> std::result::Result<MetaPage, String> {
        let mut page = [0u8; META_PAGE_BYTES];
        self.file.read_exact_at(&mut page, offset).map_err(|e| format!("unreadable ({e})"))?;
        let m = &page[PAGE_HEADER_BYTES..];
        if u16_at(&page, 8) & META_PAGE == 0 {
            return Err(format!("is not a meta page (flags {:#x})", u16_at(&page, 8)));
        }
        if u32_at(m, 0) != MAGIC {
            return Err(format!("has magic {:#x}", u32_at(m, 0)));
        }
        if u32_at(m, 4) != VERSION {
            return Err(format!("has version {}", u32_at(m, 4)));
        }
        let checksum = u64_at(m, 56);
        if fnv1a64(&page[META_CHECKSUMMED]) != checksum {
            return Err(format!("fails its checksum {checksum:#x}"));
        }
        let page_bytes = u32_at(m, 8);
        if !page_bytes.is_power_of_two() || !(PAGE_BYTES_MIN..=PAGE_BYTES_MAX).contains(&page_bytes) {
            return Err(format!("has page size {page_bytes}"));
        }
        Ok(MetaPage { page_bytes, root: u64_at(m, 16), high_water: u64_at(m, 40), txid: u64_at(m, 48) })
    }

    /// The top-level buckets: name and header (with the inline page), in order.
    fn buckets(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let path = self.path.clone();
        let mut buckets = Vec::new();
        self.walk(self.root, 0, &mut |name, entry| match entry {
            Entry::Bucket(header) if buckets.len() < BUCKETS_MAX => {
                buckets.push((name.to_vec(), header.to_vec()));
                Ok(())
            }
            Entry::Bucket(_) => Err(corrupt(&path, format!("more than {BUCKETS_MAX} buckets"))),
            // etcd's `Status` fails the same way ("cannot get hash of bucket").
            Entry::Value(_) => Err(corrupt(&path, format!("top-level key {} is not a bucket", show(name)))),
        })?;
        Ok(buckets)
    }

    /// Calls `f` on every entry of the bucket whose header is `header`, in key order.
    fn for_each(&mut self, header: &[u8], f: &mut dyn FnMut(&[u8], Entry) -> Result<()>) -> Result<()> {
        if header.len() < BUCKET_HEADER_BYTES {
            return Err(self.corrupt(format!("bucket header of {} bytes", header.len())));
        }
        match u64_at(header, 0) {
            0 => {
                let page = &header[BUCKET_HEADER_BYTES..];
                if page.len() < PAGE_HEADER_BYTES || u16_at(page, 8) & LEAF_PAGE == 0 {
                    return Err(self.corrupt("an inline bucket without a leaf page".into()));
                }
                self.leaf(page, "an inline page", f)
            }
            root => self.walk(root, 0, f),
        }
    }

    /// Walks the tree under page `id`, `depth` branch pages below a bucket's root.
    fn walk(&mut self, id: u64, depth: usize, f: &mut dyn FnMut(&[u8], Entry) -> Result<()>) -> Result<()> {
        if depth > DEPTH_MAX {
            return Err(self.corrupt(format!("page {id} is more than {DEPTH_MAX} branch pages deep")));
        }
        let page = self.page(id)?;
        let which = format!("page {id}");
        let flags = u16_at(&page, 8);
        if flags & BRANCH_PAGE != 0 {
            let count = self.element_count(&page, &which)?;
            for i in 0..count {
                let child = u64_at(&page, PAGE_HEADER_BYTES + i * ELEMENT_BYTES + 8);
                self.walk(child, depth + 1, f)?;
            }
            Ok(())
        } else if flags & LEAF_PAGE != 0 {
            self.leaf(&page, &which, f)
        } else {
            Err(self.corrupt(format!("page {id} is in a tree but is neither branch nor leaf (flags {flags:#x})")))
        }
    }

    /// Calls `f` on each element of a leaf page (a page of the file or an inline one).
    fn leaf(&self, page: &[u8], which: &str, f: &mut dyn FnMut(&[u8], Entry) -> Result<()>) -> Result<()> {
        let count = self.element_count(page, which)?;
        for i in 0..count {
            let element = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
            let [flags, pos, key_bytes, value_bytes] = [0, 4, 8, 12].map(|at| u64::from(u32_at(page, element + at)));
            // In u64, where three u32s and an offset below 2^20 cannot overflow.
            let key_at = element as u64 + pos;
            let end = key_at + key_bytes + value_bytes;
            if end > page.len() as u64 {
                return Err(self.corrupt(format!("element {i} of {which} ends at byte {end}, past its {}", page.len())));
            }
            let (key_at, value_at) = (key_at as usize, (key_at + key_bytes) as usize);
            let key = &page[key_at..value_at];
            let value = &page[value_at..end as usize];
            f(key, if flags & u64::from(BUCKET_LEAF) != 0 { Entry::Bucket(value) } else { Entry::Value(value) })?;
        }
        Ok(())
    }

    /// The page's element count, once checked that its elements fit in it.
    fn element_count(&self, page: &[u8], which: &str) -> Result<usize> {
        let count = usize::from(u16_at(page, 10));
        if PAGE_HEADER_BYTES + count * ELEMENT_BYTES > page.len() {
            return Err(self.corrupt(format!("{which} has {count} elements, more than fit in {} bytes", page.len())));
        }
        Ok(count)
    }

    /// Reads page `id` with its overflow pages, once: a page reached again means a cycle (or
    /// a page with two parents), so the walk stops there.
    fn page(&mut self, id: u64) -> Result<Vec<u8>> {
        if id < 2 || id >= self.high_water {
            return Err(self.corrupt(format!("page id {id} outside 2..{}", self.high_water)));
        }
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        if self.visited[word] & bit != 0 {
            return Err(self.corrupt(format!("page {id} is reached twice (a cycle)")));
        }
        self.visited[word] |= bit;
        let offset = id * self.page_bytes;
        let mut header = [0u8; PAGE_HEADER_BYTES];
        self.read_exact_at(&mut header, offset)?;
        if u64_at(&header, 0) != id {
            return Err(self.corrupt(format!("page {id} says it is page {}", u64_at(&header, 0))));
        }
        let overflow = u64::from(u32_at(&header, 12));
        let span = (overflow + 1) * self.page_bytes;
        if id + overflow >= self.high_water || span > PAGE_SPAN_BYTES_MAX {
            return Err(self.corrupt(format!("page {id} overflows into {overflow} more pages, past the end")));
        }
        let mut page = vec![0u8; span as usize];
        self.read_exact_at(&mut page, offset)?;
        Ok(page)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
            // The file shrank under us: what was checked at open is no longer there.
            std::io::ErrorKind::UnexpectedEof => self.corrupt(format!("truncated at byte {offset}")),
            _ => self.io(e),
        })
    }

    fn corrupt(&self, detail: String) -> Error {
        corrupt(&self.path, detail)
    }

    fn io(&self, e: std::io::Error) -> Error {
        io_error(&self.path, e)
    }
}

/// FNV-1a, 64 bits: bbolt's meta page checksum (Go's `hash/fnv` `New64a`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

// Fixed-size reads at offsets the callers have checked against the buffer's length.
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u64_be(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// A key or name for an error message.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(64)]))
}

#[cfg(test)]
mod tests;
