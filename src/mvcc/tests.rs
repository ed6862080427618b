//! Store tests on real RocksDB: versions and revisions, history, compaction (logical, and the
//! batched removal of dead rows, resumed after a reopen), batch visibility, restore, and
//! readers racing the writer and the removal.

use super::*;
use crossbeam::channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Revisions of the rows on disk, in order.
fn revisions_on_disk(db: &Db) -> Vec<Revision> {
    db.raw()
        .iterator_cf(db.cf(Cf::Kv), IteratorMode::Start)
        .map(|item| Revision::from_key(&item.unwrap().0).unwrap().0)
        .collect()
}

/// Runs the scheduled removal to its end, as the removal thread would, without pauses.
fn remove_all(store: &Store, rows_max: usize) {
    let mut cursor = RemovalCursor::default();
    while store.remove_batch(&mut cursor, rows_max).unwrap() {}
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
    assert_eq!(kv_rows(&db), 5, "applying a compaction only records it");
    assert!(matches!(get_at(&store, "a", 4), Err(Error::Compacted)), "but it is compacted at once");
    remove_all(&store, 1000);
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
        remove_all(&store, 1000);
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
        let stop_removal = removal_thread(s, &store);
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
        stop_removal.send(()).unwrap();
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
        let stop_removal = removal_thread(s, &store);
        for i in 0..BATCHES {
            put(&store, "k", &i.to_string());
            if i % 10 == 9 {
                let mut batch = store.batch();
                batch.compact(store.current_revision() - 1).unwrap();
                batch.commit().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        stop_removal.send(()).unwrap();
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

/// A history of `keys` keys, each rewritten `versions` times, with every third key deleted
/// halfway; returns the revision halfway (where it compacts).
fn churn(store: &Store, keys: usize, versions: usize) -> i64 {
    let mut halfway = 0;
    for v in 0..versions {
        for k in 0..keys {
            put(store, &format!("k{k:03}"), &format!("{v}"));
        }
        if v == versions / 2 {
            for k in (0..keys).step_by(3) {
                delete(store, &format!("k{k:03}"), None);
            }
            halfway = store.current_revision();
        }
    }
    halfway
}

/// Every answer a reader can get at every readable revision, as ranges and as history.
fn all_answers(store: &Store) -> Vec<(Vec<KeyValue>, i64)> {
    let (from, to) = (store.compact_revision().max(1), store.current_revision());
    let mut answers: Vec<(Vec<KeyValue>, i64)> = (from..=to)
        .map(|rev| {
            let r = store.range(&[0], Some(&[]), RangeOptions { rev, ..Default::default() }).unwrap();
            (r.kvs, r.count)
        })
        .collect();
    answers.push((store.history(&[0], Some(&[]), from, to, usize::MAX).unwrap(), 0));
    answers
}

#[test]
fn removal_goes_in_batches_and_keeps_exactly_what_compaction_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = open(dir.path());
    let at = churn(&store, 20, 6);
    let before_compaction = all_answers(&store);
    let rows = kv_rows(&db);
    let keep = store.state.read().index.keep(at);
    compact(&store, at);
    // Applied: reads below fail at once, everything else reads as before, rows all still there.
    assert!(matches!(get_at(&store, "k001", at - 1), Err(Error::Compacted)));
    assert!(matches!(store.history(&[0], Some(&[]), at - 1, at, 10), Err(Error::Compacted)));
    let answers = all_answers(&store);
    let from = (at - 1) as usize; // revision `at` is the answer after revisions 1..at-1
    assert_eq!(answers[..answers.len() - 1], before_compaction[from..before_compaction.len() - 1]);
    assert_eq!(kv_rows(&db), rows);
    assert_eq!((store.compact_revision(), store.removed_revision()), (at, NEVER_COMPACTED));
    let hash = store.hash_kv(0).unwrap();
    let mut cursor = RemovalCursor::default();
    let mut batches = 0;
    loop {
        let more = store.remove_batch(&mut cursor, 7).unwrap();
        batches += 1;
        // Between batches nothing a reader can ask for changes, and writes go on.
        assert_eq!(all_answers(&store), answers, "after batch {batches}");
        assert_eq!(store.hash_kv(hash.current_rev).unwrap(), hash, "after batch {batches}");
        if !more {
            break;
        }
        assert_eq!(store.removed_revision(), NEVER_COMPACTED, "finished only with the last batch");
    }
    assert!(batches > 10, "{batches} batches of 7 rows for {rows} rows");
    assert_eq!(store.removed_revision(), at);
    assert_eq!(db.get_meta_u64(meta::COMPACT_REVISION).unwrap(), at as u64);
    // On disk: exactly the kept revisions at or below `at`, and everything above.
    let on_disk = revisions_on_disk(&db);
    let mut want: Vec<Revision> = keep.into_iter().collect();
    want.sort();
    assert_eq!(on_disk.iter().filter(|r| r.main <= at).copied().collect::<Vec<_>>(), want);
    assert_eq!(on_disk.iter().filter(|r| r.main > at).count() as i64, store.current_revision() - at);
    assert!(!store.remove_batch(&mut cursor, 7).unwrap(), "nothing left to do");
}

#[test]
fn a_write_between_removal_batches_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    let at = churn(&store, 10, 4);
    compact(&store, at);
    let mut cursor = RemovalCursor::default();
    let mut written = Vec::new();
    while store.remove_batch(&mut cursor, 2).unwrap() {
        written.push(put(&store, "k001", &format!("during {}", written.len())));
    }
    assert!(written.len() > 3);
    let history = store.history(b"k001", None, at + 1, store.current_revision(), usize::MAX).unwrap();
    let tail = &history[history.len() - written.len()..];
    assert_eq!(tail, &written[..]);
    assert_eq!(get_at(&store, "k001", 0).unwrap().as_ref(), written.last());
}

#[test]
fn a_half_done_removal_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (at, answers, hash) = {
        let (db, store) = open(dir.path());
        let at = churn(&store, 20, 6);
        compact(&store, at);
        let mut cursor = RemovalCursor::default();
        for _ in 0..3 {
            assert!(store.remove_batch(&mut cursor, 10).unwrap());
        }
        assert_eq!(db.get_meta_u64(meta::SCHEDULED_COMPACT_REVISION).unwrap(), at as u64);
        assert!(db.get(Cf::Meta, meta::COMPACT_REVISION).unwrap().is_none(), "not finished");
        (at, all_answers(&store), store.hash_kv(0).unwrap())
    };
    // A crash here: the index is rebuilt from rows of which some dead ones are gone and some not.
    let (db, store) = open(dir.path());
    assert_eq!((store.compact_revision(), store.removed_revision()), (at, NEVER_COMPACTED));
    assert!(matches!(get_at(&store, "k001", at - 1), Err(Error::Compacted)));
    assert_eq!(all_answers(&store), answers);
    assert_eq!(store.hash_kv(0).unwrap(), hash);
    let keep = store.state.read().index.keep(at);
    remove_all(&store, 10);
    assert_eq!(store.removed_revision(), at);
    let kept_on_disk = revisions_on_disk(&db).into_iter().filter(|r| r.main <= at).count();
    assert_eq!(kept_on_disk, keep.len());
    assert_eq!(all_answers(&store), answers);
    assert_eq!(store.hash_kv(0).unwrap(), hash);
}

#[test]
fn scheduled_above_finished_in_meta_is_resumed_and_finished_alone_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let at = {
        let (db, store) = open(dir.path());
        let at = churn(&store, 5, 4);
        // What a crash right after the compaction's apply batch leaves: every row, scheduled only.
        let mut batch = WriteBatch::default();
        db.put_meta_u64(&mut batch, meta::SCHEDULED_COMPACT_REVISION, at as u64);
        db.write(batch, false).unwrap();
        at
    };
    {
        let (db, store) = open(dir.path());
        let rows = kv_rows(&db);
        assert_eq!(store.compact_revision(), at);
        assert!(matches!(get_at(&store, "k001", at - 1), Err(Error::Compacted)));
        remove_all(&store, 1000);
        assert!(kv_rows(&db) < rows);
    }
    // A data dir of the previous version: `compact_revision` alone means finished.
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, store) = open(dir.path());
        churn(&store, 5, 4);
        let mut batch = WriteBatch::default();
        db.put_meta_u64(&mut batch, meta::COMPACT_REVISION, 3);
        db.write(batch, false).unwrap();
    }
    let (db, store) = open(dir.path());
    assert_eq!((store.compact_revision(), store.removed_revision()), (3, 3));
    let rows = kv_rows(&db);
    assert!(!store.remove_batch(&mut RemovalCursor::default(), 1000).unwrap(), "nothing scheduled");
    assert_eq!(kv_rows(&db), rows);
}

#[test]
fn a_newer_compaction_replaces_an_unfinished_removal() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = open(dir.path());
    let first = churn(&store, 10, 6);
    compact(&store, first);
    let mut cursor = RemovalCursor::default();
    assert!(store.remove_batch(&mut cursor, 5).unwrap());
    let second = store.current_revision() - 3;
    compact(&store, second);
    let keep = store.state.read().index.keep(second);
    while store.remove_batch(&mut cursor, 5).unwrap() {}
    assert_eq!(store.removed_revision(), second, "the first never finished on its own");
    assert_eq!(revisions_on_disk(&db).into_iter().filter(|r| r.main <= second).count(), keep.len());
}

#[test]
fn pausing_removal_drops_the_one_in_progress_until_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = open(dir.path());
    let at = churn(&store, 10, 4);
    compact(&store, at);
    let mut cursor = RemovalCursor::default();
    assert!(store.remove_batch(&mut cursor, 5).unwrap());
    let rows = kv_rows(&db);
    drop(store.pause_removal());
    assert!(!store.remove_batch(&mut cursor, 5).unwrap(), "dropped");
    assert_eq!(kv_rows(&db), rows);
    // What an install does next: reload finds the data's own unfinished removal.
    store.reload().unwrap();
    remove_all(&store, 5);
    assert_eq!(store.removed_revision(), at);
}

#[test]
fn the_removal_thread_finishes_physical_waits_and_releases_them_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    let at = churn(&store, 10, 4);
    std::thread::scope(|s| {
        let stop_removal = removal_thread(s, &store);
        compact(&store, at);
        store.wait_removed(at).unwrap();
        stop_removal.send(()).unwrap();
    });
    let registry = crate::metrics::Registry::default();
    store.register_metrics(&registry);
    let text = registry.text();
    let value = |series: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (pause, total) = (
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    );
    assert!(value(&format!("{pause}_count")) > 0.0 && value("etcd_debugging_mvcc_db_compaction_keys_total") > 0.0);
    assert_eq!(value(&format!("{total}_count")), 1.0);
    assert!(text.contains(&format!("{total}_bucket{{le=\"819200\"}}")), "etcd's layout: 100 ms × 2^13");
    assert!(text.contains(&format!("{pause}_bucket{{le=\"1\"}}")), "etcd's layout: 1 ms .. 4096 ms");
    assert!(
        text.contains(&format!("{pause}_bucket{{le=\"4096\"}}"))
            && !text.contains(&format!("{pause}_bucket{{le=\"8192\"}}"))
    );
    put(&store, "k001", "after");
    compact(&store, store.current_revision());
    assert!(matches!(store.wait_removed(store.current_revision()), Err(Error::Stopped)));
}

#[test]
fn hash_kv_with_nothing_live_does_not_depend_on_removal() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    delete(&store, "a", None); // 4
    compact(&store, 3);
    // Nothing is live at 4: etcd counts every row at or below 3 still on disk, which once its
    // removal is done is a@3 only.
    let pending = store.hash_kv(4).unwrap();
    remove_all(&store, 1000);
    assert_eq!(store.hash_kv(4).unwrap(), pending);
}

#[test]
fn history_from_the_compact_revision_skips_its_dead_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = open(dir.path());
    put(&store, "a", "1"); // 2
    put(&store, "b", "1"); // 3
    delete(&store, "a", None); // 4
    put(&store, "b", "2"); // 5
    compact(&store, 4);
    let revs = |store: &Store| -> Vec<i64> {
        store.history(&[0], Some(&[]), 4, 5, usize::MAX).unwrap().iter().map(|kv| kv.mod_revision).collect()
    };
    assert_eq!(revs(&store), vec![5], "a's delete at 4 is dead before its removal");
    remove_all(&store, 1000);
    assert_eq!(revs(&store), vec![5]);
}

/// The removal thread, in small batches without pauses so that it races everything else;
/// stopped by sending on the returned channel.
fn removal_thread<'scope>(s: &'scope std::thread::Scope<'scope, '_>, store: &'scope Store) -> Sender<()> {
    let (stop_tx, stop_rx) = crossbeam::channel::bounded(1);
    let pace = RemovalPace { batch_rows_max: 3, pause: Duration::ZERO };
    spawn_named(s, "raftkv-test-removal", move || store.run_removal(pace, &stop_rx, |e| panic!("removal failed: {e}")));
    stop_tx
}

/// A scoped thread with a name, so a failing or hanging concurrency test shows which one.
fn spawn_named<'scope, F>(s: &'scope std::thread::Scope<'scope, '_>, name: &str, f: F)
where
    F: FnOnce() + Send + 'scope,
{
    std::thread::Builder::new().name(name.into()).spawn_scoped(s, f).expect("spawn a test thread");
}
