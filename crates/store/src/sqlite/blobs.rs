//! Blob files: raw messages larger than the inline threshold, one file per content hash under
//! `blobs/<first two hex digits>/<hash>`. Small blobs live in the database instead, so that they ride
//! on the group commit's single fsync.
//!
//! A file is written under `blobs/tmp/`, fsynced, then renamed into place by the writer thread inside
//! the transaction that records it; the writer fsyncs the directory before COMMIT. A crash can leave
//! an unreferenced file (reported as an orphan), never a row without its file.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{BlobId, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub(crate) struct BlobDir {
    root: PathBuf,
    pub inline_max: u64,
}

/// A blob file written and fsynced under `tmp/`, waiting to be renamed into place.
#[derive(Debug)]
pub(crate) struct TmpBlob {
    pub path: PathBuf,
}

impl Drop for TmpBlob {
    fn drop(&mut self) {
        // Renamed files are gone from tmp/; anything left here was never committed.
        let _ = fs::remove_file(&self.path);
    }
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl BlobDir {
    pub fn open(root: PathBuf, inline_max: u64) -> Result<BlobDir> {
        let created = !root.exists();
        fs::create_dir_all(root.join("tmp"))?;
        for i in 0..=255u8 {
            let sub = root.join(format!("{i:02x}"));
            if !sub.exists() {
                fs::create_dir(&sub)?;
            }
        }
        // Leftovers of writes that never committed.
        for entry in fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        fsync_dir(&root)?;
        if created && let Some(parent) = root.parent() {
            fsync_dir(parent)?;
        }
        Ok(BlobDir { root, inline_max })
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub fn is_inline(&self, size: usize) -> bool {
        size as u64 <= self.inline_max
    }

    /// Writes and fsyncs the concatenation of `parts` under tmp/ (run off the async runtime).
    pub fn write_tmp(&self, parts: &[&[u8]]) -> Result<TmpBlob> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}.tmp", std::process::id()));
        let tmp = TmpBlob { path };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp.path)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        Ok(tmp)
    }

    /// Moves a written blob into place (writer thread, inside the transaction).
    pub fn install(
        &self,
        tmp: &TmpBlob,
        id: &BlobId,
        sync_dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<()> {
        let dest = self.path_of(id);
        fs::rename(&tmp.path, &dest)?;
        if let Some(dir) = dest.parent() {
            sync_dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    pub fn read(&self, id: &BlobId, range: Option<std::ops::Range<u64>>) -> Result<Vec<u8>> {
        let mut f = File::open(self.path_of(id))?;
        match range {
            None => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                Ok(buf)
            }
            Some(r) => {
                let len = f.metadata()?.len();
                let start = r.start.min(len);
                let end = r.end.clamp(start, len);
                f.seek(SeekFrom::Start(start))?;
                let mut buf = vec![0u8; (end - start) as usize];
                f.read_exact(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Every blob file present on disk, for the integrity check.
    pub fn list(&self) -> Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for i in 0..=255u8 {
            let sub = self.root.join(format!("{i:02x}"));
            let Ok(entries) = fs::read_dir(&sub) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Some(id) = entry.file_name().to_str().and_then(BlobId::from_hex) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}
