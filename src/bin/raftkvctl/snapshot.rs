//! `snapshot save|status|restore`, as etcdctl 3.4's (with etcd 3.5's `--bump-revision` and
//! `--mark-compacted` on restore). `save` downloads over the gateway and checks the SHA-256;
//! `status` and `restore` work offline on the file, raftkv's own download or etcd's.

use std::fs;
use std::path::{Path, PathBuf};

use raftkv::server::restore::{restore, RestoreConfig};
use raftkv::snapshot::{self, bbolt, FileStatus};

use super::endpoint::human_bytes;
use super::*;

impl Ctl {
    pub(crate) fn snapshot(&self, endpoints: &[String], command: SnapshotCommand) -> Outcome {
        match command {
            SnapshotCommand::Save { filename } => self.snapshot_save(endpoints, &filename),
            SnapshotCommand::Status { filename } => self.snapshot_status(&filename),
            SnapshotCommand::Restore {
                filename,
                data_dir,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                name,
                skip_hash_check,
                bump_revision,
                mark_compacted,
            } => {
                let cfg = RestoreConfig {
                    snapshot: filename,
                    data_dir: data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.raftkv"))),
                    name,
                    initial_cluster,
                    initial_cluster_token,
                    initial_advertise_peer_urls,
                    skip_hash_check,
                    bump_revision,
                    mark_compacted,
                };
                restore(&cfg).map(drop).map_err(|e| CtlError::Usage(e.to_string()))
            }
        }
    }

    /// Downloads into `<file>.part`, checks the hash, syncs and renames, as etcdctl does, so a
    /// failed save never leaves a file that looks complete.
    fn snapshot_save(&self, endpoints: &[String], path: &Path) -> Outcome {
        let endpoints: Vec<&str> = endpoints.iter().flat_map(|e| e.split(',')).collect();
        if endpoints.len() != 1 {
            return Err(CtlError::Usage(format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                endpoints.join(" ")
            )));
        }
        let io = |e: std::io::Error| CtlError::Usage(format!("{}: {e}", path.display()));
        let mut part = path.as_os_str().to_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let saved = (|| {
            let mut file = fs::File::create(&part).map_err(io)?;
            self.client.snapshot(&mut file)?;
            file.sync_all().map_err(io)?;
            fs::rename(&part, path).map_err(io)
        })();
        if saved.is_err() {
            let _ = fs::remove_file(&part);
        }
        saved?;
        println!("Snapshot saved at {}", path.display());
        Ok(())
    }

    fn snapshot_status(&self, path: &Path) -> Outcome {
        let status = file_status(path).map_err(|e| CtlError::Usage(e.to_string()))?;
        if self.format == Format::Json {
            println!(
                "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
                status.hash, status.revision, status.total_keys, status.total_size
            );
            return Ok(());
        }
        let row = vec![
            format!("{:x}", status.hash),
            status.revision.to_string(),
            status.total_keys.to_string(),
            human_bytes(status.total_size as i64),
        ];
        self.print_rows(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &[row]);
        Ok(())
    }
}

/// etcd's own figures for an etcd file; for raftkv's download the same columns over its
/// records (without the SHA-256 trailer, which `status` does not check, as etcd's does not).
fn file_status(path: &Path) -> raftkv::Result<FileStatus> {
    if bbolt::is_bbolt(path)? {
        return bbolt::etcd_status(path);
    }
    let io = |e| raftkv::Error::from(raftkv::storage::Error::io(path, e));
    let size = fs::metadata(path).map_err(io)?.len();
    let len = if size % 512 == 32 { size - 32 } else { size };
    snapshot::download_status(path, len)
}
