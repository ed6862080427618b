//! A full disk (issue 16): a member process whose data dir is on a small tmpfs is written to
//! from several clients until the filesystem is full. It must stop with a clear fatal error,
//! never a panic and never a data dir it cannot open again; once the filesystem is grown,
//! the member restarts and every write a client saw acknowledged is there with its revision.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raftkv::pb::{PutRequest, RangeRequest};
use raftkv::Client;

use crate::harness::process::Member;

const WRITERS: usize = 4;
/// Each value's size: the raft log and the store each hold it, so a few thousand writes
/// fill the filesystem.
const VALUE_BYTES: usize = 4096;
/// How long a member writing into a full filesystem may take to stop.
const STOP_WITHIN: Duration = Duration::from_secs(120);

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this process may not mount (not root).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status();
        status.is_ok_and(|s| s.success()).then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status();
        assert!(status.unwrap().success(), "remount {} with size={size}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn value_of(key: &str) -> Vec<u8> {
    key.bytes().chain(std::iter::repeat(b'.')).take(VALUE_BYTES).collect()
}

#[test]
fn a_full_disk_stops_the_member_cleanly_and_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("small"), "16m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = fs.0.join("data");
    // The log stays outside the full filesystem, so the member can say what happened.
    let mut member = Member::new("full", dir.path());
    member.spawn(&data, "", &[]);
    member.wait_healthy(Duration::from_secs(30));

    let acked: Mutex<Vec<(String, i64)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let endpoint = member.endpoint();
    let stopped = std::thread::scope(|s| {
        for writer in 0..WRITERS {
            let (acked, stop, endpoint) = (&acked, &stop, endpoint.clone());
            s.spawn(move || {
                let client = Client::new(&[endpoint], Duration::from_secs(5)).unwrap();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("w{writer}/{i:06}");
                    if let Ok(resp) = client.put(&PutRequest::new(key.as_str(), value_of(&key))) {
                        acked.lock().push((key, resp.header.unwrap().revision));
                    }
                }
            });
        }
        let deadline = Instant::now() + STOP_WITHIN;
        while !member.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        !member.running()
    });
    let log = std::fs::read_to_string(&member.log).unwrap();
    assert!(stopped, "the member kept running on a full filesystem for {STOP_WITHIN:?}; log in {}", {
        dir.keep().display()
    });
    assert!(!log.contains("panicked"), "the member panicked:\n{log}");
    let fatal = log.lines().find(|l| l.contains("fatal error") && l.contains("No space left on device"));
    let fatal = fatal.unwrap_or_else(|| panic!("no fatal error naming the full disk:\n{log}"));
    let acked = acked.into_inner();
    eprintln!("disk full after {} acknowledged writes: {fatal}", acked.len());
    assert!(acked.len() > 100, "only {} writes before the disk was full: the test did not fill it", acked.len());

    fs.resize("256m");
    member.spawn(&data, "", &[]);
    member.wait_healthy(Duration::from_secs(30));
    let client = member.client();
    for (key, revision) in &acked {
        let kvs = client.range(&RangeRequest::key(key.as_str())).unwrap().kvs;
        let kv = kvs.first().unwrap_or_else(|| panic!("acknowledged write {key} at revision {revision} lost"));
        assert_eq!((kv.mod_revision, &kv.value), (*revision, &value_of(key)), "{key}");
    }
    client.put(&PutRequest::new("after", "space freed")).expect("a write once there is space again");
    member.terminate();
}
