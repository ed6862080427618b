//! Gives each RocksDB write-ahead log file its full size as soon as RocksDB creates it, so a
//! synced write no longer grows the file.
//!
//! Owns: an inotify watch on the data dir and the extension of every new `NNNNNN.log` in it.
//! Runs on whichever thread makes a synced write (the raft thread), just before the write; no
//! thread or queue of its own (the kernel's inotify queue holds the creations meanwhile).
//!
//! Why: RocksDB reserves its WAL's blocks with `FALLOC_FL_KEEP_SIZE` (hard-coded in
//! `PosixFileSystem::OptimizeForLogWrite`, whose own TODO says the size-setting kind is
//! faster), so every append moves the file's size and every `fdatasync` must commit that
//! inode change through ext4's journal. etcd preallocates its 64 MB WAL segments at their
//! size instead. Measured on this project's VM: the sync of a lone put 190–215 µs with RocksDB's
//! file, 155–165 µs with the file extended (etcd's 150–165), docs/performance.md.
//!
//! Why it is safe: RocksDB writes its WAL at its own file offset (never `O_APPEND`), so a
//! larger file changes where nothing goes. A crash leaves zeros after the last record, which
//! RocksDB's log reader skips as the padding of a preallocated file (`kZeroType` of length 0,
//! kept in `log_reader.cc` for its mmap writer) — tested by recovering a copy of a live data
//! dir. A clean close trims the file back to its data (`PosixWritableFile::Close`
//! truncates to what it wrote), so only a crashed member ever recovers such a tail.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The size a new WAL file is given: RocksDB rolls to a new file at about this much
/// (`MAX_WAL_BYTES` caps the live WAL), and it is etcd's segment size.
pub(super) const WAL_FILE_BYTES: i64 = super::MAX_WAL_BYTES as i64;

/// The data dir's watch. Dropping it closes the inotify descriptor.
pub(super) struct WalSizer {
    inotify: OwnedFd,
    dir: PathBuf,
}

impl WalSizer {
    /// Starts watching `dir` for created files. Made before the database opens, so the WAL
    /// the open itself creates is seen. `None` (logged) when inotify is unavailable: the WAL
    /// then grows as RocksDB writes it, which is only slower.
    pub(super) fn watch(dir: &Path) -> Option<WalSizer> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            log::warn!("storage: no inotify, WAL files will grow as written: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nothing else.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: `inotify` is a live inotify descriptor and `path` a NUL-terminated string.
        if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), libc::IN_CREATE) } < 0 {
            log::warn!(
                "storage: cannot watch {} for new WAL files, they will grow as written: {}",
                dir.display(),
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(WalSizer { inotify, dir: dir.to_path_buf() })
    }

    /// Extends every WAL file created since the last call. One non-blocking `read` when there
    /// is none, which is nearly always.
    pub(super) fn extend_new(&self) {
        // Aligned for `inotify_event`; room for many events, each at most 16 + NAME_MAX + 1.
        let mut buf = [0u64; 1024];
        loop {
            // SAFETY: `buf` is writable for its whole length.
            let n = unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), size_of_val(&buf)) };
            if n <= 0 {
                // EAGAIN: nothing (more) to read. Any other error leaves the files to grow.
                return;
            }
            // SAFETY: the kernel wrote `n` bytes of whole events into `buf`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            self.extend_named(bytes);
        }
    }

    /// Walks one read's events (each `inotify_event`: wd, mask, cookie, len, then `len` bytes
    /// of NUL-padded name).
    fn extend_named(&self, mut events: &[u8]) {
        const HEADER: usize = size_of::<libc::inotify_event>();
        while events.len() >= HEADER {
            let field = |at: usize| u32::from_ne_bytes(events[at..at + 4].try_into().expect("4 bytes"));
            let (mask, len) = (field(4), field(12) as usize);
            let Some(name) = events.get(HEADER..HEADER + len) else { return };
            if mask & libc::IN_Q_OVERFLOW != 0 {
                // Creations were dropped: the newest WAL is the one still written to.
                self.extend_newest();
            } else {
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                if wal_number(name).is_some() {
                    self.extend(&self.dir.join(std::ffi::OsStr::from_bytes(name)));
                }
            }
            events = &events[HEADER + len..];
        }
    }

    fn extend_newest(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let newest =
            entries.flatten().filter_map(|e| Some((wal_number(e.file_name().as_bytes())?, e.file_name()))).max();
        if let Some((_, name)) = newest {
            self.extend(&self.dir.join(name));
        }
    }

    /// Sets the file's size to [`WAL_FILE_BYTES`], allocating the blocks (a plain `fallocate`,
    /// as etcd's `fileutil.Preallocate`). A file RocksDB has already deleted, or a filesystem
    /// without room or without `fallocate`, leaves the file as it is.
    fn extend(&self, path: &Path) {
        let file = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::debug!("storage: cannot open {} to extend it: {e}", path.display());
                return;
            }
        };
        // SAFETY: `file` is an open descriptor for the call's duration.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, WAL_FILE_BYTES) } != 0 {
            log::debug!("storage: cannot extend {}: {}", path.display(), std::io::Error::last_os_error());
        }
    }
}

/// The number of a WAL file, RocksDB's `%06llu.log`; `None` for every other file (its info
/// logs are `LOG` and `LOG.old.*`).
fn wal_number(name: &[u8]) -> Option<u64> {
    let digits = name.strip_suffix(b".log")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use super::*;

    fn wal_sizes(dir: &Path) -> Vec<u64> {
        let mut sizes: Vec<(u64, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| Some((wal_number(e.file_name().as_bytes())?, e.metadata().unwrap().len())))
            .collect();
        sizes.sort();
        sizes.into_iter().map(|(_, len)| len).collect()
    }

    fn put_synced(db: &Db, n: u64) {
        let mut batch = rocksdb::WriteBatch::default();
        db.put_meta_u64(&mut batch, format!("k{n}").as_bytes(), n);
        db.write(batch, true).unwrap();
    }

    #[test]
    fn every_new_wal_has_its_full_size_while_written_and_only_its_records_after_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        put_synced(&db, 1);
        assert_eq!(wal_sizes(dir.path()), [WAL_FILE_BYTES as u64]);
        // A flush switches to a new WAL, as the memtables filling up does.
        db.flush().unwrap();
        put_synced(&db, 2);
        assert_eq!(wal_sizes(dir.path()).last(), Some(&(WAL_FILE_BYTES as u64)));
        drop(db);
        let sizes = wal_sizes(dir.path());
        assert!(sizes.len() == 1 && sizes[0] > 0 && sizes[0] < 4096, "WAL sizes after close: {sizes:?}");
    }

    /// A copy of a live data dir is what a crash (of the process or the machine, once the
    /// syncs returned) leaves: a WAL with zeros after its last record. Every synced write must
    /// come back from it, and the reopened database must go on writing.
    #[test]
    fn a_crashed_members_wal_with_its_zero_tail_recovers_every_synced_write() {
        let (live, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = Db::open(live.path()).unwrap();
        for n in 0..2_000 {
            put_synced(&db, n);
        }
        for entry in std::fs::read_dir(live.path()).unwrap().flatten() {
            std::fs::copy(entry.path(), crashed.path().join(entry.file_name())).unwrap();
        }
        assert_eq!(wal_sizes(crashed.path()), [WAL_FILE_BYTES as u64], "the copy must hold the zero tail");
        let recovered = Db::open(crashed.path()).unwrap();
        for n in 0..2_000 {
            assert_eq!(recovered.get_meta_u64(format!("k{n}").as_bytes()).unwrap(), n, "key k{n}");
        }
        put_synced(&recovered, 2_000);
        assert_eq!(recovered.get_meta_u64(b"k2000").unwrap(), 2_000);
    }

    #[test]
    fn only_rocksdbs_numbered_logs_are_wal_files() {
        assert_eq!(wal_number(b"000004.log"), Some(4));
        for name in [&b"LOG"[..], b"LOG.old.1733200000", b".log", b"MANIFEST-000005", b"x.log"] {
            assert_eq!(wal_number(name), None, "{}", String::from_utf8_lossy(name));
        }
    }
}
