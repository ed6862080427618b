//! Store tests on real RocksDB: versions and revisions, history, compaction (logical and
//! physical), batch visibility, restore, and readers racing the writer.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

fn open(dir: &std::path::Path) -> (Arc<Db>, Store) {
    let db = Arc::new(Db::open(dir).unwrap());
    let store = Store::open(db.clone()).unwrap();
    (db, store)
}

fn put(store: &Store, key: &str, value: &str) -> KeyValue {
    let mut batch = store.batch();
    let kv = batch.txn().put(key.as_bytes(), value.as_bytes(), 0).unwrap();
    batch.commit().unwrap();
    kv
}

fn delete(store: &Store, key: &str, end: Option<&[u8]>) -> usize {
    let mut batch = store.batch();
    let n = batch.txn().delete_range(key.as_bytes(), end).unwrap().len();
    batch.commit().unwrap();
    n
}

fn get_at(store: &Store, key: &str, rev: i64) -> Result<Option<KeyValue>> {
    let opts = RangeOptions { rev, ..Default::default() };
    Ok(store.range(key.as_bytes(), None, opts)?.kvs.into_iter().next())
}

fn kv_rows(db: &Db) -> usize {
    db.raw().iterator_cf(db.cf(Cf::Kv), IteratorMode::Start).count()
}

#[test]
fn versions_and_generations() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    assert_eq!(store.current_revision(), 1);
    let a = put(&store, "k", "1");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 2, 1));
    let b = put(&store, "k", "2");
    assert_eq!((b.create_revision, b.mod_revision, b.version), (2, 3, 2));
    assert_eq!(delete(&store, "k", None), 1);
    assert_eq!(store.current_revision(), 4);
    assert_eq!(delete(&store, "k", None), 0);
    assert_eq!(store.current_revision(), 4, "deleting nothing takes no revision");
    let c = put(&store, "k", "3");
    assert_eq!((c.create_revision, c.mod_revision, c.version), (5, 5, 1), "a new generation");
    assert_eq!(get_at(&store, "k", 3).unwrap().unwrap().value, b"2");
    assert_eq!(get_at(&store, "k", 4).unwrap(), None);
    assert!(matches!(get_at(&store, "k", 6), Err(Error::FutureRevision)));
}

#[test]
fn one_revision_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    let mut batch = store.batch();
    {
        let mut txn = batch.txn();
        let a = txn.put(b"a", b"1", 0).unwrap();
        let b = txn.put(b"b", b"1", 0).unwrap();
        let a2 = txn.put(b"a", b"2", 0).unwrap();
        assert_eq!((a.mod_revision, b.mod_revision, a2.mod_revision, a2.version), (2, 2, 2, 2));
        // The transaction reads its own writes.
        let r = txn.range(b"a", None, RangeOptions::default()).unwrap();
        assert_eq!((r.kvs[0].value.clone(), r.rev), (b"2".to_vec(), 2));
        assert_eq!(txn.delete_range(b"a", Some(b"c")).unwrap().len(), 2);
        assert_eq!(txn.changes().len(), 5);
    }
    {
        let txn = batch.txn();
        assert_eq!(txn.rev(), 2, "a txn that changes nothing shows the previous revision");
    }
    // Readers see nothing of the batch until it is committed.
    assert_eq!(store.range(b"a", Some(&[]), RangeOptions::default()).unwrap().count, 0);
    assert_eq!(store.current_revision(), 1);
    batch.commit().unwrap();
    assert_eq!(store.current_revision(), 2);
    let r = store.range(b"a", Some(b"c"), RangeOptions { rev: 1, ..Default::default() }).unwrap();
    assert_eq!((r.count, r.rev), (0, 2));
}

#[test]
fn ranges_limit_count_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    for k in ["a/1", "a/2", "a/3", "b"] {
        put(&store, k, k);
    }
    let r = store.range(b"a/", Some(b"a0"), RangeOptions { limit: 2, ..Default::default() }).unwrap();
    assert_eq!((r.kvs.len(), r.count), (2, 3));
    let r = store.range(b"a/2", Some(&[]), RangeOptions::default()).unwrap();
    assert_eq!(
        r.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"a/2".to_vec(), b"a/3".to_vec(), b"b".to_vec()]
    );
    let r = store.range(b"a/", Some(b"a0"), RangeOptions { count: true, ..Default::default() }).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 3));
}

#[test]
fn compaction_removes_old_revisions_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = open(dir.path());
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    put(&store, "b", "1"); // 4
    delete(&store, "b", None); // 5
    put(&store, "c", "1"); // 6
    assert_eq!(kv_rows(&db), 5);
    let mut batch = store.batch();
    batch.compact(5).unwrap();
    batch.commit().unwrap();
    // Left: a@3 (live at 5) and c@6; a@2 and b's generation are gone.
    assert_eq!(kv_rows(&db), 2);
    assert!(matches!(get_at(&store, "a", 4), Err(Error::Compacted)));
    assert_eq!(get_at(&store, "a", 5).unwrap().unwrap().value, b"2");
    assert_eq!(get_at(&store, "b", 5).unwrap(), None);
    assert_eq!(store.compact_revision(), 5);
    assert_eq!(put(&store, "a", "3").version, 3, "versions continue after compaction");
}

#[test]
fn restore_rebuilds_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    // Every key at every readable revision, plus both revisions.
    let answers = |store: &Store| {
        let history: Vec<RangeResult> = (store.compact_revision().max(1)..=store.current_revision())
            .map(|rev| store.range(&[0], Some(&[]), RangeOptions { rev, ..Default::default() }).unwrap())
            .collect();
        (history, store.current_revision(), store.compact_revision())
    };
    let before = {
        let (_db, store) = open(dir.path());
        for i in 0..20 {
            put(&store, &format!("k{}", i % 7), &i.to_string());
        }
        delete(&store, "k3", None);
        let mut batch = store.batch();
        batch.compact(store.current_revision()).unwrap();
        batch.commit().unwrap();
        delete(&store, "k4", None); // a tombstone is the newest revision
        let mut batch = store.batch();
        batch.compact(store.current_revision()).unwrap();
        batch.commit().unwrap();
        put(&store, "k5", "x");
        answers(&store)
    };
    let (_db, store) = open(dir.path());
    assert_eq!(answers(&store), before);
    let kv = put(&store, "k5", "y");
    assert_eq!((kv.mod_revision, kv.version), (before.1 + 1, 5));
    let k4 = put(&store, "k4", "again");
    assert_eq!((k4.create_revision, k4.version), (k4.mod_revision, 1));
}

#[test]
fn restore_keeps_history_above_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let history = |store: &Store| {
        (store.compact_revision()..=store.current_revision())
            .map(|rev| store.range(b"k", Some(b"l"), RangeOptions { rev, ..Default::default() }).unwrap())
            .collect::<Vec<_>>()
    };
    let before = {
        let (_db, store) = open(dir.path());
        for i in 0..30 {
            let key = format!("k{}", i % 4);
            if i % 5 == 4 {
                delete(&store, &key, None);
            } else {
                put(&store, &key, &i.to_string());
            }
        }
        let mut batch = store.batch();
        batch.compact(store.current_revision() / 2).unwrap();
        batch.commit().unwrap();
        (history(&store), store.current_revision(), store.compact_revision())
    };
    let (_db, store) = open(dir.path());
    assert_eq!((history(&store), store.current_revision(), store.compact_revision()), before);
}

#[test]
fn restore_after_compacting_away_the_newest_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, store) = open(dir.path());
        put(&store, "a", "1"); // 2
        put(&store, "b", "1"); // 3
        delete(&store, "a", None); // 4
        let mut batch = store.batch();
        batch.compact(4).unwrap();
        batch.commit().unwrap();
        assert_eq!(kv_rows(&db), 1, "only b@3 is left");
    }
    // Nothing on disk says revision 4 happened but the compact revision.
    let (_db, store) = open(dir.path());
    assert_eq!((store.current_revision(), store.compact_revision()), (4, 4));
    assert_eq!(store.range(b"a", Some(&[]), RangeOptions::default()).unwrap().count, 1);
    let a = put(&store, "a", "2");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
}

#[test]
fn later_transactions_in_a_batch_see_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    put(&store, "a", "on disk"); // 2
    let mut batch = store.batch();
    batch.txn().put(b"a", b"pending", 0).unwrap(); // 3, only in the batch's overlay
    {
        let mut txn = batch.txn();
        let r = txn.range(b"a", None, RangeOptions::default()).unwrap();
        assert_eq!((r.kvs[0].value.as_slice(), r.kvs[0].version, r.rev), (&b"pending"[..], 2, 3));
        let old = txn.range(b"a", None, RangeOptions { rev: 2, ..Default::default() }).unwrap();
        assert_eq!(old.kvs[0].value, b"on disk", "history below the batch comes from RocksDB");
        assert!(matches!(
            txn.range(b"a", None, RangeOptions { rev: 4, ..Default::default() }),
            Err(Error::FutureRevision)
        ));
        let deleted = txn.delete_range(b"a", None).unwrap(); // 4
        assert_eq!(deleted[0].value, b"pending", "prev kv of a delete comes from the overlay");
        assert_eq!(txn.range(b"a", None, RangeOptions::default()).unwrap().count, 0);
    }
    let kv = batch.txn().put(b"a", b"again", 0).unwrap(); // 5
    assert_eq!((kv.create_revision, kv.version), (5, 1), "new generation inside the batch");
    assert_eq!(batch.rev(), 5);
    // Readers still see the published store only.
    let r = store.range(b"a", None, RangeOptions::default()).unwrap();
    assert_eq!((r.kvs[0].value.as_slice(), r.rev), (&b"on disk"[..], 2));
    let changes = batch.commit().unwrap();
    let revs: Vec<i64> = changes.iter().map(|c| c.mod_revision).collect();
    assert_eq!(revs, vec![3, 4, 5]);
    assert_eq!(changes[1], KeyValue { key: b"a".to_vec(), mod_revision: 4, ..Default::default() }, "a delete event");
    let r = store.range(b"a", None, RangeOptions { rev: 3, ..Default::default() }).unwrap();
    assert_eq!((r.kvs[0].value.as_slice(), r.rev), (&b"pending"[..], 5));
}

#[test]
fn compaction_revisions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    put(&store, "a", "3"); // 4
    assert!(matches!(store.check_compaction(5), Err(Error::FutureRevision)));
    // Never compacted, the compact revision is -1 (etcd's): 0 may be compacted, once.
    assert_eq!(store.compact_revision(), crate::mvcc::NEVER_COMPACTED);
    assert!(matches!(store.check_compaction(-1), Err(Error::Compacted)));
    store.check_compaction(0).unwrap();
    store.check_compaction(4).unwrap();
    let mut batch = store.batch();
    assert!(matches!(batch.compact(5), Err(Error::FutureRevision)), "the store refuses it too");
    batch.compact(3).unwrap();
    batch.commit().unwrap();
    assert!(matches!(store.check_compaction(3), Err(Error::Compacted)));
    assert!(matches!(store.check_compaction(0), Err(Error::Compacted)));
    assert_eq!(get_at(&store, "a", 3).unwrap().unwrap().value, b"2", "the compact revision itself is readable");
    assert!(matches!(get_at(&store, "a", 2), Err(Error::Compacted)));
    let mut batch = store.batch();
    let txn = batch.txn();
    assert!(matches!(txn.range(b"a", None, RangeOptions { rev: 2, ..Default::default() }), Err(Error::Compacted)));
}

#[test]
#[should_panic(expected = "compaction shares a batch with writes")]
fn compaction_refuses_a_batch_with_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    put(&store, "a", "1");
    let mut batch = store.batch();
    assert_eq!(batch.txn().delete_range(b"a", None).unwrap().len(), 1);
    let _ = batch.compact(2);
}

#[test]
fn readers_never_see_errors_or_torn_batches_while_the_writer_runs() {
    const BATCHES: i64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    let stop = AtomicBool::new(false);
    // Batch i writes k1 then k2 with value i in two transactions, so once it is published the
    // store is at revision 1 + 2 * (i + 1): a reader can tell exactly which values its
    // revision must show.
    let value_at = |rev: i64| ((rev - 1) / 2 - 1).to_string().into_bytes();
    std::thread::scope(|s| {
        for _ in 0..3 {
            spawn_named(s, "raftkv-test-reader", || {
                let mut last_rev = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = store.range(b"k", Some(b"l"), RangeOptions::default()).unwrap();
                    assert!(r.rev >= last_rev, "the published revision went back: {} after {last_rev}", r.rev);
                    last_rev = r.rev;
                    if r.rev == 1 {
                        assert!(r.kvs.is_empty());
                        continue;
                    }
                    assert_eq!(r.kvs.len(), 2, "at revision {}", r.rev);
                    assert_eq!(r.count, 2);
                    for kv in &r.kvs {
                        assert_eq!(kv.value, value_at(r.rev), "at revision {}", r.rev);
                    }
                }
            });
        }
        // A reader at the oldest readable revision races compaction: it may be told the
        // revision is compacted, but never finds an indexed revision missing from disk, and
        // what it reads is exactly that revision's state (k1 is written at even revisions,
        // k2 at odd ones).
        spawn_named(s, "raftkv-test-old-reader", || {
            let (mut read, mut compacted) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let rev = store.compact_revision().max(1);
                match store.range(b"k", Some(b"l"), RangeOptions { rev, ..Default::default() }) {
                    Ok(r) => {
                        let want: Vec<Vec<u8>> = [(rev - 2).div_euclid(2), (rev - 3).div_euclid(2)]
                            .into_iter()
                            .filter(|v| *v >= 0)
                            .map(|v| v.to_string().into_bytes())
                            .collect();
                        let got: Vec<Vec<u8>> = r.kvs.into_iter().map(|kv| kv.value).collect();
                        assert_eq!(got, want, "at the compact revision {rev}");
                        read += usize::from(rev > 1);
                    }
                    Err(Error::Compacted) => compacted += 1,
                    Err(e) => panic!("reading at the compact revision {rev}: {e}"),
                }
            }
            eprintln!("reader at the compact revision: {read} reads after compactions, {compacted} raced a compaction");
        });
        for i in 0..BATCHES {
            let mut batch = store.batch();
            for key in [b"k1", b"k2"] {
                batch.txn().put(key, i.to_string().as_bytes(), 0).unwrap();
            }
            batch.commit().unwrap();
            if i % 10 == 9 {
                let mut batch = store.batch();
                batch.compact(store.current_revision() - 1).unwrap();
                batch.commit().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(store.current_revision(), 1 + 2 * BATCHES);
}

#[test]
fn bad_rows_on_disk_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, store) = open(dir.path());
        put(&store, "a", "1"); // 2
                               // A value that is not a KeyValue, under a valid revision key: reads report it.
        db.raw().put_cf(db.cf(Cf::Kv), Revision::new(2, 0).to_key(false), b"\xff\xff\xff").unwrap();
        assert!(matches!(get_at(&store, "a", 0), Err(Error::Decode { .. })));
    }
    assert!(matches!(Store::open(Arc::new(Db::open(dir.path()).unwrap())), Err(Error::Decode { .. })));
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path()).unwrap();
        db.raw().put_cf(db.cf(Cf::Kv), b"not a revision", KeyValue::default().encode_to_vec()).unwrap();
    }
    assert!(matches!(Store::open(Arc::new(Db::open(dir.path()).unwrap())), Err(Error::Decode { .. })));
}

#[test]
fn history_racing_compaction_is_complete_or_compacted() {
    const BATCHES: i64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A watch catch-up: from the oldest readable revision to the current one, every
        // revision must be there (each one rewrote "k"), or the read must say it was compacted.
        spawn_named(s, "raftkv-test-catch-up", || {
            let (mut complete, mut compacted) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let from = store.compact_revision().max(2);
                let to = store.current_revision();
                match store.history(b"k", None, from, to, usize::MAX) {
                    Ok(changes) => {
                        let revs: Vec<i64> = changes.iter().map(|kv| kv.mod_revision).collect();
                        let want: Vec<i64> = (from..=to).collect();
                        assert_eq!(revs, want, "history from {from} to {to}");
                        complete += 1;
                    }
                    Err(Error::Compacted) => compacted += 1,
                    Err(e) => panic!("history from {from}: {e}"),
                }
            }
            eprintln!("history reader: {complete} complete reads, {compacted} raced a compaction");
        });
        for i in 0..BATCHES {
            put(&store, "k", &i.to_string());
            if i % 10 == 9 {
                let mut batch = store.batch();
                batch.compact(store.current_revision() - 1).unwrap();
                batch.commit().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut batch = store.batch();
    batch.compact(store.current_revision()).unwrap();
    batch.commit().unwrap();
    assert!(matches!(store.history(b"k", None, 2, store.current_revision(), 10), Err(Error::Compacted)));
}

fn compact(store: &Store, rev: i64) {
    let mut batch = store.batch();
    batch.compact(rev).unwrap();
    batch.commit().unwrap();
}

#[test]
fn hash_kv_is_etcds_and_survives_restart_but_not_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let hash = |store: &Store, rev| store.hash_kv(rev).map(|h| (h.hash, h.current_rev, h.compact_rev));
    {
        let (_db, store) = open(dir.path());
        put(&store, "a", "1"); // 2
        put(&store, "b", "2"); // 3
        put(&store, "a", "3"); // 4
        delete(&store, "b", None); // 5
                                   // What etcd 3.4.23 answers `etcdctl endpoint hashkv` after the same four commands.
        assert_eq!(hash(&store, 0).unwrap(), (1_125_682_900, 5, -1));
        assert_eq!(hash(&store, 3).unwrap(), (1_827_592_406, 5, -1));
        assert!(matches!(hash(&store, 6), Err(Error::FutureRevision)));
        compact(&store, 3);
        assert_eq!(hash(&store, 0).unwrap(), (1_468_967_122, 5, 3));
        assert_eq!(hash(&store, 4).unwrap(), (1_107_643_163, 5, 3));
        assert!(matches!(hash(&store, 3), Err(Error::Compacted)), "etcd refuses the compact revision itself");
        assert!(matches!(hash(&store, 2), Err(Error::Compacted)));
    }
    let (_db, store) = open(dir.path());
    assert_eq!(hash(&store, 0).unwrap(), (1_468_967_122, 5, 3), "a restart changes nothing");
    put(&store, "a", "3");
    assert_eq!(hash(&store, 5).unwrap(), (1_468_967_122, 6, 3), "a later write leaves the hash at 5 alone");
    assert_ne!(hash(&store, 0).unwrap().0, 1_468_967_122, "a write changes the current hash");
}

#[test]
fn hash_kv_ignores_compacted_rows_still_on_disk() {
    // etcd deletes compacted rows in the background; the hash must not depend on how far it got.
    // Rows put back under the compact revision stand for the ones not yet deleted.
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = open(dir.path());
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    put(&store, "b", "1"); // 4
    compact(&store, 3);
    let before = store.hash_kv(0).unwrap();
    let stale = KeyValue {
        key: b"a".to_vec(),
        create_revision: 2,
        mod_revision: 2,
        version: 1,
        value: b"1".to_vec(),
        lease: 0,
    };
    db.raw().put_cf(db.cf(Cf::Kv), Revision::new(2, 0).to_key(false), stale.encode_to_vec()).unwrap();
    assert_eq!(store.hash_kv(0).unwrap(), before);
}

/// A scoped thread with a name, so a failing or hanging concurrency test shows which one.
fn spawn_named<'scope, F>(s: &'scope std::thread::Scope<'scope, '_>, name: &str, f: F)
where
    F: FnOnce() + Send + 'scope,
{
    std::thread::Builder::new().name(name.into()).spawn_scoped(s, f).expect("spawn a test thread");
}
