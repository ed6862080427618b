//! Tests of the bbolt reader over files built here page by page, as bbolt lays them out,
//! then damaged one field at a time. The test against a real etcd is
//! `tests/it/etcd_snapshot.rs`.

use super::*;
use sha2::{Digest, Sha256};

const PAGE: usize = 4096;

fn header(id: u64, flags: u16, count: usize, overflow: u32) -> Vec<u8> {
    let mut h = id.to_le_bytes().to_vec();
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&(count as u16).to_le_bytes());
    h.extend_from_slice(&overflow.to_le_bytes());
    h
}

/// A leaf page `id` (unpadded): elements, then keys and values. `flags` 1 = nested bucket.
fn leaf_bytes(id: u64, entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = header(id, LEAF_PAGE, entries.len(), 0);
    let mut data = Vec::new();
    let data_at = PAGE_HEADER_BYTES + entries.len() * ELEMENT_BYTES;
    for (i, (flags, key, value)) in entries.iter().enumerate() {
        let pos = data_at + data.len() - (PAGE_HEADER_BYTES + i * ELEMENT_BYTES);
        for field in [*flags, pos as u32, key.len() as u32, value.len() as u32] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        data.extend_from_slice(key);
        data.extend_from_slice(value);
    }
    out.extend_from_slice(&data);
    out
}

/// A leaf page of the file, padded to whole pages, with its overflow count.
fn leaf(id: u64, entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut page = leaf_bytes(id, entries);
    let pages = page.len().div_ceil(PAGE);
    page[12..16].copy_from_slice(&(pages as u32 - 1).to_le_bytes());
    page.resize(pages * PAGE, 0);
    page
}

fn branch(id: u64, children: &[u64]) -> Vec<u8> {
    let mut page = header(id, BRANCH_PAGE, children.len(), 0);
    for (i, child) in children.iter().enumerate() {
        // Keys are never read; each element points at an empty one past the elements.
        let pos = (children.len() - i) * ELEMENT_BYTES;
        page.extend_from_slice(&(pos as u32).to_le_bytes());
        page.extend_from_slice(&0u32.to_le_bytes());
        page.extend_from_slice(&child.to_le_bytes());
    }
    page.resize(PAGE, 0);
    page
}

fn paged_bucket(root: u64) -> Vec<u8> {
    [root.to_le_bytes(), 0u64.to_le_bytes()].concat()
}

fn inline_bucket(entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    [paged_bucket(0), leaf_bytes(0, entries)].concat()
}

fn meta_page(id: u64, txid: u64, root: u64, high_water: u64) -> Vec<u8> {
    let mut page = header(id, META_PAGE, 0, 0);
    for field in [MAGIC, VERSION, PAGE as u32, 0] {
        page.extend_from_slice(&field.to_le_bytes());
    }
    for field in [root, 0, 2, high_water, txid] {
        page.extend_from_slice(&field.to_le_bytes());
    }
    let sum = fnv1a64(&page[META_CHECKSUMMED]);
    page.extend_from_slice(&sum.to_le_bytes());
    page.resize(PAGE, 0);
    page
}

/// A file: two meta pages (page 0 the newer) naming `root`, then `body` from page 2.
fn file(root: u64, body: &[Vec<u8>]) -> Vec<u8> {
    let body = body.concat();
    let high_water = 2 + (body.len() / PAGE) as u64;
    [meta_page(0, 5, root, high_water), meta_page(1, 4, root, high_water), body].concat()
}

fn rev(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    Revision::new(main, sub).to_key(tombstone)
}

fn kv(key: &str, value: &[u8], create: i64, modified: i64, version: i64, lease: i64) -> Vec<u8> {
    let kv = KeyValue {
        key: key.into(),
        value: value.to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease,
    };
    kv.encode_to_vec()
}

fn big_value() -> Vec<u8> {
    (0..6000u32).map(|i| i as u8).collect()
}

/// The rows of the sample's `key` bucket, in order.
fn key_rows() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (rev(2, 0, false), kv("a", b"1", 2, 2, 1, 0)),
        (rev(3, 0, false), kv("b", b"2", 3, 3, 1, 7)),
        (rev(4, 0, true), kv("a", b"", 0, 4, 0, 0)),
        (rev(5, 0, false), kv("c", &big_value(), 5, 5, 1, 0)),
    ]
}

const LEASE_ID: i64 = 7;

fn lease_value() -> Vec<u8> {
    LeaseRecord { id: LEASE_ID, ttl: 60, remaining_ttl: 0 }.encode_to_vec()
}

fn user_value() -> Vec<u8> {
    User { name: b"amy".to_vec(), roles: vec!["reader".into()], ..Default::default() }.encode_to_vec()
}

/// An etcd backend as bbolt lays it out: page 2 the root bucket, with the small buckets
/// inline; `key` a branch page (3) over two leaves (4, and 5 whose big value overflows
/// into 6); `cluster` a leaf (7) holding a nested bucket, as etcd never does.
fn sample() -> Vec<u8> {
    let rows = key_rows();
    let row = |i: usize| (0, &rows[i].0[..], &rows[i].1[..]);
    let meta_rows: [(u32, &[u8], &[u8]); 4] = [
        (0, b"consistent_index", &42u64.to_be_bytes()),
        (0, b"finishedCompactRev", &rev(2, 0, false)),
        (0, b"scheduledCompactRev", &rev(3, 0, false)),
        (0, b"term", &9u64.to_be_bytes()),
    ];
    let root: [(u32, &[u8], &[u8]); 8] = [
        (BUCKET_LEAF, b"auth", &inline_bucket(&[(0, b"authEnabled", &[1]), (0, b"authRevision", &3u64.to_be_bytes())])),
        (BUCKET_LEAF, b"authRoles", &inline_bucket(&[])),
        (BUCKET_LEAF, b"authUsers", &inline_bucket(&[(0, b"amy", &user_value())])),
        (BUCKET_LEAF, b"cluster", &paged_bucket(7)),
        (BUCKET_LEAF, b"key", &paged_bucket(3)),
        (BUCKET_LEAF, b"lease", &inline_bucket(&[(0, &LEASE_ID.to_be_bytes(), &lease_value())])),
        (BUCKET_LEAF, b"members", &inline_bucket(&[(0, b"m1", b"{}")])),
        (BUCKET_LEAF, b"meta", &inline_bucket(&meta_rows)),
    ];
    let cluster =
        leaf(7, &[(0, b"clusterVersion", b"3.4.0"), (BUCKET_LEAF, b"nested", &inline_bucket(&[(0, b"x", b"y")]))]);
    file(2, &[leaf(2, &root), branch(3, &[4, 5]), leaf(4, &[row(0), row(1)]), leaf(5, &[row(2), row(3)]), cluster])
}

fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

type Rows = Vec<(Cf, Vec<u8>, Vec<u8>)>;

fn read(bytes: &[u8]) -> Result<(EtcdInfo, Rows)> {
    let file = write(bytes);
    let mut rows = Vec::new();
    let info = read_etcd(file.path(), &mut |cf, k, v| {
        rows.push((cf, k.to_vec(), v.to_vec()));
        Ok(())
    })?;
    Ok((info, rows))
}

fn status(bytes: &[u8]) -> Result<FileStatus> {
    etcd_status(write(bytes).path())
}

fn with_trailer(mut bytes: Vec<u8>) -> Vec<u8> {
    let sha = Sha256::digest(&bytes);
    bytes.extend_from_slice(&sha);
    bytes
}

fn corrupt_detail<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Storage(storage::Error::Corrupt { detail, .. })) => detail,
        other => panic!("want a Corrupt error, got {other:?}"),
    }
}

#[test]
fn every_restored_row_comes_in_raftkv_layout() {
    let (info, rows) = read(&sample()).unwrap();
    assert_eq!(info, EtcdInfo { consistent_index: 42, auth_enabled: true, revision: 5 });
    let mut want: Rows = vec![
        (Cf::Auth, b"enabled".to_vec(), vec![1]),
        (Cf::Auth, b"revision".to_vec(), 3u64.to_be_bytes().to_vec()),
        (Cf::Auth, b"user/amy".to_vec(), user_value()),
    ];
    want.extend(key_rows().into_iter().map(|(k, v)| (Cf::Kv, k, v)));
    want.push((Cf::Lease, LEASE_ID.to_be_bytes().to_vec(), lease_value()));
    want.push((Cf::Meta, meta::COMPACT_REVISION.to_vec(), 2u64.to_be_bytes().to_vec()));
    want.push((Cf::Meta, meta::SCHEDULED_COMPACT_REVISION.to_vec(), 3u64.to_be_bytes().to_vec()));
    assert_eq!(rows, want);
    assert_eq!(read(&with_trailer(sample())).unwrap(), (info, rows), "the trailer is not data");
}

#[test]
fn status_hashes_every_bucket_name_key_and_value_in_order() {
    let rows = key_rows();
    let mut stream: Vec<&[u8]> = vec![b"auth", b"authEnabled", &[1], b"authRevision"];
    let auth_rev = 3u64.to_be_bytes();
    let user = user_value();
    stream.extend([&auth_rev[..], b"authRoles", b"authUsers", b"amy", &user]);
    // The nested bucket adds its key only, as etcd's `ForEach` gives it a nil value.
    stream.extend([&b"cluster"[..], b"clusterVersion", b"3.4.0", b"nested", b"key"]);
    stream.extend(rows.iter().flat_map(|(k, v)| [&k[..], &v[..]]));
    let (lease_id, lease) = (LEASE_ID.to_be_bytes(), lease_value());
    stream.extend([&b"lease"[..], &lease_id, &lease, b"members", b"m1", b"{}", b"meta"]);
    let (index, finished, scheduled, term) =
        (42u64.to_be_bytes(), rev(2, 0, false), rev(3, 0, false), 9u64.to_be_bytes());
    stream.extend([&b"consistent_index"[..], &index, b"finishedCompactRev", &finished]);
    stream.extend([&b"scheduledCompactRev"[..], &scheduled, b"term", &term]);
    let want = FileStatus {
        hash: !storage::crc32c_update(!0, &stream.concat()),
        revision: 5,
        total_keys: 2 + 1 + 2 + 4 + 1 + 1 + 4,
        total_size: 8 * PAGE as u64,
    };
    assert_eq!(status(&sample()).unwrap(), want);
    let grown = [sample(), vec![0; PAGE]].concat();
    assert_eq!(
        status(&grown).unwrap(),
        want,
        "the size is the pages in use, not the file's (a data dir's db grows ahead)"
    );
    let mut bad_trailer = with_trailer(sample());
    *bad_trailer.last_mut().unwrap() ^= 1;
    assert_eq!(status(&bad_trailer).unwrap(), want, "etcd's status neither reads nor checks the trailer");
}

#[test]
fn an_older_meta_page_stands_in_for_a_damaged_newer_one() {
    let mut bytes = sample();
    bytes[PAGE_HEADER_BYTES + 50] ^= 1; // in page 0's high-water mark: its checksum fails
    assert_eq!(read(&bytes).unwrap(), read(&sample()).unwrap());
    // With page 1 the newer one, page 1 is followed: here it names a root outside the file.
    let mut newer = sample();
    newer[PAGE..2 * PAGE].copy_from_slice(&meta_page(1, 6, 99, 8));
    assert_eq!(corrupt_detail(read(&newer)), "meta page: root page 99 outside 2..8");
}

/// Rewrites the element field at `field` (0 flags/pos, 4 pos/ksize, 8 ksize/pgid, 12
/// vsize) of element `i` of page `page`.
fn patch_element(bytes: &mut [u8], page: usize, i: usize, field: usize, value: &[u8]) {
    let at = page * PAGE + PAGE_HEADER_BYTES + i * ELEMENT_BYTES + field;
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[test]
fn damage_gives_a_corrupt_error_naming_it() {
    let good = sample();
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        bytes
    };
    let both_metas = |at: usize| patched(&|b| [at, PAGE + at].iter().for_each(|&i| b[i] ^= 0x10));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "no valid meta page: page 0 unreadable"),
        ("cut short", good[..5 * PAGE].to_vec(), "truncated: 8 pages of 4096 bytes in use, 20480 bytes in the file"),
        ("bad magic", both_metas(PAGE_HEADER_BYTES), "no valid meta page: page 0 has magic 0xed0cdafd"),
        ("bad checksums", both_metas(PAGE_HEADER_BYTES + 56), "no valid meta page: page 0 fails its checksum"),
        (
            "child past the end",
            patched(&|b| patch_element(b, 3, 1, 8, &99u64.to_le_bytes())),
            "page id 99 outside 2..8",
        ),
        ("child is a meta page", patched(&|b| patch_element(b, 3, 1, 8, &1u64.to_le_bytes())), "page id 1 outside"),
        ("a cycle", patched(&|b| patch_element(b, 3, 1, 8, &3u64.to_le_bytes())), "page 3 is reached twice"),
        (
            "key past the page",
            patched(&|b| patch_element(b, 4, 0, 4, &u32::MAX.to_le_bytes())),
            "element 0 of page 4 ends at byte",
        ),
        (
            "value past the page",
            patched(&|b| patch_element(b, 4, 1, 12, &5000u32.to_le_bytes())),
            "element 1 of page 4 ends at byte",
        ),
        (
            "too many elements",
            patched(&|b| b[4 * PAGE + 10..4 * PAGE + 12].copy_from_slice(&[0xff, 0xff])),
            "page 4 has 65535 elements",
        ),
        ("a page with another id", patched(&|b| b[4 * PAGE] = 9), "page 4 says it is page 9"),
        ("overflow past the end", patched(&|b| b[5 * PAGE + 12] = 3), "page 5 overflows into 3 more pages"),
        ("a tree page of another kind", patched(&|b| b[4 * PAGE + 8] = 0x10), "page 4 is in a tree but is neither"),
        (
            "a value in the root",
            patched(&|b| patch_element(b, 2, 0, 0, &0u32.to_le_bytes())),
            "top-level key \"auth\" is not a bucket",
        ),
        (
            "a short bucket header",
            patched(&|b| patch_element(b, 2, 4, 12, &8u32.to_le_bytes())),
            "bucket header of 8 bytes",
        ),
    ];
    for (name, bytes, want) in cases {
        for (reader, detail) in
            [("read_etcd", corrupt_detail(read(&bytes))), ("etcd_status", corrupt_detail(status(&bytes)))]
        {
            assert!(detail.starts_with(want), "{name} ({reader}): {detail:?}, want {want:?}");
        }
    }
}

#[test]
fn a_branch_chain_deeper_than_the_bound_is_refused() {
    // Bucket `key` rooted at page 3, then `branches` branch pages in a chain, then a leaf.
    let chain = |branches: u64| {
        let leaf_id = 3 + branches;
        let mut body = vec![leaf(2, &[(BUCKET_LEAF, b"key", &paged_bucket(3))])];
        body.extend((3..leaf_id).map(|id| branch(id, &[id + 1])));
        body.push(leaf(leaf_id, &[(0, &rev(2, 0, false), &kv("a", b"1", 2, 2, 1, 0))]));
        file(2, &body)
    };
    assert_eq!(read(&chain(DEPTH_MAX as u64)).unwrap().1.len(), 1);
    let too_deep = 3 + DEPTH_MAX as u64 + 1;
    let want = format!("page {too_deep} is more than {DEPTH_MAX} branch pages deep");
    assert_eq!(corrupt_detail(read(&chain(DEPTH_MAX as u64 + 1))), want);
}

#[test]
fn etcd_rows_raftkv_cannot_load_are_refused() {
    let good = sample();
    let patched = |at: usize, value: &[u8]| {
        let mut bytes = good.clone();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    };
    // Page 4's first key starts after its two elements.
    let first_key = 4 * PAGE + PAGE_HEADER_BYTES + 2 * ELEMENT_BYTES;
    let not_a_revision = patched(first_key + 8, b"x");
    assert!(corrupt_detail(read(&not_a_revision)).ends_with("not a revision"));
    assert_eq!(status(&not_a_revision).unwrap().revision, 5, "etcd's status reads any 17 bytes as a revision");
    let not_a_kv = patched(first_key + REVISION_KEY_LEN, &[0xff]);
    assert!(corrupt_detail(read(&not_a_kv)).contains("not an mvccpb.KeyValue"));
    let mut nested = good.clone();
    patch_element(&mut nested, 4, 0, 0, &BUCKET_LEAF.to_le_bytes());
    assert_eq!(corrupt_detail(read(&nested)), "bucket \"key\" holds a nested bucket");
    // The trailer is restore's to check: the reader neither reads nor checks it.
    let mut bad_trailer = with_trailer(good.clone());
    *bad_trailer.last_mut().unwrap() ^= 1;
    assert_eq!(read(&bad_trailer).unwrap(), read(&good).unwrap());
}

#[test]
fn random_damage_never_panics() {
    use rand::{Rng, SeedableRng};
    let good = sample();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..300 {
        let mut bytes = good.clone();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..bytes.len());
            bytes[at] = rng.gen();
        }
        if rng.gen_bool(0.2) {
            bytes.truncate(rng.gen_range(0..bytes.len()));
        }
        for result in [read(&bytes).map(|_| ()), status(&bytes).map(|_| ())] {
            if let Err(e) = result {
                corrupt_detail::<()>(Err(e));
            }
        }
    }
}

#[test]
fn is_bbolt_looks_at_the_first_meta_page_only() {
    assert!(is_bbolt(write(&sample()).path()).unwrap());
    let mut bad_checksum = sample();
    bad_checksum[PAGE_HEADER_BYTES + 56] ^= 1;
    assert!(is_bbolt(write(&bad_checksum).path()).unwrap(), "recognised, for read_etcd to report the damage");
    assert!(!is_bbolt(write(&sample()[..40]).path()).unwrap(), "too short for a meta page");
    assert!(!is_bbolt(write(&[1, 0, 0, 0, 3, b'r', b'e', b'v']).path()).unwrap(), "a raftkv snapshot file");
}
